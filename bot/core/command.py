"""The command language as values: text like `/store tune acme epochs=3` becomes a Command.

Parsing is shared by Slack, Discord and the console, so all three understand exactly the
same text. Quoted words keep their spaces; `key=value` words become options.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attachment:
    """A file that came with a command (downloaded already: platform URLs expire)."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class Command:
    """One parsed `/store ...` request."""

    name: str  # "search", "tune", ... ("" for a plain chat turn)
    args: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    text: str = ""  # the raw text after the command name, for free-text commands
