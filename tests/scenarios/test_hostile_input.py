"""Hostile uploads (issue 9 part 4): each gets a clear error, nothing crashes or hangs, and
nothing partial is stored - no dataset, no example, no file in the uploads folder."""

from __future__ import annotations

import gzip
import io
import json
import random
import zipfile
from pathlib import Path

import pytest

from engine.datasets.service import Datasets
from engine.errors import DatasetInvalid
from engine.identity import Caller
from engine.settings import Settings
from tests.helpers.qa import DATA, open_datasets, qa_csv, stored

BOB = Caller(platform="discord", workspace="discord:G1", user="discord:G1:42")


@pytest.fixture
def datasets(settings: Settings, tmp_path: Path) -> Datasets:
    return open_datasets(settings, tmp_path)


def refused(datasets: Datasets, name: str, data: bytes) -> DatasetInvalid:
    with pytest.raises(DatasetInvalid) as caught:
        datasets.store(BOB, name, data)
    assert stored(datasets) == (0, 0, [])  # nothing partial left behind
    error = caught.value
    assert "\n" not in error.summary and len(error.problems) <= 21
    return error


def test_binary_junk(datasets: Datasets) -> None:
    junk = random.Random(0).randbytes(200_000)
    error = refused(datasets, "faq.csv", junk)
    assert error.summary == "faq.csv is binary data, not text."


@pytest.mark.parametrize("archive, kind", [
    (gzip.compress(qa_csv(20)), "a gzip archive"),
    (lambda: None, "a ZIP archive"),
])
def test_a_compressed_archive_renamed_csv(datasets: Datasets, archive, kind: str) -> None:
    if callable(archive):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as folder:
            folder.writestr("faq.csv", qa_csv(20))
        archive = buffer.getvalue()
    error = refused(datasets, "faq.csv", archive)
    assert error.summary == f"faq.csv is {kind}, not a CSV or JSON file."
    assert error.problems == [
        "This is a compressed archive, not a CSV; unpack it and upload the file inside."]


def test_an_excel_workbook_is_told_to_save_as_csv(datasets: Datasets) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as book:
        book.writestr("xl/workbook.xml", "<workbook/>")
    error = refused(datasets, "faq.xlsx", buffer.getvalue())
    assert "Excel workbook" in error.summary and "CSV UTF-8" in error.problems[0]


def test_a_sign_in_page_instead_of_the_file(datasets: Datasets) -> None:
    error = refused(datasets, "faq.csv", b"<!DOCTYPE html><html><body>Sign in</body></html>")
    assert "web page (HTML)" in error.summary


def test_a_very_long_line_without_separators(datasets: Datasets) -> None:
    error = refused(datasets, "faq.csv", b"A" * 3_000_000)
    assert error.problems == ["The file is not a table: its first line has no commas or tabs. "
                              "Upload a CSV or TSV with a header row (question,answer), or a "
                              "JSON / JSON Lines file."]


def test_a_field_longer_than_the_csv_limit(datasets: Datasets) -> None:
    data = qa_csv(12) + b'"huge",' + b"x" * 200_000 + b"\n"
    error = refused(datasets, "faq.csv", data)
    assert error.problems[0].startswith("row 14: a field is longer than 131,072 characters")


def test_a_very_long_json_line(datasets: Datasets) -> None:
    data = b'{"question": "' + b"q" * 2_000_000 + b'"' + b"\n" + b"\n".join(
        json.dumps({"question": f"Q{i}", "answer": f"A{i}"}).encode() for i in range(12))
    error = refused(datasets, "faq.jsonl", data)
    assert error.problems[0].startswith("line 1: not valid JSON")


def test_deeply_nested_json(datasets: Datasets) -> None:
    error = refused(datasets, "faq.json", b"[" * 200_000 + b"]" * 200_000)
    assert error.problems[0].startswith("line 1: the JSON is nested too deeply")
    lines = [json.dumps({"question": f"Q{i}", "answer": f"A{i}"}) for i in range(12)]
    lines[4] = '{"question": ' + "[" * 100_000
    error = refused(datasets, "faq.jsonl", "\n".join(lines).encode())
    assert error.problems == ["line 5: the JSON is nested too deeply to be a Q&A file; each "
                              'record should be a flat object like {"question": "...", '
                              '"answer": "..."}.']


def test_nested_values_where_text_belongs(datasets: Datasets) -> None:
    records = [{"question": f"Q{i}", "answer": f"A{i}"} for i in range(12)]
    records[3]["answer"] = {"a": [[[["deep"]]]]}
    error = refused(datasets, "faq.json", json.dumps(records).encode())
    assert error.problems == ["item 4: answer is an object; it must be text."]


def test_a_number_with_thousands_of_digits(datasets: Datasets) -> None:
    lines = [json.dumps({"question": f"Q{i}", "answer": f"A{i}"}) for i in range(12)]
    lines[2] = '{"question": "Q", "answer": ' + "9" * 5000 + "}"
    error = refused(datasets, "faq.jsonl", "\n".join(lines).encode())
    assert error.problems == ["line 3: a number in the JSON has thousands of digits; remove it."]


@pytest.mark.parametrize("data, expected", [
    # UTF-8 with Windows-1252 lines pasted in: the bad lines are named
    (qa_csv(10).replace(b"task 1?", "tâsk 1?".encode()).replace(b"task 5?", "tâsk 5?".encode(
        "cp1252")), "line 7: byte 0xe2 at column 14 is not UTF-8"),
    # a UTF-16 byte-order mark on text that is not UTF-16
    (b"\xff\xfe" + b"q\x00" + b"\x00\xd8", "starts with a UTF-16-LE byte-order mark"),
])
def test_wrong_encodings(datasets: Datasets, data: bytes, expected: str) -> None:
    assert expected in str(refused(datasets, "faq.csv", data))


def test_a_legacy_encoding_is_read_not_refused(datasets: Datasets) -> None:
    report = datasets.store(BOB, "fr.csv", (DATA / "faq_cp1252.csv").read_bytes())
    assert report.n_examples == 11 and "read as cp1252" in report.warnings[0]


def test_csv_with_embedded_newlines_and_quotes_parses(datasets: Datasets) -> None:
    report = datasets.store(BOB, "q.csv", (DATA / "quoted_multiline.csv").read_bytes())
    answers = [m[1]["content"] for m in datasets.examples(report.dataset_id)]
    assert 'Yes:\n1. open File > Export\n2. pick "PDF", then Save' in answers


def test_an_unclosed_quote_is_pointed_at(datasets: Datasets) -> None:
    data = qa_csv(15).replace(b"task 6?,Open", b'task 6?,"Open')
    error = refused(datasets, "faq.csv", data)
    assert error.problems[0].startswith("row 8: a quote opened on line 8 is never closed")


@pytest.mark.timeout(120)  # a hang guard, not a speed test
def test_a_million_empty_rows(datasets: Datasets) -> None:
    error = refused(datasets, "faq.csv", b"question,answer\n" + b",\n" * 1_000_000)
    assert error.problems == ["only 0 usable example(s) (1,000,000 empty rows or lines were "
                              "skipped); at least 10 are needed, so add 10 more Q&A pairs."]


@pytest.mark.timeout(120)
def test_a_flood_of_bad_rows_lists_twenty_and_counts_the_rest(datasets: Datasets) -> None:
    error = refused(datasets, "faq.csv", b"question,answer\n" + b"a,\n" * 200_000)
    assert error.summary == "faq.csv has 200,001 problems to fix before it can be used."
    assert error.problems[0] == "row 2: the answer is empty; fill it in or delete the row."
    assert error.problems[-1] == "... and 199,981 more problems like these."


def test_formula_injection_is_kept_as_inert_text_with_a_warning(datasets: Datasets) -> None:
    data = qa_csv(10) + b'How do I sum?,"=HYPERLINK(""http://evil.example"",""click"")"\n' \
        + b"What is cmd?,=cmd|' /C calc'!A0\n"
    report = datasets.store(BOB, "faq.csv", data)
    answers = [m[1]["content"] for m in datasets.examples(report.dataset_id)]
    assert '=HYPERLINK("http://evil.example","click")' in answers
    assert "=cmd|' /C calc'!A0" in answers
    assert sum("spreadsheet formula" in w for w in report.warnings) == 2


def test_control_characters_are_removed_with_a_warning(datasets: Datasets) -> None:
    data = qa_csv(10).replace(b"press Go 3.", b"press\x00 Go\x1b[31m 3.\x07").replace(
        b"task 4?", "task\u202e 4?".encode())
    report = datasets.store(BOB, "faq.csv", data)
    texts = [m["content"] for ex in datasets.examples(report.dataset_id) for m in ex]
    assert "Open menu 3 and press Go[31m 3." in texts and "How do I do task 4?" in texts
    assert "row 5: removed 3 control character(s) from the answer." in report.warnings
    assert "row 6: removed 1 control character(s) from the question." in report.warnings


def test_lone_surrogates_from_json_escapes_are_removed(datasets: Datasets) -> None:
    records = [{"question": f"Q{i}", "answer": f"A{i}"} for i in range(10)]
    records[0]["answer"] = "A0 \\ud800"
    data = json.dumps(records).replace("\\\\ud800", "\\ud800").encode()
    report = datasets.store(BOB, "faq.json", data)
    assert datasets.examples(report.dataset_id)[0][1]["content"] == "A0"
