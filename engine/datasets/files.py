"""Parsing and validating uploaded Q&A files into examples, or one error listing every problem.

Size, archive and encoding checks come first, then the readers (csv_format for tables,
json_format for JSON), then validation: empty fields, duplicates, too few, too long. Every
problem names its row, line or item and says what to do.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from engine.datasets.csv_format import read_table
from engine.datasets.findings import Findings, Reading
from engine.datasets.json_format import read_json
from engine.errors import DatasetInvalid

MIN_EXAMPLES = 10
MAX_EXAMPLE_TOKENS = 1024  # training's default max length; estimated as characters / 4
_ARCHIVES = (
    (b"PK\x03\x04", "a ZIP archive"), (b"PK\x05\x06", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"), (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"), (b"\x28\xb5\x2f\xfd", "a zstd archive"),
)
_OTHER_BINARY = (
    (b"%PDF", "a PDF document"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"), (b"\xd0\xcf\x11\xe0", "an old Excel/Word (OLE) file"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
)
_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
         (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_NON_ASCII = re.compile("[^\x00-\x7f]")
_TYPOGRAPHY = set("–—‘’‚“”„…•€£¥©®™°±«»¿¡§¶·")


@dataclass(frozen=True)
class Example:
    """One training example: a Q&A pair ([user, assistant]) or a whole multi-turn chat."""

    position: int  # row (tables), line (JSON Lines) or item (JSON list) number in the file
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class ParsedFile:
    format: str  # csv|tsv|json|jsonl|openai|sharegpt|alpaca
    examples: list[Example]
    warnings: list[str] = field(default_factory=list)
    encoding: str = "utf-8"


def parse(filename: str, data: bytes, *, max_bytes: int, min_examples: int = MIN_EXAMPLES,
          max_tokens: int = MAX_EXAMPLE_TOKENS) -> ParsedFile:
    """Read and validate an uploaded Q&A file; raise DatasetInvalid with every problem."""
    name = filename or "the file"
    _check_container(name, data, max_bytes)
    text, encoding, note = decode(name, data)
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[") or filename.lower().endswith((".json", ".jsonl", ".ndjson")):
        reading = read_json(text)
    elif stripped[:15].lower().startswith(("<!doctype html", "<html")):
        raise DatasetInvalid(f"{name} is a web page (HTML), not a Q&A file; the download "
                             "probably failed, so upload the file itself again.")
    else:
        reading = read_table(text, filename)
    if note:
        reading.warnings.items.insert(0, note)
    examples = _validate(name, reading, min_examples, max_tokens)
    return ParsedFile(reading.format, examples, reading.warnings.lines("warnings"), encoding)


def _check_container(name: str, data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise DatasetInvalid(
            f"{name} is {_size(len(data))}, over the upload limit of {_size(max_bytes)}.",
            ["Split it into smaller files, or ask the operator to raise GPTSTORE_MAX_UPLOAD_MB."])
    if not data.strip():
        raise DatasetInvalid(f"{name} is empty.", [
            "Upload a CSV with a header row (question,answer) and one row per Q&A pair."])
    for magic, kind in _ARCHIVES:
        if data.startswith(magic):
            if magic.startswith(b"PK") and (b"xl/" in data[:4096] or
                                            name.lower().endswith((".xlsx", ".xlsm"))):
                raise DatasetInvalid(f"{name} is an Excel workbook, not a CSV.", [
                    "Save it as CSV (File > Save As > CSV UTF-8) and upload that file."])
            raise DatasetInvalid(f"{name} is {kind}, not a CSV or JSON file.", [
                "This is a compressed archive, not a CSV; unpack it and upload the file inside."])
    for magic, kind in _OTHER_BINARY:
        if data.startswith(magic):
            raise DatasetInvalid(f"{name} is {kind}, not a Q&A file.", [
                "Upload a CSV, TSV, JSON or JSON Lines file of questions and answers."])


def decode(name: str, data: bytes) -> tuple[str, str, str]:
    """(text, encoding, warning or "") for UTF-8 (BOM or not), UTF-16/32 with a BOM, UTF-16
    without one, or a detected legacy encoding; DatasetInvalid for anything else."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DatasetInvalid(f"{name} starts with a {encoding.upper()} byte-order mark "
                                     "but is not valid in that encoding.", [
                    f"byte {exc.start}: cannot be decoded; save the file again as UTF-8."]) from None
            return text.lstrip("\ufeff"), encoding, ""
    try:
        return data.decode("utf-8"), "utf-8", ""
    except UnicodeDecodeError:
        pass
    text = _utf16_without_bom(data)
    if text is not None:
        return text, "utf-16", ""
    if _looks_binary(data):
        raise DatasetInvalid(f"{name} is binary data, not text.", [
            "Upload a CSV, TSV, JSON or JSON Lines file of questions and answers."])
    bad_lines = _mostly_utf8(data)
    if bad_lines:
        problems = Findings()
        for line, column, byte in bad_lines:
            problems.add(f"line {line}: byte 0x{byte:02x} at column {column} is not UTF-8; "
                         "fix or retype that text, or save the whole file as UTF-8.")
        raise DatasetInvalid(f"{name} has bytes that are not UTF-8 on {len(problems):,} "
                             f"line{'s' * (len(problems) != 1)}.", problems.lines())
    guess = _legacy(data)
    if guess is None:
        raise DatasetInvalid(f"Cannot tell the text encoding of {name}.", [
            "Save the file as UTF-8 (in Excel: File > Save As > CSV UTF-8) and upload it again."])
    text, encoding = guess
    return text, encoding, (f"The file is not UTF-8; it was read as {encoding}. If accented "
                            "letters look wrong, save it as UTF-8 and upload it again.")


def _utf16_without_bom(data: bytes) -> str | None:
    sample = data[:4096]
    if len(sample) < 4 or sample.count(0) < len(sample) // 3:
        return None
    odd_nuls = sample[1::2].count(0)
    encoding = "utf-16-le" if odd_nuls > sample[0::2].count(0) else "utf-16-be"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text[:2000])
    return text if printable >= 0.95 * len(text[:2000]) else None


def _looks_binary(data: bytes) -> bool:
    sample = data[:65536]
    controls = sum(sample.count(b) for b in (*range(0, 9), *range(14, 32)) if b != 27)
    return controls > max(2, len(sample) // 100)


def _mostly_utf8(data: bytes) -> list[tuple[int, int, int]]:
    """Where a UTF-8 file has bytes that are not UTF-8; [] when it is not UTF-8 at all (most
    of its non-ASCII lines fail)."""
    good, bad = 0, []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            good += 1
        except UnicodeDecodeError as exc:
            bad.append((number, exc.start + 1, line[exc.start]))
    return bad if good >= len(bad) else []


def _legacy(data: bytes) -> tuple[str, str] | None:
    """A single-byte or East Asian encoding. charset-normalizer ranks the candidates; among
    near-ties we prefer cp1252 (what Excel on Windows writes) unless it yields symbols where
    the other yields letters (Polish in cp1250, say)."""
    from charset_normalizer import from_bytes

    results = list(from_bytes(data))
    if not results:
        return None
    best = results[0]
    chosen = best.encoding
    tied = [r for r in results if r.chaos <= best.chaos + 0.01]
    if any("cp1252" in r.could_be_from_charset for r in tied):
        try:
            western = data.decode("cp1252")
        except UnicodeDecodeError:
            western = None
        if western is not None and _oddness(western) <= _oddness(str(best)):
            return western, "cp1252"
    return str(best), chosen


def _oddness(text: str) -> int:
    """How many characters of (the start of) a decoding are neither letters nor common
    typography: a wrong code page turns letters into symbols."""
    found = Counter(_NON_ASCII.findall(text, 0, 1_000_000))
    return sum(count for ch, count in found.items() if ch not in _TYPOGRAPHY
               and not unicodedata.category(ch).startswith("L"))


def _validate(name: str, reading: Reading, min_examples: int, max_tokens: int) -> list[Example]:
    examples, first_seen, prompts = [], {}, {}
    duplicates = Findings()
    for position, where, messages in reading.rows:
        # The conversation before the final answer, and the answer, compared ignoring case
        # and spacing. NUL separates the parts: controls were removed from the text.
        prompt = "\0".join(m["role"] + "\0" + m["content"] for m in messages[:-1])
        answer = messages[-1]["content"]
        prompt_key = " ".join(prompt.casefold().split())
        key = (prompt_key, " ".join(answer.casefold().split()))
        if key in first_seen:
            duplicates.add(f"{where} repeats {first_seen[key]}; only the first is kept.")
            continue
        first_seen[key] = where
        if prompt_key in prompts:
            reading.warnings.add(f"{where} asks the same as {prompts[prompt_key]} with a "
                                 "different answer; both are kept, so answers may mix.")
        else:
            prompts[prompt_key] = where
        tokens = (len(prompt) + len(answer)) // 4
        if tokens > max_tokens:
            reading.warnings.add(
                f"{where} is about {tokens} tokens long; training truncates it to the max "
                f"length of {max_tokens} tokens, so the end of the answer is not learned.")
        examples.append(Example(position, messages))
    for line in duplicates.lines("duplicates"):
        reading.warnings.add(line)
    problems = reading.problems
    if len(examples) < min_examples and not reading.fatal:
        skipped = f" ({reading.blank:,} empty rows or lines were skipped)" if reading.blank else ""
        problems.add(f"only {len(examples)} usable example(s){skipped}; at least "
                     f"{min_examples} are needed, so add {min_examples - len(examples)} more "
                     "Q&A pairs.")
    if problems:
        count = len(problems)
        plural = "problem" if count == 1 else f"{count:,} problems"
        raise DatasetInvalid(f"{name} has {'a ' * (count == 1)}{plural} to fix before it can "
                             "be used.", problems.lines())
    return examples


def _size(n: int) -> str:
    if n < 1024 * 1024:
        return f"{n:,} bytes"
    return f"{n / 1024 / 1024:.2f}".rstrip("0").rstrip(".") + " MB"
