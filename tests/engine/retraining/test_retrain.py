"""Scheduled retraining: schedules, due slots on a controllable clock, the curated-pair
threshold, one run per slot across processes, and the evaluation gate."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.errors import InvalidInput, PermissionDenied
from engine.identity import Caller
from engine.retraining.gate import gate
from engine.retraining.schedule import CronTrigger, latest_fire, next_fire, next_fires
from engine.retraining.scheduler import RetrainScheduler
from engine.retraining.service import Retrainer
from engine.views import Origin

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)  # a Monday, noon
QA = [(f"How do I reset widget {i}?", f"Open Settings, choose Widget {i}, then press Reset.")
      for i in range(12)]


def faq_csv() -> bytes:
    lines = ["question,answer"] + [f'"{q}","{a}"' for q, a in QA]
    return ("\n".join(lines) + "\n").encode()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class ScriptedRunner:
    """Answers every question with the same non-empty text (the tiny model babbles)."""

    def answer(self, target, messages, **_):
        from types import SimpleNamespace

        return SimpleNamespace(text="Open Settings and press Reset.", tokens=6, latency_ms=1,
                               first_token_ms=1)


@pytest.fixture(scope="module")
def tuned_home(tmp_path_factory, tiny_base_dir):
    """A store with a tuned model `helpdesk` (version 1 live), trained once per module."""
    from engine.app import Engine
    from engine.jobs.backends import InlineBackend
    from engine.settings import Settings

    home = tmp_path_factory.mktemp("retrain-home")
    settings = Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"})
    engine = Engine.open(settings, job_backend=InlineBackend(settings), runner=ScriptedRunner())
    admin = Caller.console("admin")
    engine.catalog.add_base(admin, "tiny", str(tiny_base_dir), description="tiny", tags="test")
    engine.catalog.publish(admin, "tiny", "public")
    job = engine.jobs.submit_tune(admin, "helpdesk", "faq.csv", faq_csv(),
                                  {"epochs": "1", "lr": "1e-3"}, Origin(platform="console"),
                                  base="tiny")
    assert engine.jobs.wait(job.id, timeout=600).state == "succeeded"
    engine.close()
    return home


@pytest.fixture
def store(tuned_home, tmp_path, monkeypatch):
    """A private copy of the tuned store, with jobs run inline and scripted chat answers."""
    import shutil

    from engine.app import Engine
    from engine.jobs.backends import InlineBackend
    from engine.settings import Settings

    home = tmp_path / "home"
    shutil.copytree(tuned_home, home)
    monkeypatch.setenv("GPTSTORE_HOME", str(home))
    settings = Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        retrain_min_examples=3, max_new_tokens=16)
    engine = Engine.open(settings, job_backend=InlineBackend(settings), runner=ScriptedRunner())
    yield engine
    engine.close()


def curate(engine, caller: Caller, n: int, kind: str = "correct", approve: bool = True) -> None:
    """n questions asked and corrected (or voted on); corrections approved in review."""
    for q, a in QA[:n]:
        answer = engine.chat.answer(caller, "helpdesk", q)
        if kind == "correct":
            engine.chat.correct(caller, str(answer.message_id), a)
        else:
            engine.chat.feedback(caller, str(answer.message_id), kind)
    reviewer = Caller.console("admin")
    while approve and (waiting := [i for i in engine.curation.inbox(reviewer, "helpdesk").pending
                                   if i.answer]):
        for item in waiting:
            engine.curation.approve(reviewer, item.id)


def test_named_specs_and_cron_fire_at_the_expected_times() -> None:
    assert next_fire("daily", T0) == datetime(2026, 11, 3, 3, 0, tzinfo=timezone.utc)
    assert next_fire("weekly", T0) == datetime(2026, 11, 9, 3, 0, tzinfo=timezone.utc)
    assert next_fire("30 6 * * *", T0) == datetime(2026, 11, 3, 6, 30, tzinfo=timezone.utc)
    # Three missed daily slots collapse into one run at the newest.
    assert latest_fire("daily", T0, T0 + timedelta(days=3)) == datetime(2026, 11, 5, 3, 0,
                                                                        tzinfo=timezone.utc)
    assert latest_fire("daily", T0, T0 + timedelta(hours=1)) is None


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.mark.parametrize("spec, expected", [
    # every day of the week, Sunday to Saturday, at 03:00 (APScheduler alone refused 0-6)
    ("0 3 * * 0-6", [utc(2026, 12, 3, 3, 0), utc(2026, 12, 4, 3, 0), utc(2026, 12, 5, 3, 0)]),
    # the 1st of the month OR a Monday, as crontab means it (not only Mondays that are the 1st)
    ("0 3 1 * 1", [utc(2026, 12, 7, 3, 0), utc(2026, 12, 14, 3, 0), utc(2026, 12, 21, 3, 0)]),
    ("0 3 1 * 1", None),  # see below: January the 1st, a Friday in 2027, fires too
    # every quarter hour in office hours, weekdays only, names as people write them
    ("*/15 9-17 * * mon-fri", [utc(2026, 12, 4, 17, 15), utc(2026, 12, 4, 17, 30),
                               utc(2026, 12, 4, 17, 45)]),
    ("@weekly", [utc(2026, 12, 6, 0, 0), utc(2026, 12, 13, 0, 0), utc(2026, 12, 20, 0, 0)]),
    ("0 3 * * 7", [utc(2026, 12, 6, 3, 0), utc(2026, 12, 13, 3, 0), utc(2026, 12, 20, 3, 0)]),
])
def test_cron_lines_fire_when_crontab_says(spec: str, expected: list | None) -> None:
    if expected is None:
        runs = next_fires(spec, utc(2026, 12, 28, 4, 0), 2)
        assert runs == [utc(2027, 1, 1, 3, 0), utc(2027, 1, 4, 3, 0)]
        return
    start = utc(2026, 12, 4, 17, 0) if spec.startswith("*/15") else utc(2026, 12, 2, 10, 0)
    assert next_fires(spec, start, 3) == expected


@pytest.mark.parametrize("spec, says", [
    ("0 3 * *", "5 fields"), ("61 3 * * *", "not a valid cron line"),
    ("0 3 * * funday", "not a valid cron line"), ("@fortnightly", "5 fields"),
    ("0 0 31 2 *", "not a valid cron line"),  # February has no 31st
])
def test_a_bad_cron_line_is_refused_in_one_sentence(store, admin, spec: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as refused:
        store.retrainer.set_schedule(admin, "helpdesk", spec)
    assert "\n" not in str(refused.value) and "Traceback" not in str(refused.value)
    assert store.retrainer.schedule(admin, "helpdesk") is None  # nothing stored


def test_setting_a_schedule_shows_its_next_three_runs(store, admin) -> None:
    from bot.core.dispatch import Dispatcher
    from bot.core.spec import Context

    store.retrainer.clock = Clock(utc(2026, 12, 2, 10, 0))
    reply = Dispatcher(store).handle_text("retrain helpdesk 0 3 1 * 1", Context(caller=admin))
    assert reply.kind == "success", reply.text
    assert "Mon 2026-12-07 03:00, Mon 2026-12-14 03:00, Mon 2026-12-21 03:00" in reply.text


def test_the_scheduler_trigger_fires_by_crontab_rules() -> None:
    trigger = CronTrigger("0 3 1 * 1")
    first = trigger.get_next_fire_time(None, utc(2026, 12, 28, 4, 0))
    assert first == utc(2027, 1, 1, 3, 0)
    assert trigger.get_next_fire_time(first, first) == utc(2027, 1, 4, 3, 0)


def test_schedule_validation_and_permissions(store, admin) -> None:
    with pytest.raises(InvalidInput, match="not a schedule"):
        store.retrainer.set_schedule(admin, "helpdesk", "fortnightly")
    with pytest.raises(InvalidInput, match="base model"):
        store.retrainer.set_schedule(admin, "tiny", "daily")
    member = Caller(platform="console", workspace="local", user="console:bob")
    store.catalog.publish(admin, "helpdesk", "workspace")
    with pytest.raises(PermissionDenied, match="admin"):
        store.retrainer.set_schedule(member, "helpdesk", "daily")
    view = store.retrainer.set_schedule(admin, "helpdesk", "weekly")
    assert view.spec == "weekly" and view.next_run_at is not None


def test_a_due_run_with_too_few_pairs_is_skipped_and_says_so(store, admin) -> None:
    clock = Clock(T0)
    store.retrainer.clock = clock
    store.retrainer.set_schedule(admin, "helpdesk", "daily")
    curate(store, admin, 1)
    clock.now = T0 + timedelta(days=1)
    [outcome] = store.retrainer.run_due(clock.now)
    assert not outcome.started
    assert "1 new approved pair" in outcome.message and "3 needed" in outcome.message
    assert store.retrainer.schedule(admin, "helpdesk").last_outcome == outcome.message
    # The same slot never fires twice.
    assert store.retrainer.run_due(clock.now) == []


def test_two_processes_firing_the_same_slot_start_one_retrain(store, settings, admin) -> None:
    clock = Clock(T0)
    store.retrainer.clock = clock
    store.retrainer.set_schedule(admin, "helpdesk", "daily")
    curate(store, admin, 3)
    other = Retrainer(store.db, store.settings, store.catalog, store.jobs, clock)
    clock.now = T0 + timedelta(days=1)
    first = store.retrainer.run_due(clock.now)
    second = other.run_due(clock.now)
    started = [o for o in first + second if o.started]
    assert len(started) == 1
    job = store.jobs.wait(started[0].job.id, timeout=600)
    assert job.state == "succeeded", job.error
    assert job.result["new_pairs"] == 3
    assert {"live", "candidate", "promoted"} <= set(job.result)
    # however the gate decided, one retrain ran for the slot: one job, at most one new version
    assert [j.kind for j in store.jobs.list(admin)].count("retrain") == 1


def test_only_approved_pairs_count_and_forgotten_users_never_reach_training(store, admin) -> None:
    alice = Caller(platform="console", workspace="local", user="console:alice")
    store.catalog.publish(admin, "helpdesk", "workspace")
    curate(store, alice, 3, kind="down")  # suggestions without an answer: nothing approved
    curate(store, alice, 2, kind="up")  # 👍 counts only when the owner turns that on
    assert store.retrainer.new_pairs(_model_id(store, admin)) == []
    curate(store, alice, 3, kind="correct", approve=False)
    assert store.retrainer.new_pairs(_model_id(store, admin)) == []  # waiting for review
    curate(store, alice, 0)  # the reviewer approves what has an answer
    pairs = store.retrainer.new_pairs(_model_id(store, admin))
    assert {(p.question, p.answer) for p in pairs} == set(QA[:3])
    assert {p.origin for p in pairs} == {"correction"}
    store.chat.forget_me(alice)
    assert store.retrainer.new_pairs(_model_id(store, admin)) == []


def test_retrain_now_promotes_only_a_candidate_that_is_not_worse(store, admin) -> None:
    curate(store, admin, 3, kind="correct")
    outcome = store.retrainer.retrain_now(admin, "helpdesk")
    assert outcome.started
    job = store.jobs.wait(outcome.job.id, timeout=600)
    assert job.state == "succeeded", job.error
    verdict = job.verdict()
    assert verdict.promoted == gate(verdict.figure_values())[0]
    assert verdict.reason in verdict.message
    versions = store.catalog.versions(admin, "helpdesk")
    assert versions[-1].status == "live" and (len(versions) == 2) == verdict.promoted


def test_apscheduler_mirrors_the_schedules_table(store, admin) -> None:
    store.retrainer.set_schedule(admin, "helpdesk", "weekly")
    scheduler = RetrainScheduler(store.retrainer)
    scheduler.start()
    try:
        model_id = _model_id(store, admin)
        job = scheduler._scheduler.get_job(f"retrain-{model_id}")
        assert job is not None and job.next_run_time.weekday() == 0
        store.retrainer.set_schedule(admin, "helpdesk", "off")
        scheduler.sync()
        assert scheduler._scheduler.get_job(f"retrain-{model_id}") is None
    finally:
        scheduler.stop()


def _model_id(engine, caller: Caller) -> int:
    return engine.catalog.resolve(caller, "helpdesk").id


def test_an_evaluation_job_scores_the_live_version_on_the_test_split(store, admin) -> None:
    model = store.catalog.resolve(admin, "helpdesk")
    [version] = store.catalog.versions(admin, "helpdesk")
    with store.db.session() as session:
        from storage.tables import ModelVersionRecord

        dataset_id = session.get(ModelVersionRecord, model.live_version_id).dataset_id
    job = store.jobs.submit("evaluate", "helpdesk", owner=admin.user, workspace=admin.workspace,
                            dataset_id=dataset_id)
    job = store.jobs.wait(job.id, timeout=600)
    assert job.state == "succeeded", job.error
    assert job.result["version"] == version.number
    assert job.result["metrics"]["n"] == len(store.datasets.examples(dataset_id, "test"))


def test_housekeeping_deletes_logs_past_their_retention(store, admin) -> None:
    curate(store, admin, 2, kind="correct")
    assert store.housekeeping()["messages"] == 0  # fresh logs stay
    store.chat.clock = lambda: datetime.now(timezone.utc) + timedelta(days=91)
    assert store.housekeeping()["messages"] == 4  # two questions, two answers
    assert store.chat.history_for(admin) == []


def test_the_owner_reads_both_sets_of_figures_when_a_retrain_ends(store, admin) -> None:
    from bot.core.progress import final_reply

    curate(store, admin, 3, kind="correct")
    outcome = store.retrainer.retrain_now(admin, "helpdesk")
    job = store.jobs.wait(outcome.job.id, timeout=600)
    reply = final_reply(job)
    fields = dict(reply.fields)
    assert "live" in fields["File recall"] and "candidate" in fields["File recall"]
    assert "live" in fields["New pairs"] and fields["Why"] == job.result["reason"]
    assert fields["New curated pairs"] == "3"
    assert ("is live" in reply.title) == job.result["promoted"]
    assert reply.text == job.result["message"]
