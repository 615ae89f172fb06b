"""What a command accepts (CommandSpec, OptionSpec) and what its handler receives (Request).

Handlers declare their arguments with the `command` decorator; the dispatcher validates and
converts the text before a handler runs, Discord builds typed slash options from the same
specs, and help is generated from them plus the handler's docstring.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from bot.core.command import Attachment, Command
from bot.core.reply import Reply
from engine.identity import Caller
from engine.views import Origin

if TYPE_CHECKING:
    from engine.app import Engine


@dataclass(frozen=True)
class Context:
    """Who sent a command and where; adapters build one per incoming message."""

    caller: Caller
    reply_ref: str = ""  # platform id of the message this one replies to (correct, feedback)
    attachments: tuple[Attachment, ...] = ()
    origin: Origin = field(default_factory=Origin)  # where job progress goes


@dataclass(frozen=True)
class OptionSpec:
    """One argument of a command: positional (`info MODEL`) or `key=value` (`epochs=3`)."""

    name: str
    type: str = "str"  # str|int|float|file|choice
    choices: tuple[str, ...] = ()
    required: bool = False
    help: str = ""
    positional: bool = False  # given as a bare word, in order, rather than key=value
    rest: bool = False  # positional that takes the rest of the text (chat MESSAGE, ...)


@dataclass(frozen=True)
class CommandSpec:
    name: str
    summary: str  # the docstring's first line
    usage: str  # e.g. "tune NAME [base=MODEL] [epochs=N] ... (+ a Q&A file)"
    options: tuple[OptionSpec, ...] = ()
    help: str = ""  # the whole docstring
    handler: Callable[["Request"], Reply] | None = field(default=None, repr=False, compare=False)
    free_text: bool = False  # the raw text is the argument; key=value words are not options

    @property
    def positionals(self) -> tuple[OptionSpec, ...]:
        return tuple(o for o in self.options if o.positional)

    @property
    def keywords(self) -> tuple[OptionSpec, ...]:
        return tuple(o for o in self.options if not o.positional and o.type != "file")


@dataclass(frozen=True)
class Request:
    """What a handler receives: the engine, the context and the validated values."""

    engine: "Engine"
    ctx: Context
    command: Command
    values: dict[str, Any]
    commands: tuple[CommandSpec, ...] = ()  # every command the dispatcher knows (for help)

    @property
    def caller(self) -> Caller:
        return self.ctx.caller

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None else value


def command(name: str, usage: str, *options: OptionSpec, free_text: bool = False):
    """Declare a handler: its docstring is its help text."""

    def mark(fn: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
        doc = inspect.cleandoc(fn.__doc__ or name)
        fn.spec = CommandSpec(name=name, summary=doc.splitlines()[0], usage=usage,  # type: ignore[attr-defined]
                              options=tuple(options), help=doc, handler=fn,
                              free_text=free_text)
        return fn

    return mark


def arg(name: str, help: str = "", *, type: str = "str", required: bool = True,
        rest: bool = False, choices: tuple[str, ...] = ()) -> OptionSpec:
    return OptionSpec(name=name, type=type, choices=choices, required=required, help=help,
                      positional=True, rest=rest)


def opt(name: str, help: str = "", *, type: str = "str", choices: tuple[str, ...] = (),
        required: bool = False) -> OptionSpec:
    return OptionSpec(name=name, type=type, choices=choices, required=required, help=help)
