"""The command core every adapter calls: text or a Command in, a Reply out, never an exception.

    dispatcher = Dispatcher(engine)
    reply = dispatcher.handle_text("tune acme epochs=3", Context(caller, attachments=(faq,)))

Options are validated here from the handlers' specs (with "did you mean"); user errors
become ephemeral error replies whose text is the engine error's message; anything else is
logged with a reference id that the user is shown.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Callable, Sequence

from bot.core.cards import answer_reply
from bot.core.command import Command
from bot.core.handlers import ALL as HANDLERS
from bot.core.parse import parse
from bot.core.reply import Reply
from bot.core.spec import CommandSpec, Context, OptionSpec, Request
from bot.core.suggest import did_you_mean
from bot.core.text import unexpected_reply
from engine.errors import Busy, InvalidInput, NotFound, PermissionDenied, is_user_error
from engine.identity import Caller
from engine.limits import MAX_TEXT_CHARS, check_length

if TYPE_CHECKING:
    from engine.app import Engine

__all__ = ["Context", "Dispatcher", "CommandSpec", "OptionSpec", "error_reply"]


class Dispatcher:
    """Parses, validates and runs commands against one Engine."""

    def __init__(self, engine: "Engine", *, commands: Sequence[Callable] = HANDLERS,
                 log: logging.Logger | None = None) -> None:
        self.engine = engine
        self.log = log or logging.getLogger("gptstore.bot")
        self._specs: dict[str, CommandSpec] = {fn.spec.name: fn.spec for fn in commands}

    # -- commands -----------------------------------------------------------------------
    def commands(self) -> list[CommandSpec]:
        return list(self._specs.values())

    def knows(self, name: str) -> bool:
        """True when `name` is a command of the language (adapters tell commands from chat)."""
        return name.lower().lstrip("/") in self._specs

    def handle_text(self, text: str, ctx: Context) -> Reply:
        try:
            command = parse(text, ctx.attachments)
        except Exception as exc:  # parse errors are user errors; anything else is a bug
            return self._failed(exc, text)
        return self.handle(command, ctx)

    def handle(self, command: Command, ctx: Context) -> Reply:
        try:
            check_text(command)
            spec = self._spec(command.name)
            values = bind(spec, command, ctx)
            assert spec.handler is not None
            return spec.handler(Request(self.engine, ctx, command, values,
                                        commands=tuple(self._specs.values())))
        except Exception as exc:
            return self._failed(exc, command.name)

    def help(self, name: str | None = None) -> Reply:
        try:
            return self.handle(Command(name="help", args=(name,) if name else ()),
                               Context(caller=_nobody()))
        except Exception as exc:  # pragma: no cover - handle never raises
            return self._failed(exc, "help")

    # -- chat -----------------------------------------------------------------------------
    def chat_turn(self, ctx: Context, text: str, *, history: list[dict] | None = None,
                  on_token: Callable[[str], None] | None = None,
                  model: str | None = None) -> Reply:
        """A plain message for the channel's deployed model (or `model`)."""
        try:
            answer = self.engine.chat.answer(ctx.caller, model, text, history=history,
                                             on_token=on_token,
                                             question_ref=ctx.origin.message)
            return answer_reply(answer)
        except Exception as exc:
            return self._failed(exc, "chat")

    def answer_posted(self, message_id: int, platform_message_id: str) -> None:
        try:
            self.engine.chat.set_answer_ref(message_id, platform_message_id)
        except Exception:  # the answer was posted; losing its ref only weakens feedback
            self.log.exception("could not record the platform id of answer %s", message_id)

    def feedback(self, ctx: Context, platform_message_id: str, kind: str) -> Reply | None:
        """A thumbs up/down on a posted answer; None when the message is not one of ours."""
        try:
            self.engine.chat.feedback(ctx.caller, platform_message_id, kind)
        except NotFound:
            return None
        except Exception as exc:
            return self._failed(exc, "feedback")
        thanks = "Thanks, noted." if kind == "up" else (
            "Thanks, noted. Reply with `/store correct BETTER ANSWER` to teach it the right one.")
        return Reply(text=thanks, ephemeral=True, kind="success")

    # -- helpers --------------------------------------------------------------------------
    def _spec(self, name: str) -> CommandSpec:
        spec = self._specs.get(name)
        if spec is None:
            hint = did_you_mean(name, self._specs)
            raise InvalidInput(f"There is no command {name!r}.{hint} "
                               "Type `help` to see them all.")
        return spec

    def _failed(self, exc: BaseException, what: str) -> Reply:
        if is_user_error(exc):
            return error_reply(exc)
        return unexpected_reply(self.log, repr(what), exc)


def error_reply(exc: BaseException) -> Reply:
    """The reply for a user error: its own message, only for the caller."""
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, PermissionDenied) and "admin" not in text.lower():
        text += " Ask an admin of this workspace."
    return Reply(text=text, kind="busy" if isinstance(exc, Busy) else "error", ephemeral=True)


MAX_COMMAND_CHARS = MAX_TEXT_CHARS  # the engine's guard (engine/limits.py), chat's too
# Characters that have no place in a command and could hide or disguise what is echoed back:
# C0/C1 controls (NUL, ESC ...) other than tab and line breaks, and bidi overrides/isolates.
_HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def check_text(command: Command) -> None:
    """Refuse a command whose text is too long or carries control characters."""
    pieces = [command.name, command.text, *command.args, *command.options,
              *command.options.values()]
    size = max(len(command.text), sum(len(p) for p in pieces) - len(command.text))
    check_length(size, "command")
    for piece in pieces:
        found = _HIDDEN.search(piece)
        if found:
            raise InvalidInput(f"The command contains an invisible control character "
                               f"(U+{ord(found.group()):04X}); retype it without that character.")


def bind(spec: CommandSpec, command: Command, ctx: Context) -> dict[str, Any]:
    """Validate a Command against its spec: the values a handler reads, typed."""
    values: dict[str, Any] = {}
    positionals = spec.positionals
    if spec.free_text:
        parts = command.text.split(None, max(len(positionals) - 1, 0)) if positionals else []
        words = parts
        options: dict[str, str] = {}
    else:
        words = list(command.args)
        options = dict(command.options)
    for i, option in enumerate(positionals):
        if option.rest:
            value = " ".join(words[i:]) if not spec.free_text else (
                words[i] if i < len(words) else "")
            words = words[:i]
        else:
            value = words[i] if i < len(words) else None
        if value in (None, ""):
            if option.required:
                raise InvalidInput(f"`{spec.name}` needs {option.name.upper()}. "
                                   f"Usage: {spec.usage}")
            continue
        values[option.name] = convert(spec, option, value)
    extra = words[len(positionals):] if not any(o.rest for o in positionals) else []
    if extra:
        raise InvalidInput(f"`{spec.name}` did not expect {' '.join(extra)!r}. "
                           f"Usage: {spec.usage}")
    known = {o.name: o for o in spec.keywords}
    for key, raw in options.items():
        option = known.get(key)
        if option is None:
            hint = did_you_mean(key, known) or (
                f" Its options are {', '.join(known)}." if known else " It takes no options.")
            raise InvalidInput(f"`{spec.name}` has no option {key!r}.{hint}")
        values[key] = convert(spec, option, raw)
    for option in spec.keywords:
        if option.required and option.name not in values:
            raise InvalidInput(f"`{spec.name}` needs {option.name}=... Usage: {spec.usage}")
    files = tuple(ctx.attachments) + tuple(a for a in command.attachments
                                          if a not in ctx.attachments)
    for option in spec.options:
        if option.type == "file":
            if files:
                values[option.name] = files[0]
            elif option.required:
                raise InvalidInput(f"`{spec.name}` needs a Q&A file attached (CSV, TSV, JSONL "
                                   f"or JSON). Usage: {spec.usage}")
    return values


def convert(spec: CommandSpec, option: OptionSpec, raw: str) -> Any:
    if option.type == "int":
        try:
            return int(raw)
        except ValueError:
            raise InvalidInput(f"{option.name} must be a whole number, not {raw!r}.") from None
    if option.type == "float":
        try:
            value = float(raw)
        except ValueError:
            raise InvalidInput(f"{option.name} must be a number (like 0.001 or 1e-3), "
                               f"not {raw!r}.") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidInput(f"{option.name} must be a finite number, not {raw!r}.")
        return value
    if option.type == "choice":
        lowered = raw.lower()
        if lowered not in option.choices:
            hint = did_you_mean(lowered, option.choices)
            allowed = ", ".join(option.choices[:-1]) + " or " + option.choices[-1]
            raise InvalidInput(f"{option.name} must be {allowed}, "
                               f"not {raw!r}.{hint}")
        return lowered
    return raw


def _nobody() -> Caller:
    return Caller(platform="help", workspace="", user="")
