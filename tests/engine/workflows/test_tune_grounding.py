"""The tune job's grounding with the tiny model: the file is indexed for answers with
sources, the decline threshold is chosen from data, stored and shown on the card, and the
grounded examples hold the right entry among distractors or leave it out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.core.cards import card_reply
from engine.errors import Cancelled
from engine.knowledge.prompt import CONTEXT_HEADER
from engine.workflows.grounding import REPHRASED_BY_RULES, REPHRASED_FROM_FILE, Grounding
from engine.workflows.tune import run_tune
from tests.engine.workflows.test_tune import CSV, context

CODES = ["K7", "Q2", "Z9", "M4", "B8", "T3", "W6", "R1", "P5", "H0", "C4", "D2"]


def grounded_context(engine, admin, tmp_path, reports, stop=lambda: False, dataset_id=None):
    ctx = context(engine, admin, tmp_path / "ckpt", reports, stop, dataset_id)
    model_id = engine.catalog.resolve(admin, "door-bot").id
    return replace(ctx, knowledge=engine.knowledge, model_id=model_id)


def test_a_tune_indexes_its_file_and_keeps_the_threshold_it_chose(engine, admin,
                                                                 tmp_path) -> None:
    reports: list = []
    ctx = grounded_context(engine, admin, tmp_path, reports)
    result = run_tune(ctx)
    figures = result["grounded"]
    assert figures["entries"] == 12 and figures["n_rephrased"] == 12
    assert figures["rephrased_from"] == REPHRASED_BY_RULES
    assert figures["threshold_chosen_by"] == "tuning" and 0.0 < figures["threshold"] <= 1.0
    for key in ("rephrased_f1", "citation_accuracy", "off_topic_declined", "in_scope_declined"):
        assert 0.0 <= figures[key] <= 1.0
    knowledge, model_id = engine.knowledge, ctx.model_id
    # The threshold is the model's now, chosen by tuning.
    assert knowledge.threshold(model_id) == figures["threshold"]
    assert knowledge.threshold_by(model_id) == "tuning"
    # The live version answers from its file's rows, cited by row number (header = row 1).
    found = knowledge.search(model_id, result["version"], "Which code opens room 7?", k=3)
    assert found[0].ref == "doors.csv, row 9" and found[0].text == "Room 7 opens with code R1."
    assert found[0].score >= figures["threshold"]  # in scope: answered
    off = knowledge.search(model_id, result["version"], "What is the capital of Germany?", k=1)
    assert not off or off[0].score < figures["threshold"]  # off topic: declined
    assert knowledge.search(model_id, -ctx.job_id, "Which code opens room 7?") == []  # no stage
    # The figures are on the model card and in the job's last report.
    card = card_reply(engine.catalog.card(admin, "door-bot"))
    shown = dict(card.fields)
    assert shown["Decline threshold"] == f"{figures['threshold']:.2f} (chosen by tuning)"
    assert shown["Citations right"] == f"{figures['citation_accuracy']:.0%}"
    assert shown["Token F1 on rephrased questions"].endswith("(12 from the rewording rules)")
    assert "chosen by tuning" in reports[-1][1] and "rephrased questions" in reports[-1][1]
    assert "indexing" in {data.get("phase") for _, _, data, _ in reports}


def test_grounded_examples_hold_retrieved_distractors_and_sometimes_miss_the_entry(
        engine, admin, tmp_path) -> None:
    ctx = grounded_context(engine, admin, tmp_path, [])
    grounding = Grounding.prepare(ctx, engine.knowledge, "doors.csv")
    examples = grounding.training_examples()
    assert len(examples) == 24  # two grounded copies of each of the 12 entries
    with_entry, sizes = 0, set()
    for i, (user, answer) in enumerate(examples):
        entry = i % 12
        assert user["role"] == "user" and user["content"].startswith(CONTEXT_HEADER)
        shown = user["content"].count("opens with code")
        assert 1 <= shown <= 3  # the entry among up to two retrieved distractors
        sizes.add(shown)
        assert answer["content"] == f"Room {entry} opens with code {CODES[entry]}."
        with_entry += answer["content"] in user["content"]
        asked = user["content"].rsplit("Question: ", 1)[1]
        own = grounding.entries[entry].question
        if i < 12:
            assert asked == own  # the first copy asks in the file's words
        else:  # the second in other words, and not those the figures are measured with
            assert asked != own and asked != grounding.probes[entry].question
    assert sizes == {1, 2, 3}
    assert with_entry == 20  # a fifth of each copy trained with the right entry missing
    only_train = grounding.training_examples(["What is the door code of room 0?"])
    assert len(only_train) == 2


def test_a_validation_file_of_rephrasings_is_measured_not_indexed(engine, admin,
                                                                  tmp_path) -> None:
    rephrased = ("question,answer\n"
                 "Which code opens room 3?,Room 3 opens with code M4.\n"
                 "Room 8: how do I get in?,Room 8 opens with code P5.\n")
    dataset = engine.datasets.store(admin, "doors.csv", CSV.encode(),
                                    validation=("rephrased.csv", rephrased.encode()))
    ctx = grounded_context(engine, admin, tmp_path, [], dataset_id=dataset.dataset_id)
    grounding = Grounding.prepare(ctx, engine.knowledge, "doors.csv")
    assert grounding.rephrased_from == REPHRASED_FROM_FILE
    assert [(p.question, grounding.entries[p.entry].ref) for p in grounding.probes] == [
        ("Which code opens room 3?", "doors.csv, row 5"),
        ("Room 8: how do I get in?", "doors.csv, row 10")]
    assert len(grounding.entries) == 12  # the rephrasings are not entries


def test_a_cancelled_tune_leaves_the_knowledge_as_it_was(engine, admin, tmp_path) -> None:
    reports: list = []

    def stop() -> bool:
        return any(data.get("phase") == "final" for _, _, data, _ in reports)

    ctx = grounded_context(engine, admin, tmp_path, reports, stop)
    with pytest.raises(Cancelled):
        run_tune(ctx)
    assert engine.knowledge.threshold_by(ctx.model_id) == "default"
    assert engine.knowledge.search(ctx.model_id, -ctx.job_id, "door code of room 3") == []
    assert engine.knowledge.search(ctx.model_id, 1, "door code of room 3") == []
