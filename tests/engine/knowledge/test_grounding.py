"""Grounded answers through the real chat path: a rephrased question is answered from the
right entry and cites it; an off-topic one is declined with the handoff text and becomes a
gap; an answered gap and a document answer at once."""

from __future__ import annotations

from storage import catalog as catalog_rows
from tests.helpers.knowledge import Grounded


def last_prompt(store: Grounded) -> str:
    return store.runner.calls[-1][1][-1]["content"]


def test_a_rephrased_question_is_answered_from_the_right_entry_and_cites_it(
        grounded: Grounded) -> None:
    answer = grounded.ask("I forgot my login password. What now?")
    assert answer.grounded is True
    assert answer.sources[0].ref == "sample_faq.csv, row 3"
    assert answer.sources[0].question == "How do I reset my password?"
    # the entry went into the model's context, ahead of the question
    prompt = last_prompt(grounded)
    assert "follow the reset link" in prompt
    assert prompt.endswith("Question: I forgot my login password. What now?")


def test_an_off_topic_question_is_declined_with_the_handoff_text_and_becomes_a_gap(
        grounded: Grounded) -> None:
    grounded.engine.knowledge_admin.set_handoff(grounded.admin, "acme", "ask @support-team in #help")
    calls = len(grounded.runner.calls)
    answer = grounded.ask("What is the capital of Australia?")
    assert answer.grounded is False
    assert answer.sources == ()
    assert answer.text == "I can't answer that from my files. ask @support-team in #help"
    assert len(grounded.runner.calls) == calls  # nothing was generated: nothing invented
    grounded.clock.advance(minutes=5)
    grounded.ask("Which city is the capital of Australia?")  # a rephrasing joins the gap
    grounded.ask("How do I bake sourdough bread?")
    gaps = grounded.engine.knowledge_admin.gaps(grounded.member, "acme")
    assert [(g.question, g.count) for g in gaps] == [
        ("What is the capital of Australia?", 2), ("How do I bake sourdough bread?", 1)]
    assert gaps[0].last_asked > gaps[0].first_asked


def test_an_answered_gap_answers_the_next_ask_and_its_rephrasings(grounded: Grounded) -> None:
    question = "Can I visit your office in Berlin?"
    assert grounded.ask(question).grounded is False
    gap = grounded.engine.knowledge_admin.gaps(grounded.member, "acme")[0]
    grounded.engine.knowledge_admin.answer_gap(grounded.admin, str(gap.id),
                                        "Yes: Alexanderplatz 1, weekdays 9-17.")
    again = grounded.ask("Is it possible to come to the Berlin office?")
    assert again.grounded is True
    assert again.sources[0].ref == f"gap {gap.id}"
    assert "Alexanderplatz 1, weekdays 9-17." in last_prompt(grounded)
    assert grounded.engine.knowledge_admin.gaps(grounded.member, "acme") == []


def test_a_document_passage_answers_what_the_faq_does_not(grounded: Grounded) -> None:
    question = "Where is the company headquartered?"
    assert grounded.ask(question).grounded is False
    doc = (b"# About Acme\n\nAcme Cloud Notes is made by Acme Ltd, a company of 40 people "
           b"headquartered in Lisbon, Portugal, founded in 2019.\n\n# Security\n\nWe "
           b"encrypt all notes at rest with AES-256.\n")
    name, passages = grounded.engine.knowledge_admin.add_document(grounded.admin, "acme",
                                                           "handbook.md", doc)
    assert (name, passages) == ("acme", 2)
    answer = grounded.ask("In which city is Acme based?")
    assert answer.grounded is True
    assert answer.sources[0].ref == "handbook.md, passage 1"
    assert "headquartered in Lisbon" in last_prompt(grounded)


def test_the_threshold_decides_both_ways(grounded: Grounded) -> None:
    knowledge, model = grounded.engine.knowledge, grounded.model
    knowledge.set_threshold(model.id, 0.99, chosen_by="tuning")
    assert grounded.ask("I forgot my login password. What now?").grounded is False
    grounded.engine.knowledge_admin.set_threshold(grounded.admin, "acme", "0")
    assert knowledge.threshold_by(model.id) == "admin"
    assert grounded.ask("What is the capital of Australia?").grounded is True


def test_without_the_embedding_package_keyword_ranking_still_grounds_and_declines(
        keyword_only: Grounded) -> None:
    assert keyword_only.engine.knowledge.method == "keyword"
    answer = keyword_only.ask("how do I reset my password")
    assert answer.sources[0].ref == "sample_faq.csv, row 3"
    assert keyword_only.ask("What is the capital of Australia?").grounded is False


def test_a_model_without_knowledge_answers_from_its_weights_as_before(
        grounded: Grounded, tiny_base_dir) -> None:
    grounded.engine.catalog.add_base(grounded.admin, "plain", str(tiny_base_dir))
    answer = grounded.engine.chat.answer(grounded.admin, "plain", "hello there")
    assert answer.grounded is True and answer.sources == ()
    assert last_prompt(grounded) == "hello there"


def test_an_answered_gap_joins_the_models_curated_training_data(grounded: Grounded) -> None:
    engine = grounded.engine
    question = "Can I visit your office in Berlin?"
    assert grounded.ask(question).grounded is False
    assert engine.curation.training_pairs(grounded.model.id) == []
    gap = engine.knowledge_admin.gaps(grounded.member, "acme")[0]
    engine.knowledge_admin.answer_gap(grounded.admin, f"gap {gap.id}", "Yes, weekdays 9-17.")
    [pair] = engine.curation.training_pairs(grounded.model.id)
    assert (pair.question, pair.answer, pair.origin) == (question, "Yes, weekdays 9-17.", "gap")


def test_an_approved_correction_answers_at_once_and_stops_after_a_forget_me(
        grounded: Grounded) -> None:
    """Approved curated pairs are part of the model's knowledge before any retrain; once the
    pair is gone (its author's forget-me) it no longer answers."""
    question = "Do you deliver parcels to Iceland?"
    assert grounded.ask(question).grounded is False
    pair = grounded.engine.curation.add_approved(
        grounded.model, question, "Yes, to Iceland in 5 to 7 working days.",
        origin="correction", ref="message 1", approved_by=grounded.admin)
    again = grounded.ask("Can you ship my order to Iceland?")
    assert again.grounded is True
    assert again.sources[0].ref == f"curated pair {pair}"
    assert "5 to 7 working days" in last_prompt(grounded)
    grounded.engine.privacy.forget_me(grounded.admin)
    assert grounded.engine.curation.training_pairs(grounded.model.id) == []
    assert grounded.ask("Can you ship my order to Iceland?").grounded is False


def test_only_the_entries_near_the_best_go_into_the_context_and_the_answer_is_held_to_them(
        grounded: Grounded) -> None:
    answer = grounded.ask("I forgot my login password. What now?")
    found = grounded.engine.knowledge.retrieve(grounded.model.id, None,
                                               "I forgot my login password. What now?")
    assert found.context and len(found.context) < len(found.passages)  # a distractor left out
    prompt = last_prompt(grounded)
    for passage in found.passages:
        assert (passage.text in prompt) == (passage in found.context)
    # the runner is asked to hold the answer to the context's Q&A entries
    assert grounded.runner.copied[-1] == tuple(p.text for p in found.context)
    assert answer.grounded is True
    grounded.ask("What is the capital of Australia?")  # declined: nothing generated
    assert len(grounded.runner.copied) == len(grounded.runner.calls)


def test_the_entry_the_answer_gives_is_cited_first() -> None:
    from engine.knowledge.prompt import Passage
    from engine.knowledge.service import Retrieval

    def passage(ref: str, text: str, score: float, origin: str = "file") -> Passage:
        return Passage(ref=ref, question=ref, text=text, score=score, origin=origin)

    found = Retrieval(passages=(passage("faq.csv, row 2", "Click Forgot password.", 0.80),
                                passage("guide.md, passage 1", "Passwords expire yearly.", 0.78,
                                        "document"),
                                passage("faq.csv, row 9", "Use a backup code.", 0.60)),
                      best=0.80, threshold=0.5, has_knowledge=True)
    assert [p.ref for p in found.context] == ["faq.csv, row 2", "guide.md, passage 1"]
    assert found.copyable == ("Click Forgot password.",)  # a document passage is not copied
    assert [p.ref for p in found.sources_for("Passwords expire yearly, so...")] == [
        "guide.md, passage 1", "faq.csv, row 2"]
    assert [p.ref for p in found.sources_for("Something else entirely.")] == [
        "faq.csv, row 2", "guide.md, passage 1"]


def test_a_question_that_shares_the_answers_words_finds_its_entry(grounded: Grounded) -> None:
    # Two of the benchmark's rephrasings that the question + answer vector alone ranked under
    # another entry ("How do I create an Acme Cloud Notes account?", "The app is running
    # slowly"); the answer's own share of the entry's vector (ranking.ANSWER_WEIGHT) finds them.
    def best(question: str) -> str:
        return grounded.engine.knowledge.search(grounded.model.id, None, question, k=1)[0].question

    assert best("How can I remove my Acme Notes profile entirely?") == "How do I delete my account?"
    assert best("Does the app work without an internet connection?") == \
        "Can I use Acme Cloud Notes offline?"
