"""Parsing and validating uploaded Q&A files: every format, encoding and problem type."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from engine.datasets.files import parse
from engine.errors import DatasetInvalid
from tests.helpers.qa import DATA, MB, qa_csv

LIMIT = 10 * MB


def refused(name: str, data: bytes, **options) -> DatasetInvalid:
    with pytest.raises(DatasetInvalid) as caught:
        parse(name, data, max_bytes=options.pop("max_bytes", LIMIT), **options)
    return caught.value


def jsonl(records: list) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


def pairs(n: int) -> list[tuple[str, str]]:
    return [(f"How do I do task {i}?", f"Open menu {i} and press Go.") for i in range(n)]


# --- formats -------------------------------------------------------------------------------

def test_csv_finds_columns_by_name_in_any_case_and_order() -> None:
    data = b"ID,Answer ,QUESTION,notes\n" + b"\n".join(
        f"{i},Press Go {i}.,Task {i}?,x".encode() for i in range(12))
    parsed = parse("faq.csv", data, max_bytes=LIMIT)
    assert parsed.format == "csv"
    assert parsed.examples[0].messages == [{"role": "user", "content": "Task 0?"},
                                           {"role": "assistant", "content": "Press Go 0."}]
    assert parsed.examples[0].position == 2  # the header is row 1


@pytest.mark.parametrize("header", ["prompt,response", "input,output", "q,a", "query,reply",
                                    "instruction,completion", "Questions,Answers"])
def test_every_documented_column_name_pair_is_understood(header: str) -> None:
    parsed = parse("faq.csv", qa_csv(10, header), max_bytes=LIMIT)
    assert len(parsed.examples) == 10


def test_tsv_and_semicolon_tables() -> None:
    tsv = b"question\tanswer\n" + b"\n".join(f"Q {i}, really?\tA, {i}".encode() for i in range(10))
    parsed = parse("faq.tsv", tsv, max_bytes=LIMIT)
    assert parsed.format == "tsv" and parsed.examples[3].messages[0]["content"] == "Q 3, really?"
    semi = b"question;answer\n" + b"\n".join(f"Q {i};A {i}".encode() for i in range(10))
    assert parse("faq.csv", semi, max_bytes=LIMIT).examples[9].messages[1]["content"] == "A 9"


def test_csv_with_embedded_newlines_quotes_and_crlf_parses_correctly() -> None:
    parsed = parse("q.csv", (DATA / "quoted_multiline.csv").read_bytes(), max_bytes=LIMIT)
    assert len(parsed.examples) == 12
    assert parsed.examples[1].messages[1]["content"] == (
        'Yes:\n1. open File > Export\n2. pick "PDF", then Save')
    assert parsed.examples[2].messages[0]["content"] == (
        'Is there a "dark mode", like in the phone app?')
    assert [e.position for e in parsed.examples[:3]] == [2, 3, 4]  # rows, not physical lines


def test_system_column_becomes_a_system_message() -> None:
    data = b"system,question,answer\n" + b"\n".join(
        f"Be brief.,Q{i},A{i}".encode() for i in range(10))
    roles = [m["role"] for m in parse("s.csv", data, max_bytes=LIMIT).examples[0].messages]
    assert roles == ["system", "user", "assistant"]


def test_json_lines_and_json_lists_with_question_answer_keys() -> None:
    records = [{"Question": q, "Answer": a} for q, a in pairs(10)]
    assert parse("f.jsonl", jsonl(records), max_bytes=LIMIT).format == "jsonl"
    as_list = parse("f.json", json.dumps(records).encode(), max_bytes=LIMIT)
    assert as_list.format == "json" and as_list.examples[4].position == 5
    wrapped = parse("f.json", json.dumps({"data": records}).encode(), max_bytes=LIMIT)
    assert len(wrapped.examples) == 10


def test_openai_chat_keeps_multi_turn_conversations_whole() -> None:
    parsed = parse("chat.jsonl", (DATA / "chat_openai.jsonl").read_bytes(), max_bytes=LIMIT)
    assert parsed.format == "openai" and len(parsed.examples) == 12
    first = parsed.examples[0].messages
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant"]
    assert first[-1]["content"] == "Contact support with your account name."


def test_openai_content_parts_are_joined() -> None:
    records = [{"messages": [{"role": "user", "content": [{"type": "text", "text": q}]},
                             {"role": "assistant", "content": a}]} for q, a in pairs(10)]
    parsed = parse("c.jsonl", jsonl(records), max_bytes=LIMIT)
    assert parsed.examples[0].messages[0]["content"] == "How do I do task 0?"


def test_sharegpt_roles_are_mapped() -> None:
    parsed = parse("s.json", (DATA / "sharegpt.json").read_bytes(), max_bytes=LIMIT)
    assert parsed.format == "sharegpt"
    assert parsed.examples[0].messages == [
        {"role": "user", "content": "How do I reset my password?"},
        {"role": "assistant", "content": "Use Forgot password on the sign-in page."}]


def test_alpaca_joins_instruction_and_input_as_the_question() -> None:
    parsed = parse("a.json", (DATA / "alpaca.json").read_bytes(), max_bytes=LIMIT)
    assert parsed.format == "alpaca"
    assert parsed.examples[0].messages[0]["content"] == "How do I reset my password?\n\nPlan: Free"
    assert parsed.examples[1].messages[0]["content"] == "Can I export to PDF?"


def test_alpaca_as_a_table() -> None:
    data = b"instruction,input,output\n" + b"\n".join(
        f"Task {i},ctx {i},Done {i}".encode() for i in range(10))
    assert parse("a.csv", data, max_bytes=LIMIT).examples[0].messages[0]["content"] == (
        "Task 0\n\nctx 0")


# --- encodings -----------------------------------------------------------------------------

def test_utf8_with_bom_reads_the_first_column_name() -> None:
    parsed = parse("bom.csv", b"\xef\xbb\xbf" + qa_csv(10), max_bytes=LIMIT)
    assert len(parsed.examples) == 10 and not parsed.warnings


def test_cp1252_is_detected_and_warned_about() -> None:
    parsed = parse("fr.csv", (DATA / "faq_cp1252.csv").read_bytes(), max_bytes=LIMIT)
    assert parsed.encoding == "cp1252"
    assert parsed.examples[0].messages[0]["content"] == "Où est mon reçu ?"
    assert parsed.examples[1].messages[1]["content"] == "Plus coûte 4 € par mois."
    assert "not UTF-8" in parsed.warnings[0]


def test_utf16_with_bom_and_without() -> None:
    data = (DATA / "faq_utf16.tsv").read_bytes()
    with_bom = parse("fr.tsv", data, max_bytes=LIMIT)
    assert with_bom.examples[3].messages[1]["content"] == (
        "Cliquez sur Partager et saisissez l’adresse e-mail.")
    without = parse("fr.tsv", data[2:], max_bytes=LIMIT)  # the BOM was FF FE: little-endian
    assert without.examples == with_bom.examples


def test_polish_cp1250_is_not_misread_as_cp1252() -> None:
    text = "question,answer\n" + "".join(
        f"Jak zsynchronizować notatkę {i}?,Otwórz menu Ustawienia i wybierz Łączność {i}.\n"
        for i in range(10))
    parsed = parse("pl.csv", text.encode("cp1250"), max_bytes=LIMIT)
    assert parsed.examples[0].messages[0]["content"] == "Jak zsynchronizować notatkę 0?"


def test_a_few_bad_bytes_in_a_utf8_file_are_reported_by_line() -> None:
    data = qa_csv(12).replace(b"task 4?", "tâsk 4?".encode()).replace(b"task 7?", b"task \xff7?")
    error = refused("bad.csv", data)
    assert "not UTF-8" in error.summary
    assert error.problems == [
        "line 9: byte 0xff at column 18 is not UTF-8; fix or retype that text, or save the "
        "whole file as UTF-8."]


# --- problems ------------------------------------------------------------------------------

def test_missing_columns_lists_the_columns_found() -> None:
    error = refused("faq.csv", b"Frage,Antwort\n" + b"a,b\n" * 12)
    assert "no question and no answer column" in str(error)
    assert "'Frage', 'Antwort'" in str(error)
    only_answer = refused("faq.csv", b"topic,answer\n" + b"a,b\n" * 12)
    assert "no question column" in str(only_answer) and "'topic', 'answer'" in str(only_answer)


def test_every_problem_is_listed_at_once_with_its_row() -> None:
    data = qa_csv(10).replace(b"Open menu 3 and press Go 3.", b"").replace(
        b"How do I do task 8?", b"  ")
    error = refused("faq.csv", data)
    assert error.summary == "faq.csv has 3 problems to fix before it can be used."
    assert error.problems == [
        "row 5: the answer is empty; fill it in or delete the row.",
        "row 10: the question is empty; fill it in or delete the row.",
        "only 8 usable example(s); at least 10 are needed, so add 2 more Q&A pairs."]


def test_empty_fields_are_problems_with_their_row_number() -> None:
    data = qa_csv(14).replace(b"Open menu 3 and press Go 3.", b"").replace(
        b"How do I do task 8?", b"  ")
    error = refused("faq.csv", data)
    assert error.summary == "faq.csv has 2 problems to fix before it can be used."
    assert error.problems == [
        "row 5: the answer is empty; fill it in or delete the row.",
        "row 10: the question is empty; fill it in or delete the row."]


def test_json_problems_name_the_line() -> None:
    records = [json.dumps({"question": q, "answer": a}) for q, a in pairs(12)]
    records[2] = '{"question": "broken", '
    records[5] = json.dumps({"question": "x", "answer": ""})
    records[7] = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    records[9] = json.dumps({"title": "x", "body": "y"})
    error = refused("f.jsonl", "\n".join(records).encode())
    text = str(error)
    assert "line 3: not valid JSON" in text
    assert "line 6: 'answer' is empty" in text
    assert "line 8: the conversation needs a user message and must end with an assistant" in text
    assert "line 10: no question and answer fields (found 'title', 'body')" in text


def test_too_few_examples_says_how_many_are_needed() -> None:
    error = refused("faq.csv", qa_csv(7))
    assert error.problems == ["only 7 usable example(s); at least 10 are needed, so add 3 more "
                              "Q&A pairs."]


def test_duplicates_are_warned_about_and_kept_once() -> None:
    data = qa_csv(10) + b"How do I do task 2?,Open menu 2 and press Go 2.\n"
    parsed = parse("faq.csv", data, max_bytes=LIMIT)
    assert len(parsed.examples) == 10
    assert "row 12 repeats row 4; only the first is kept." in parsed.warnings


def test_same_question_with_another_answer_is_kept_with_a_warning() -> None:
    parsed = parse("faq.csv", qa_csv(10) + b"How do I do task 2?,Call us.\n", max_bytes=LIMIT)
    assert len(parsed.examples) == 11
    assert any(w.startswith("row 12 asks the same as row 4") for w in parsed.warnings)


def test_too_long_examples_are_warned_about_with_the_limit() -> None:
    long_answer = "word " * 200  # about 250 tokens at 4 characters a token
    data = qa_csv(10) + f"A long one?,{long_answer}\n".encode()
    parsed = parse("faq.csv", data, max_bytes=LIMIT, max_tokens=100)
    assert len(parsed.examples) == 11  # kept
    assert any(w.startswith("row 12 is about 25") and "max length of 100 tokens" in w
               for w in parsed.warnings)


def test_a_file_over_the_size_limit_says_the_limit() -> None:
    error = refused("big.csv", qa_csv(100), max_bytes=1000)
    assert "over the upload limit of 1,000 bytes" in error.summary
    assert "GPTSTORE_MAX_UPLOAD_MB" in str(error)
    ten_mb = refused("big.csv", b"x" * (10 * MB + 1))
    assert "over the upload limit of 10 MB" in ten_mb.summary


def test_prose_is_not_a_table() -> None:
    error = refused("notes.txt", b"Dear team,\nhere are some notes.\n" * 3)
    assert "not a table" in str(error) or "no question" in str(error)
    error = refused("notes.txt", b"Just a paragraph of text without any separators\n")
    assert "The file is not a table" in str(error)


def test_empty_file() -> None:
    assert refused("e.csv", b"  \n").summary == "e.csv is empty."


# --- the sample FAQ ------------------------------------------------------------------------

def test_the_shipped_sample_faq_is_a_good_training_file() -> None:
    data = resources.files("engine.datasets").joinpath("samples/sample_faq.csv").read_bytes()
    parsed = parse("sample_faq.csv", data, max_bytes=LIMIT)
    assert len(parsed.examples) >= 40 and parsed.warnings == []
    questions = {e.messages[0]["content"].casefold() for e in parsed.examples}
    assert len(questions) == len(parsed.examples)
    for example in parsed.examples:
        assert 10 <= len(example.messages[1]["content"].split()) <= 30


def test_utf32_with_bom() -> None:
    parsed = parse("u.csv", qa_csv(10).decode().encode("utf-32"), max_bytes=LIMIT)
    assert parsed.encoding == "utf-32-le" and len(parsed.examples) == 10
