"""Reading Q&A tables (CSV/TSV) into conversations: the delimiter, the header's columns, and
one conversation per row."""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Iterator

from engine.datasets.findings import (
    ANSWER_NAMES,
    QUESTION_NAMES,
    SYSTEM_NAMES,
    Reading,
    clean,
)

CSV_FIELD_LIMIT = 131072  # the csv module's own limit; changing it would be process-wide


def _match(names: list[str], wanted: tuple[str, ...]) -> int | None:
    """Index of the first header naming one of `wanted` (in order of preference)."""
    for want in wanted:
        for index, name in enumerate(names):
            if name == want or (len(want) > 1 and name == want + "s"):
                return index
    return None


def _header_name(raw: str) -> str:
    return re.sub(r"[\s\-]+", "_", raw.replace("\ufeff", "").strip().strip("'\"").lower())


NOT_A_TABLE = ("The file is not a table: its first line has no commas or tabs. Upload a CSV "
               "or TSV with a header row (question,answer), or a JSON / JSON Lines file.")


def pick_delimiter(text: str, filename: str) -> str | None:
    """The separator the header line uses most; None when it has none (not a table)."""
    first = next((line for line in text.split("\n", 50)[:50] if line.strip()), "")
    first = first[:CSV_FIELD_LIMIT]
    if filename.lower().endswith(".tsv") and "\t" in first:
        return "\t"
    counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else None


def read_table(text: str, filename: str) -> Reading:
    """CSV or TSV with a header row naming the question and answer columns."""
    delimiter = pick_delimiter(text, filename)
    reading = Reading("tsv" if delimiter == "\t" else "csv")
    if delimiter is None:
        return reading.refuse(NOT_A_TABLE)
    rows = _csv_rows(text, delimiter, reading)
    header: list[str] | None = None
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            reading.blank += 1
            continue
        if header is None:
            header = [_header_name(cell) for cell in row]
            columns = _columns(header, row, reading)
            if columns is None:
                return reading
            continue
        _table_row(number, row, columns, reading)
    if header is None:
        reading.refuse("The file has no rows at all; it needs a header row "
                       "(question,answer) and one row per Q&A pair.")
    return reading


def _csv_rows(text: str, delimiter: str, reading: Reading) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    number, start, last = 0, 1, []
    while True:
        number += 1
        line = reader.line_num + 1  # where this record starts
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "field limit" in str(exc):
                reading.problems.add(
                    f"row {number}: a field is longer than {CSV_FIELD_LIMIT:,} characters; "
                    "shorten it (an answer that long cannot be trained on) or check that the "
                    "file really is a CSV.")
            else:
                reading.problems.add(f"row {number}: cannot be read as CSV ({exc}); check "
                                     "its quotes.")
            continue
        start, last = line, row
        yield number, row
    # An unclosed quote swallows the rest of the file into the final record.
    if any("\n" in cell for cell in last) and not text.rstrip().endswith('"'):
        reading.problems.add(
            f"row {number - 1}: a quote opened on line {start} is never closed, so the rest "
            "of the file was read into this row; close the quote or remove the stray one.")


def _columns(header: list[str], raw: list[str], reading: Reading) -> dict[str, Any] | None:
    question = _match(header, QUESTION_NAMES)
    answer = _match(header, ANSWER_NAMES)
    instruction, extra = _match(header, ("instruction",)), _match(header, ("input",))
    plain = _match(header, tuple(n for n in QUESTION_NAMES if n not in ("input", "instruction")))
    if plain is None and instruction is not None and extra is not None and extra != answer:
        question_parts = [instruction, extra]  # Alpaca as a table: instruction + input
    else:
        question_parts = [question] if question is not None else []
    if question is None or answer is None:
        found = ", ".join(repr(c.strip()[:40]) for c in raw[:12]) + (" ..." if len(raw) > 12 else "")
        if len(raw) == 1:
            reading.refuse(NOT_A_TABLE)
        else:
            missing = [n for n, i in (("question", question), ("answer", answer)) if i is None]
            reading.refuse(
                f"row 1: no {' and no '.join(missing)} column; the columns found are {found}. Name the columns "
                "'question' and 'answer' (or prompt/response, input/output) in the first row.")
        return None
    return {"question": question_parts, "answer": answer,
            "system": _match(header, SYSTEM_NAMES), "names": header}


def _table_row(number: int, row: list[str], columns: dict[str, Any], reading: Reading) -> None:
    where, size = f"row {number}", len(row)
    parts = [clean(row[i], where, "question", reading) for i in columns["question"] if i < size]
    question = parts[0] if len(parts) == 1 else "\n\n".join(p for p in parts if p)
    index = columns["answer"]
    answer = clean(row[index], where, "answer", reading) if index < size else ""
    if not question or not answer:
        what = "question and the answer are" if not (question or answer) else (
            "question is" if not question else "answer is")
        reading.problems.add(f"{where}: the {what} empty; fill it in or delete the row.")
        return
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    index = columns["system"]
    system = clean(row[index], where, "system prompt", reading) if (
        index is not None and index < size) else ""
    if system:
        messages.insert(0, {"role": "system", "content": system})
    reading.rows.append((number, where, messages))
