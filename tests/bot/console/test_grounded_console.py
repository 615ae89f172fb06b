"""Grounding on the console: a document added by path, the answer's source on the line after
it, a decline with the handoff text, and the gap listed and answered."""

from __future__ import annotations

from pathlib import Path

from tests.bot.console.test_repl import Session


def test_docs_by_path_then_a_sourced_answer_a_decline_and_its_gap(engine, tmp_path: Path,
                                                                   tiny_base_dir: Path) -> None:
    session = Session(engine, tmp_path)
    engine.catalog.add_base(session.console.caller, "mini", str(tiny_base_dir))
    (tmp_path / "about.md").write_text("# About Acme\n\nAcme Ltd is headquartered in Lisbon, "
                                       "Portugal.\n", encoding="utf-8")
    assert "no file at missing.md" in session.say("docs mini missing.md")
    assert "mini now answers from about.md (1 passages)." in session.say("docs mini about.md")
    assert "it now says: ask @support-team in #help" in session.say(
        "handoff mini ask @support-team in #help")
    answered = session.say("chat mini In which city is Acme based?")
    assert "from about.md, passage 1: About Acme" in answered
    declined = session.say("chat mini What is the capital of Australia?")
    assert "I can't answer that from my files. ask @support-team in #help" in declined
    gaps = session.say("gaps mini")
    assert "Gap 1: asked 1x" in gaps and "What is the capital of Australia?" in gaps
    assert "Gap 1 is answered" in session.say("answer 1 Canberra is the capital of Australia.")
    assert "from gap 1" in session.say("chat mini Which city is Australia's capital?")
