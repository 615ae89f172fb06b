"""engine/jobs/runner.py: a job is claimed once, resumes after its worker died, and records its end."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.identity import Caller
from engine.jobs.backends import NullBackend
from engine.jobs.plan import WorkerPlan
from engine.jobs.runner import run_job
from engine.jobs.service import JobService
from engine.settings import Settings
from storage import jobs as store
from storage.db import Database

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
PLAN = WorkerPlan(kinds={"step": "tests.helpers.jobs:stepping", "boom": "tests.helpers.jobs:failing"},
                  engine_factory="tests.helpers.jobs:bare_engine", heartbeat_s=0.05)
ALICE = Caller(platform="console", workspace="w1", user="console:alice", display_name="alice")


@pytest.fixture
def db(settings: Settings):
    settings.home.mkdir(parents=True, exist_ok=True)
    database = Database(settings.database_url)
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def service(db: Database, settings: Settings) -> JobService:
    return JobService(db, settings, None, None, NullBackend(), lambda: T0)


def submit(service: JobService, tmp_path: Path, kind: str = "step", **params) -> int:
    params.setdefault("log", str(tmp_path / "steps.log"))
    job = service.submit(kind, "faq-bot", owner=ALICE.user, workspace=ALICE.workspace,
                         params=params)
    assert job.state == "queued"
    return job.id


def steps_done(tmp_path: Path) -> list[int]:
    return [int(line.split()[0]) for line in (tmp_path / "steps.log").read_text().splitlines()]


def test_a_job_runs_once_and_records_its_result(service, settings, tmp_path) -> None:
    job_id = submit(service, tmp_path, steps=3, version=str(tmp_path / "version"))
    assert run_job(settings, job_id, "w-a", plan=PLAN) == "succeeded"
    assert run_job(settings, job_id, "w-b", plan=PLAN) == "succeeded"  # nothing to claim
    assert steps_done(tmp_path) == [0, 1, 2]
    view = service.get(ALICE, job_id)
    assert view.result == {"steps": 3, "resumed_from": 0}
    assert view.progress == 1.0
    messages = [e.message for e in view.events]
    assert messages[0] == "Validating the request."
    assert "Step 2 of 3." in messages and messages[-1] == "Succeeded."
    assert not (settings.jobs_dir / str(job_id) / "checkpoints").exists()


def test_a_running_job_with_a_fresh_heartbeat_is_left_alone(service, db, settings, tmp_path) -> None:
    job_id = submit(service, tmp_path, steps=2)
    now = datetime.now(timezone.utc)
    assert db.retrying(lambda s: store.claim(s, job_id, "alive", now, now - timedelta(minutes=1)))
    assert run_job(settings, job_id, "w-b", plan=PLAN) == "running"
    assert not (tmp_path / "steps.log").exists()


def test_a_job_whose_worker_died_resumes_from_its_checkpoint(service, db, settings, tmp_path) -> None:
    job_id = submit(service, tmp_path, steps=5)
    # A worker claimed it at T0, finished steps 0 and 1, and died without a word.
    assert db.retrying(lambda s: store.claim(s, job_id, "dead", T0, T0 - timedelta(minutes=1)))
    checkpoints = settings.jobs_dir / str(job_id) / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "next_step.txt").write_text("2")
    (tmp_path / "steps.log").write_text("0 1\n1 1\n")
    later = lambda: T0 + timedelta(minutes=10)  # noqa: E731  the heartbeat is long stale
    assert run_job(settings, job_id, "w-b", plan=PLAN, clock=later) == "succeeded"
    assert steps_done(tmp_path) == [0, 1, 2, 3, 4]
    view = service.get(ALICE, job_id)
    assert view.result["resumed_from"] == 2
    assert any("attempt 2" in e.message for e in view.events)


def test_an_unexpected_error_is_recorded_with_a_reference(service, settings, tmp_path) -> None:
    job_id = submit(service, tmp_path, kind="boom")
    assert run_job(settings, job_id, "w-a", plan=PLAN) == "failed"
    view = service.get(ALICE, job_id)
    assert view.error.startswith("Unexpected error (ref ")
    ref = view.error.split("ref ")[1][:6]
    log = (settings.logs_dir / "errors.log").read_text()
    assert f"ref {ref}" in log and "boom: a bug in the job body" in log
    assert view.events[-1].kind == "error"


def test_an_unknown_kind_fails_with_a_message(service, settings, tmp_path) -> None:
    job_id = submit(service, tmp_path, kind="nonsense")
    assert run_job(settings, job_id, "w-a", plan=PLAN) == "failed"
    assert "Unexpected error" in service.get(ALICE, job_id).error


def test_a_cancelled_queued_job_never_runs(service, settings, tmp_path) -> None:
    job_id = submit(service, tmp_path, steps=2)
    assert service.cancel(ALICE, job_id).state == "cancelled"
    assert run_job(settings, job_id, "w-a", plan=PLAN) == "cancelled"
    assert not (tmp_path / "steps.log").exists()


def test_cancel_while_running_stops_at_the_next_step(service, db, settings, tmp_path) -> None:
    import threading

    marker = tmp_path / "blocked"
    job_id = submit(service, tmp_path, steps=5, block_at=1, marker=str(marker),
                    version=str(tmp_path / "version"))
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(
        run_job(settings, job_id, "w-a", plan=PLAN)))
    thread.start()
    try:
        _wait_for(marker.exists)
        assert service.cancel(ALICE, job_id).state == "running"  # cancel requested
    finally:
        thread.join(timeout=30)
    assert outcome == ["cancelled"]
    assert steps_done(tmp_path) == [0]
    assert not (tmp_path / "version").exists()  # no half-written version
    with pytest.raises(Exception, match=f"Job {job_id} already finished."):
        service.cancel(ALICE, job_id)


def _wait_for(condition, limit: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)
