"""Command text to a Command value: `/store tune acme epochs=3` -> Command("tune", ("acme",), {"epochs": "3"}).

Slack, Discord and the console all hand their text here, so they understand exactly the same
language. Quoted words keep their spaces ("..." '...' and the curly quotes chat apps insert);
`key=value` words become options. Free-text commands (chat, correct) keep the raw text in
`Command.text` and never fail on an apostrophe.
"""

from __future__ import annotations

import re

from bot.core.command import Attachment, Command
from engine.errors import InvalidInput

PREFIXES = ("/store", "store")
FREE_TEXT = frozenset({"chat", "correct"})
QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u201d": "\u201d", "\u2018": "\u2019",
          "\u2019": "\u2019", "\u00ab": "\u00bb"}
OPTION = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$", re.DOTALL)


def parse(text: str, attachments: tuple[Attachment, ...] | list[Attachment] = ()) -> Command:
    """Parse one request. Empty text is `help`; unbalanced quotes raise InvalidInput."""
    rest = _strip_prefix(text.strip())
    if not rest:
        return Command(name="help", attachments=tuple(attachments))
    head, _, tail = rest.partition(" ")
    name = head.strip().lower().lstrip("/")
    tail = tail.strip()
    try:
        words = split_words(tail)
    except InvalidInput:
        if name not in FREE_TEXT:
            raise
        words = [(word, False) for word in tail.split()]
    args: list[str] = []
    options: dict[str, str] = {}
    for word, quoted in words:
        match = None if quoted else OPTION.match(word)
        if match:
            options[match.group(1).lower().replace("-", "_")] = match.group(2)
        else:
            args.append(word)
    return Command(name=name, args=tuple(args), options=options,
                   attachments=tuple(attachments), text=tail)


def _strip_prefix(text: str) -> str:
    lowered = text.lower()
    for prefix in PREFIXES:
        if lowered == prefix:
            return ""
        if lowered.startswith(prefix + " ") or lowered.startswith(prefix + "\n"):
            return text[len(prefix):].strip()
    return text


def split_words(text: str) -> list[tuple[str, bool]]:
    """Split into (word, was_fully_quoted) pairs.

    A quote opens only at the start of a word or right after `=` (so `what's` stays one
    word); `key="two words"` yields the word `key=two words`.
    """
    words: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        word: list[str] = []
        fully_quoted = text[i] in QUOTES
        while i < n and not text[i].isspace():
            ch = text[i]
            if ch in QUOTES and (i == start or text[i - 1] == "="):
                close = QUOTES[ch]
                end = text.find(close, i + 1)
                if end < 0 and close != ch:
                    end = text.find(ch, i + 1)
                if end < 0:
                    raise InvalidInput(
                        f"The quote {ch} at character {i + 1} is never closed; "
                        "close it or remove it.")
                word.append(text[i + 1:end])
                i = end + 1
                continue
            word.append(ch)
            i += 1
        words.append(("".join(word), fully_quoted and i - start >= 2))
    return words
