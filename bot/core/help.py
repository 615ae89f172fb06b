"""Help generated from the handlers: their usage lines, docstrings and option specs."""

from __future__ import annotations

from typing import Sequence

from bot.core.reply import Reply
from bot.core.spec import CommandSpec
from bot.core.suggest import did_you_mean
from engine.errors import InvalidInput


def help_reply(commands: Sequence[CommandSpec], name: str | None = None) -> Reply:
    """Every command's usage and summary, or one command's options (help COMMAND)."""
    specs = {spec.name: spec for spec in commands}
    if not name:
        fields = tuple((spec.usage.split(" (+")[0] if spec.name != "tune" else
                        "tune NAME [options] (+ a Q&A file)", spec.summary)
                       for spec in specs.values())
        return Reply(title="Store commands", fields=fields, ephemeral=True,
                     text="Type `/store COMMAND ...` (or just the command in the console). "
                          "A plain message in a channel with a deployed model is a question "
                          "for it. `help COMMAND` shows one command's options.")
    spec = specs.get(name.lower().lstrip("/"))
    if spec is None:
        raise InvalidInput(f"There is no command {name!r}.{did_you_mean(name.lower(), specs)} "
                           "Type `help` to see them all.")
    fields = []
    for option in spec.options:
        label = option.name.upper() if option.positional else (
            "attached file" if option.type == "file" else f"{option.name}=")
        extra = ""
        if option.choices:
            extra = f" ({'|'.join(option.choices)})"
        elif option.type in ("int", "float"):
            extra = " (a number)"
        need = "" if option.required else " (optional)"
        fields.append((label, f"{option.help}{extra}{need}"))
    return Reply(title=spec.usage, text=spec.help, fields=tuple(fields), ephemeral=True)
