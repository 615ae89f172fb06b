"""What every Q&A reader shares: the column and key names, field cleaning, and findings
(problems and warnings) noted against a row, line or item number."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

QUESTION_NAMES = ("question", "q", "prompt", "input", "instruction", "query")
ANSWER_NAMES = ("answer", "a", "response", "output", "completion", "reply")
SYSTEM_NAMES = ("system", "system_prompt")
# C0/C1 control characters (keeping tab and newline), the bidirectional overrides that can
# make text read differently from what it says ("Trojan source"), stray byte-order marks and
# lone surrogates (from JSON "\ud800" escapes; no database or tokenizer accepts them).
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_FORMULA = re.compile(r"^[=+\-@]\s*(?:[A-Za-z][A-Za-z0-9_.]*\s*\(|[A-Za-z]+\|)")
MAX_LISTED = 20


class Findings:
    """Messages of one kind (problems or warnings), keeping only the first few: a million
    bad rows must not build a million-line message."""

    def __init__(self, cap: int = MAX_LISTED) -> None:
        self.cap = cap
        self.items: list[str] = []
        self.more = 0

    def add(self, message: str) -> None:
        if len(self.items) < self.cap:
            self.items.append(message)
        else:
            self.more += 1

    def __len__(self) -> int:
        return len(self.items) + self.more

    def lines(self, what: str = "problems") -> list[str]:
        tail = [f"... and {self.more:,} more {what} like these."] if self.more else []
        return self.items + tail


@dataclass
class Reading:
    """What one reader found: conversations with their positions, plus findings."""

    format: str
    rows: list[tuple[int, str, list[dict[str, str]]]] = field(default_factory=list)
    problems: Findings = field(default_factory=Findings)
    warnings: Findings = field(default_factory=Findings)
    blank: int = 0  # rows or lines with nothing in them, skipped
    fatal: bool = False  # the file failed as a whole (no columns, not JSON, ...)

    def refuse(self, message: str) -> "Reading":
        self.problems.add(message)
        self.fatal = True
        return self


def clean(text: str, where: str, what: str, reading: Reading) -> str:
    """One field as training text: newlines normalised, controls removed, ends stripped."""
    if not text.isprintable():  # the common case (plain one-line text) skips the regexes
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text, removed = _CONTROL.subn("", text)
        if removed:
            reading.warnings.add(
                f"{where}: removed {removed} control character(s) from the {what}.")
    text = text.strip()
    if text[:1] in ("=", "+", "-", "@") and _FORMULA.match(text):
        reading.warnings.add(
            f"{where}: the {what} starts like a spreadsheet formula ({text[:24]}); "
            "it is kept as plain text and never run.")
    return text
