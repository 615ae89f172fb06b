"""The knowledge commands through the real core, as any adapter sends them: who may see and
answer gaps, set the handoff and threshold, add documents; and bad input answered in one
sentence with nothing stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.core.dispatch import Dispatcher
from bot.core.text import footer_lines
from engine.knowledge.documents import MAX_DOCUMENT_BYTES
from engine.settings import Settings
from tests.helpers.knowledge import Grounded, session_embedder
from tests.helpers.tenants import say, shown


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return session_embedder(tmp_path_factory)


@pytest.fixture
def store(settings: Settings, tiny_base_dir: Path, embedder: Any):
    grounded = Grounded(settings, tiny_base_dir, embedder)
    yield grounded
    grounded.engine.close()


@pytest.fixture
def core(store: Grounded) -> Dispatcher:
    return Dispatcher(store.engine)


def one_gap(store: Grounded, core: Dispatcher) -> int:
    say(core, store.member, "chat acme What is the capital of Australia?")
    return store.engine.knowledge_admin.gaps(store.member, "acme")[0].id


def test_a_chat_answer_shows_the_entry_it_came_from(store: Grounded, core: Dispatcher) -> None:
    reply = say(core, store.member, "chat acme I forgot my login password. What now?")
    assert footer_lines(reply)[0] == "from sample_faq.csv, row 3: How do I reset my password?"


def test_members_see_gaps_and_only_an_admin_of_the_workspace_answers_them(
        store: Grounded, core: Dispatcher) -> None:
    gap = one_gap(store, core)
    listed = shown(say(core, store.member, "gaps acme"))
    assert f"Gap {gap}: asked 1x" in listed and "What is the capital of Australia?" in listed

    refused = say(core, store.member, f"answer {gap} Canberra.")
    assert refused.kind == "error" and "Only an admin" in refused.text
    assert store.ask("What is the capital of Australia?").grounded is False  # nothing stored

    done = say(core, store.admin, f"answer {gap} Canberra is the capital of Australia.")
    assert done.kind == "success" and f"Gap {gap} is answered" in done.text
    again = store.ask("Which city is Australia's capital?")
    assert again.grounded is True and again.sources[0].ref == f"gap {gap}"
    assert "Gap " not in shown(say(core, store.member, "gaps acme"))


def test_another_workspace_neither_sees_nor_answers_this_workspaces_gaps(
        store: Grounded, core: Dispatcher) -> None:
    gap = one_gap(store, core)
    assert "Gap " not in shown(say(core, store.stranger, "gaps acme"))  # a public model
    reply = say(core, store.stranger, f"answer {gap} Canberra.")
    assert reply.kind == "error"
    assert reply.text == (f"There is no gap {gap} in this workspace; `/store gaps MODEL` "
                          "lists them.")
    assert store.engine.knowledge_admin.gaps(store.member, "acme")[0].id == gap  # still open


def test_an_unknown_gap_and_an_overlong_answer_are_refused_and_store_nothing(
        store: Grounded, core: Dispatcher) -> None:
    gap = one_gap(store, core)
    unknown = say(core, store.admin, "answer 999 Something.")
    assert unknown.text == "There is no gap 999 in this workspace; `/store gaps MODEL` lists them."
    too_long = say(core, store.admin, f"answer {gap} " + "word " * 500)
    assert too_long.kind == "error" and "at most 2,000" in too_long.text
    assert store.engine.knowledge_admin.gaps(store.member, "acme")[0].id == gap
    assert store.engine.knowledge.entry_count(store.model.id, None) == 46


def test_handoff_and_threshold_are_for_admins_of_the_models_workspace(
        store: Grounded, core: Dispatcher) -> None:
    refused = say(core, store.member, "handoff acme ask @support-team in #help")
    assert refused.kind == "error" and "Only an admin" in refused.text
    assert say(core, store.stranger, "threshold acme 0.1").kind == "error"
    ok = say(core, store.admin, "handoff acme ask @support-team in #help")
    assert ok.kind == "success"
    declined = say(core, store.member, "chat acme What is the capital of Australia?")
    assert declined.text.endswith("ask @support-team in #help")
    assert say(core, store.admin, "threshold acme 1.5").kind == "error"
    assert say(core, store.admin, "threshold acme 0.99").kind == "success"
    assert store.ask("I forgot my login password. What now?").grounded is False
    card = shown(say(core, store.member, "info acme"))
    assert ('Answers from: 46 entries; declines below 0.99 (admin); hands off with "ask '
            '@support-team in #help"') in card


def test_a_document_is_added_by_attachment_and_answers(store: Grounded, core: Dispatcher
                                                       ) -> None:
    doc = b"# About Acme\n\nAcme Ltd is headquartered in Lisbon, Portugal.\n"
    refused = say(core, store.member, "docs acme", file=doc, filename="about.md")
    assert refused.kind == "error" and "Only the owner" in refused.text
    added = say(core, store.admin, "docs acme", file=doc, filename="about.md")
    assert added.text == "acme now answers from about.md (1 passages)."
    listed = shown(say(core, store.member, "docs acme"))
    assert "about.md (1 passages)" in listed
    assert store.ask("In which city is Acme based?").sources[0].ref == "about.md, passage 1"


@pytest.mark.parametrize("filename, data, says", [
    ("empty.md", b"  \n\n", "empty.md is empty; attach a document with some text in it."),
    ("logo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
     "logo.txt is a binary file, not text; attach a plain-text or Markdown document."),
    ("big.md", b"a" * (MAX_DOCUMENT_BYTES + 1),
     "big.md is 1.0 MB; documents may be at most 1 MB, so split it into smaller files."),
    ("guide.pdf", b"%PDF-1.4", "guide.pdf is not a .txt or .md file; attach a plain-text or "
                               "Markdown document."),
])
def test_a_bad_document_is_refused_in_one_sentence_and_nothing_is_stored(
        store: Grounded, core: Dispatcher, filename: str, data: bytes, says: str) -> None:
    reply = say(core, store.admin, "docs acme", file=data, filename=filename)
    assert reply.kind == "error" and reply.text == says
    assert store.engine.knowledge.documents(store.model.id) == []
