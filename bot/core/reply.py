"""What a command answers, independent of any platform: each adapter renders a Reply its own
way (Block Kit on Slack, an embed on Discord, plain lines in a terminal)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.views import Source


@dataclass(frozen=True)
class Button:
    label: str
    command: str  # command text to run when pressed, e.g. "deploy acme-support"
    style: str = ""  # ""|primary|danger


@dataclass(frozen=True)
class Reply:
    text: str
    title: str = ""
    fields: tuple[tuple[str, str], ...] = ()  # (name, value) pairs shown as a table
    image: Path | None = None  # e.g. a job's loss plot
    buttons: tuple[Button, ...] = ()
    ephemeral: bool = False  # only the caller sees it (errors, help)
    kind: str = "info"  # info|success|error|busy|chat
    job_id: int | None = None  # set when the command started a job the adapter should follow
    message_id: int | None = None  # set for a chat answer: the logged message id
    note: str = ""  # a chat answer's attribution: which model answered and how to pick another
    sources: tuple[Source, ...] = ()  # a chat answer's sources, shown under it
    card: bool = False  # a model card or a job's result: shown as a card where a platform can

    @property
    def is_error(self) -> bool:
        return self.kind in ("error", "busy")
