"""The learning loop with real training on the tiny model: approved corrections accumulate
across retrains, every version records what trained it, a rollback brings its data view
back, and the gate refuses a candidate taught answers that contradict the file."""

from __future__ import annotations

import shutil

import pytest

from engine.identity import Caller
from engine.retraining.gate import gate
from engine.views import Figure, Origin
from tests.engine.retraining.test_retrain import ScriptedRunner

FAQ = [(f"How do I reset widget {i}?", f"Press reset on widget {i}.") for i in range(12)]
FIRST = [("When are you open?", "Nine to five."), ("Where is the office?", "In Leeds."),
         ("Who runs support?", "Ada does.")]
SECOND = [("How do I pay?", "By card only."), ("Is there parking?", "Yes, at the back."),
          ("Do you ship abroad?", "Only to France.")]
# Two answers for every question of the file, both contradicting it.
WRONG = [(q, wrong) for q, _ in FAQ for wrong in ("Nobody knows that.", "Throw it away.")]
TRAINING = {"epochs": "60", "lr": "2e-2"}  # enough for the tiny model to recall its file
# The tiny model's recall of its file swings between runs on slightly different data (0.80 ->
# 0.59 token F1 for the first retrain below, measured 2026-12-03, when retrieval picked other
# distractors for its grounded copies); a candidate taught contradicting answers loses far
# more (0.80 -> 0.17). The tolerance sits between the two, so each test forces its outcome.
TOLERANCE = 0.3


def faq_csv() -> bytes:
    return ("question,answer\n" + "".join(f'"{q}","{a}"\n' for q, a in FAQ)).encode()


@pytest.fixture(scope="module")
def tuned_home(tmp_path_factory, tiny_base_dir):
    """A store with `boxes` tuned on the colour FAQ (version 1 live), trained once."""
    from engine.app import Engine
    from engine.jobs.backends import InlineBackend
    from engine.settings import Settings

    home = tmp_path_factory.mktemp("loop-home")
    settings = Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"})
    engine = Engine.open(settings, job_backend=InlineBackend(settings), runner=ScriptedRunner())
    admin = Caller.console("admin")
    engine.catalog.add_base(admin, "tiny", str(tiny_base_dir), description="tiny", tags="test")
    engine.catalog.publish(admin, "tiny", "public")
    job = engine.jobs.submit_tune(admin, "boxes", "faq.csv", faq_csv(), dict(TRAINING),
                                  Origin(platform="console"), base="tiny")
    assert engine.jobs.wait(job.id, timeout=900).state == "succeeded"
    engine.close()
    return home


@pytest.fixture
def store(request, tuned_home, tmp_path, monkeypatch):
    from engine.app import Engine
    from engine.jobs.backends import InlineBackend
    from engine.settings import Settings

    home = tmp_path / "home"
    shutil.copytree(tuned_home, home)
    monkeypatch.setenv("GPTSTORE_HOME", str(home))
    settings = Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        retrain_min_examples=3, max_new_tokens=16, suggestion_rate_per_hour=100,
        chat_rate_per_minute=100, retrain_tolerance=TOLERANCE,
        # each rule alone: the tiny model's answers to rephrasings swing widely
        retrain_extra_figures=(("rephrased questions",) if "rephrased" in request.node.name
                               else ()))
    engine = Engine.open(settings, job_backend=InlineBackend(settings), runner=ScriptedRunner())
    yield engine
    engine.close()


def approve_corrections(engine, pairs, asker: Caller, admin: Caller) -> None:
    """Each question asked in chat, corrected by `asker`, and approved in review."""
    for question, better in pairs:
        answer = engine.chat.answer(asker, "boxes", question)
        engine.chat.correct(asker, str(answer.message_id), better)
    while pending := engine.curation.inbox(admin, "boxes").pending:
        for item in pending:
            engine.curation.approve(admin, item.id)


def retrain(engine, admin: Caller):
    outcome = engine.retrainer.retrain_now(admin, "boxes")
    assert outcome.started, outcome.message
    job = engine.jobs.wait(outcome.job.id, timeout=900)
    assert job.state == "succeeded", job.error
    return job.verdict()


def figure(verdict, name: str) -> Figure:
    return next(f for f in verdict.figure_values() if f.name == name)


def test_a_candidate_taught_answers_that_contradict_the_file_is_refused(store, admin) -> None:
    approve_corrections(store, WRONG, admin, admin)
    verdict = retrain(store, admin)
    recall = figure(verdict, "file recall")
    assert not verdict.promoted, verdict.message
    assert recall.candidate < recall.live - store.settings.retrain_tolerance
    assert "file recall fell" in verdict.reason and "Kept version 1" in verdict.message
    assert [v.status for v in store.catalog.versions(admin, "boxes")] == ["live"]
    # The live version stays what it was: trained on the file alone.
    assert store.catalog.card(admin, "boxes").versions[0].data_text == "12 file examples + 0 curated"


def test_a_second_retrain_keeps_the_first_retrains_corrections(store, admin) -> None:
    from bot.core.dispatch import Dispatcher
    from bot.core.spec import Context

    approve_corrections(store, FIRST, admin, admin)
    first = retrain(store, admin)
    assert first.promoted, first.message
    assert figure(first, "new pairs").candidate > figure(first, "new pairs").live
    v2 = store.catalog.versions(admin, "boxes")[-1]
    assert (v2.number, v2.data_text) == (2, "12 file examples + 3 curated")
    shown = dict(Dispatcher(store).handle_text("versions boxes", Context(caller=admin)).fields)
    assert "12 file examples + 3 curated" in shown["v2 (live)"]  # the gate's figures shown too
    assert "file recall live" in shown["v2 (live)"]

    approve_corrections(store, SECOND, admin, admin)
    assert len(store.retrainer.new_pairs(_id(store, admin))) == 3  # only the newest are new
    second = retrain(store, admin)
    assert second.promoted, second.message
    lessons = figure(second, "earlier lessons")  # the first retrain's corrections, on v3
    assert lessons.n == len(FIRST)
    assert lessons.candidate >= lessons.live - store.settings.retrain_tolerance
    assert lessons.candidate > 0.3  # answered, not forgotten (the base answers none of them)
    versions = store.catalog.versions(admin, "boxes")
    assert [(v.number, v.status, v.data_text) for v in versions] == [
        (1, "retired", "12 file examples + 0 curated"),
        (2, "retired", "12 file examples + 3 curated"),
        (3, "live", "12 file examples + 6 curated")]

    # A rollback brings back v2's weights and its data view: the second set is new again.
    store.catalog.rollback(admin, "boxes", 2)
    assert [p.question for p in store.retrainer.new_pairs(_id(store, admin))] == \
        [q for q, _ in SECOND]


def test_versions_and_the_announcement_show_the_gates_figures_rephrased_too(store,
                                                                             admin) -> None:
    from bot.core.dispatch import Dispatcher
    from bot.core.progress import final_reply
    from bot.core.spec import Context

    approve_corrections(store, FIRST, admin, admin)
    outcome = store.retrainer.retrain_now(admin, "boxes")
    job = store.jobs.wait(outcome.job.id, timeout=900)
    reply = final_reply(job)
    fields = dict(reply.fields)
    assert "live" in fields["File recall"] and "candidate" in fields["File recall"]
    # the file's questions in other words, answered from its entries, for both
    [rephrased] = [f for f in job.verdict().figure_values() if f.name == "rephrased questions"]
    assert rephrased.live is not None and rephrased.candidate is not None and rephrased.n >= 6
    assert rephrased.tolerance == TOLERANCE
    assert fields["Trained on"] == "12 file examples + 3 curated"
    assert fields["Why"] == job.result["reason"]
    shown = Dispatcher(store).handle_text("versions boxes", Context(caller=admin))
    [v1] = [text for key, text in shown.fields if key.startswith("v1")]
    assert "12 file examples + 0 curated" in v1  # what trained v1, whatever the gate decided


def test_the_gate_refuses_a_fall_beyond_tolerance_and_a_tie() -> None:
    def fig(name, live, cand, tol=0.0):
        return Figure(name=name, live=live, candidate=cand, tolerance=tol)

    ok, why = gate([fig("file recall", 0.80, 0.78, 0.05), fig("new pairs", 0.1, 0.9)])
    assert ok and "new pairs rose from 0.10 to 0.90" in why
    ok, why = gate([fig("file recall", 0.80, 0.70, 0.05), fig("new pairs", 0.1, 0.9)])
    assert not ok and "file recall fell from 0.80 to 0.70" in why
    ok, why = gate([fig("file recall", 0.80, 0.80, 0.05), fig("new pairs", 0.5, 0.5)])
    assert not ok and "tie keeps the live version" in why
    ok, _ = gate([fig("rephrased questions", None, 0.9), fig("new pairs", 0.2, 0.6)])
    assert ok  # a figure missing on one side takes no part
    assert gate([])[0] is False


def _id(engine, caller: Caller) -> int:
    return engine.catalog.resolve(caller, "boxes").id
