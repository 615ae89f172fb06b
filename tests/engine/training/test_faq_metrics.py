"""FAQ figures: citation accuracy, declines, the calibrated threshold, rephrasings and the
grounded training examples built with distractors and with the right entry missing."""

from __future__ import annotations

import csv

import pytest

from engine.datasets import SAMPLE_FAQ
from engine.knowledge.prompt import CONTEXT_HEADER
from engine.training.faq_metrics import (
    calibrate_threshold,
    citation_accuracy,
    declined_share,
    declines,
    mean_token_f1,
)
from engine.training.grounded import Entry, grounded_examples, nearest_entries
from engine.training.rephrase import rephrase


def test_citations_count_only_the_right_entry_and_a_missing_one_is_wrong() -> None:
    assert citation_accuracy(["f, row 2", "f, row 3", None, "f, row 9"],
                             ["f, row 2", "f, row 3", "f, row 4", "f, row 5"]) == 0.5
    assert citation_accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        citation_accuracy(["f, row 2"], [])


def test_mean_token_f1_rewards_the_reference_words() -> None:
    assert mean_token_f1(["Click Forgot password."], ["click forgot password"]) == 1.0
    assert mean_token_f1(["Paris"], ["Click Forgot password"]) == 0.0
    assert mean_token_f1([], []) == 0.0


def test_the_threshold_declines_off_topic_and_keeps_in_scope() -> None:
    in_scope = [0.9, 0.8, 0.7, 0.75, 0.6, 0.85, 0.65, 0.95, 0.7, 0.8]
    off_topic = [0.1, 0.2, 0.3, 0.15, 0.05, 0.25]
    chosen = calibrate_threshold(in_scope, off_topic)
    assert 0.3 < chosen.threshold < 0.6  # between the two groups, with a margin each side
    assert chosen.off_topic_declined == 1.0 and chosen.in_scope_declined == 0.0
    assert declines([0.2, chosen.threshold + 0.01], chosen.threshold) == [True, False]


def test_overlapping_scores_give_up_off_topic_before_in_scope() -> None:
    # One in-scope question scores as low as the off-topic ones: declining it would cost
    # 1/10 > 5% of in-scope questions, so the threshold stays under it.
    in_scope = [0.9, 0.8, 0.7, 0.75, 0.2, 0.85, 0.65, 0.95, 0.7, 0.8]
    off_topic = [0.1, 0.3, 0.25, 0.15]
    chosen = calibrate_threshold(in_scope, off_topic)
    assert chosen.in_scope_declined == 0.0 and chosen.threshold < 0.2
    assert chosen.off_topic_declined == 0.5
    # Allowed to lose 10%, it declines every off-topic question instead.
    looser = calibrate_threshold(in_scope, off_topic, max_wrongly_declined=0.1)
    assert looser.off_topic_declined == 1.0 and looser.in_scope_declined == 0.1


def test_nothing_to_tell_apart_declines_nothing() -> None:
    chosen = calibrate_threshold([0.5, 0.5], [0.9, 0.8])
    assert chosen.threshold == 0.0 and chosen.off_topic_declined == 0.0
    assert declined_share([]) == 0.0


def test_every_sample_question_gets_a_rephrasing_in_other_words() -> None:
    with SAMPLE_FAQ.open(encoding="utf-8") as handle:
        questions = [row["question"] for row in csv.DictReader(handle)]
    for question in questions:
        variants = rephrase(question)
        assert 1 <= len(variants) <= 2
        assert all(v.lower() != question.lower() for v in variants)
    assert rephrase("How do I delete my account?")[0] == "What is the way to remove my profile?"
    assert "Acme Cloud Notes" in rephrase("Can I use Acme Cloud Notes offline?")[0]  # a name
    assert rephrase("Xyz?") == ["Could you tell me: xyz?"]  # no rule matched
    assert rephrase("How do I delete my account?") == rephrase("How do I delete my account?")


ENTRIES = [Entry(f"doors.csv, row {i + 2}", f"What is the code of room {i}?",
                 f"Room {i} opens with code {i}{i}.") for i in range(8)]


def test_grounded_examples_hold_the_entry_among_distractors_or_leave_it_out() -> None:
    neighbours = {i: [(i + 1) % 8, (i + 2) % 8, i, (i + 3) % 8] for i in range(8)}
    built = grounded_examples(ENTRIES, neighbours, system="Be brief.", missing_share=0.25,
                              rephrasings={i: [f"Room {i}: which code?"] for i in range(8)})
    assert len(built) == 8
    missing = [b for b in built if not b.has_entry]
    assert len(missing) == 2  # a quarter without the right entry
    for example in built:
        system, user, answer = example.messages
        assert system == {"role": "system", "content": "Be brief."}
        assert user["content"].startswith(CONTEXT_HEADER)
        assert answer == {"role": "assistant", "content": ENTRIES[example.entry].answer}
        assert len(example.context) == 3 and len(set(example.context)) == 3
        distractors = [j for j in example.context if j != example.entry]
        assert set(distractors) <= set(neighbours[example.entry])  # the nearest ones
        for j in example.context:
            assert ENTRIES[j].answer in user["content"]
        assert user["content"].endswith(f"Question: {example.question}")
    assert {b.question for b in built} & {f"Room {i}: which code?" for i in range(8)}
    assert {b.question for b in built} & {e.question for e in ENTRIES}
    again = grounded_examples(ENTRIES, neighbours, missing_share=0.25)
    assert [b.context for b in again] == [b.context for b in grounded_examples(
        ENTRIES, neighbours, missing_share=0.25)]  # seeded: the same every run


def test_nearest_entries_skip_the_entry_itself() -> None:
    def search(question: str) -> list[str]:
        number = int(question.split()[-1].rstrip("?"))
        return [ENTRIES[number].ref, ENTRIES[(number + 1) % 8].ref, "other.csv, row 2"]

    found = nearest_entries(ENTRIES, search)
    assert found[0] == [1] and found[7] == [0]
