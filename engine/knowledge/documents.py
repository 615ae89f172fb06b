"""Documents a model answers from: checking an uploaded .txt/.md file and cutting it into
passages (Markdown headings start a section; long sections split at paragraphs)."""

from __future__ import annotations

import re

from engine.errors import InvalidInput

EXTENSIONS = (".txt", ".md", ".markdown")
MAX_DOCUMENT_BYTES = 1_000_000  # one help page or handbook; bigger: split it
PASSAGE_CHARS = 700  # about 150 words: small enough to go into a 135M model's context
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def read_document(filename: str, data: bytes) -> str:
    """The text of an uploaded document, or InvalidInput saying in one sentence why not."""
    name = filename or "the file"
    if not name.lower().endswith(EXTENSIONS):
        raise InvalidInput(f"{name} is not a .txt or .md file; attach a plain-text or "
                           "Markdown document.")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(f"{name} is {len(data) / 1e6:.1f} MB; documents may be at most "
                           f"{MAX_DOCUMENT_BYTES / 1e6:.0f} MB, so split it into smaller files.")
    if b"\x00" in data:
        raise InvalidInput(f"{name} is a binary file, not text; attach a plain-text or "
                           "Markdown document.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{name} is not UTF-8 text; save it as UTF-8 and attach it "
                           "again.") from None
    if not text.strip():
        raise InvalidInput(f"{name} is empty; attach a document with some text in it.")
    return text


def split_passages(text: str, limit: int = PASSAGE_CHARS) -> list[tuple[str, str]]:
    """(heading, passage) pairs in document order; a passage keeps its section's heading."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in text.replace("\r\n", "\n").split("\n"):
        match = HEADING.match(line)
        if match:
            sections.append((match.group(1).strip(), []))
        else:
            sections[-1][1].append(line)
    passages: list[tuple[str, str]] = []
    for heading, lines in sections:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", "\n".join(lines)) if p.strip()]
        chunk = ""
        for paragraph in paragraphs:
            for piece in _pieces(paragraph, limit):
                if chunk and len(chunk) + len(piece) + 2 > limit:
                    passages.append((heading, chunk))
                    chunk = ""
                chunk = f"{chunk}\n\n{piece}" if chunk else piece
        if chunk:
            passages.append((heading, chunk))
        elif heading and not paragraphs:
            continue
    return passages


def _pieces(paragraph: str, limit: int) -> list[str]:
    """A paragraph longer than `limit`, cut at sentence ends."""
    if len(paragraph) <= limit:
        return [paragraph]
    pieces, current = [], ""
    for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
        while len(sentence) > limit:  # one very long sentence: cut it hard
            pieces.append(sentence[:limit])
            sentence = sentence[limit:]
        if current and len(current) + len(sentence) + 1 > limit:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces
