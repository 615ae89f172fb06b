"""`gptstore chat MODEL MESSAGE --json` and `gptstore docs add`: the grounded answer as one
JSON document, and a document answered from."""

from __future__ import annotations

import json
from pathlib import Path

from bot.cli.main import main

KEYS = ["model", "version", "answer", "grounded", "sources", "latency_ms"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_chat_json_shows_the_sources_or_the_decline(home: Path, tmp_path: Path,
                                                     tiny_base_dir: Path, capsys,
                                                     monkeypatch) -> None:
    monkeypatch.setenv("GPTSTORE_DEVICE", "cpu")
    monkeypatch.setenv("GPTSTORE_MAX_NEW_TOKENS", "4")
    assert run(capsys, "models", "add", "mini", "--path", str(tiny_base_dir))[0] == 0
    doc = tmp_path / "about.md"
    doc.write_text("# About Acme\n\nAcme Ltd is headquartered in Lisbon, Portugal.\n",
                   encoding="utf-8")
    code, out, _ = run(capsys, "docs", "add", "mini", str(doc), "--json")
    assert code == 0 and json.loads(out) == {"model": "mini", "file": "about.md", "passages": 1}

    code, out, _ = run(capsys, "chat", "mini", "In which city is Acme based?", "--json")
    assert code == 0
    answer = json.loads(out)
    assert list(answer) == KEYS
    assert answer["model"] == "mini" and answer["version"] is None
    assert answer["grounded"] is True
    assert [list(s) for s in answer["sources"]] == [["ref", "question", "text", "score"]]
    assert answer["sources"][0]["ref"] == "about.md, passage 1"
    assert answer["sources"][0]["question"] == "About Acme"
    assert 0 < answer["sources"][0]["score"] <= 1 and isinstance(answer["latency_ms"], int)

    code, out, _ = run(capsys, "chat", "mini", "What is the capital of Australia?", "--json")
    declined = json.loads(out)
    assert code == 0 and declined["grounded"] is False and declined["sources"] == []
    assert declined["answer"].startswith("I can't answer that from my files.")

    code, out, _ = run(capsys, "chat", "mini", "In which city is Acme based?")
    assert code == 0 and out.splitlines()[-1] == "from about.md, passage 1: About Acme"


def test_docs_add_refuses_a_missing_or_binary_file_in_one_sentence(home: Path, tmp_path: Path,
                                                                  tiny_base_dir: Path,
                                                                  capsys) -> None:
    assert run(capsys, "models", "add", "mini", "--path", str(tiny_base_dir))[0] == 0
    code, _, err = run(capsys, "docs", "add", "mini", str(tmp_path / "nope.md"))
    assert code == 1 and err.startswith("Error: Cannot read") and "Traceback" not in err
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02")
    code, _, err = run(capsys, "docs", "add", "mini", str(binary))
    assert code == 1 and err.strip() == ("Error: blob.txt is a binary file, not text; attach "
                                         "a plain-text or Markdown document.")
