"""No lost jobs: a job and its outbox row commit together, a relay sends the row until the
broker takes it, a job whose message vanished is sent again, and a job sent twice runs once.
Real PostgreSQL, a private Redis (stopped and flushed here) and real Celery workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from engine.jobs.backends import CeleryBackend
from engine.jobs.plan import WorkerPlan
from engine.settings import Settings
from storage import outbox
from storage.db import Database
from tests.helpers.redis_server import RedisServer
from tests.scenarios.test_celery_jobs import ALICE, service_for, steps, submit

ROOT = Path(__file__).resolve().parents[2]
PLAN = WorkerPlan(kinds={"step": "tests.helpers.jobs:stepping"},
                  engine_factory="tests.helpers.jobs:bare_engine",
                  heartbeat_s=0.2, stale_after_s=3.0, sweep_s=0.2, requeue_after_s=1.0)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


class Workers:
    def __init__(self, settings: Settings, redis: RedisServer, tmp: Path) -> None:
        self.settings, self.redis, self.tmp = settings, redis, tmp
        self.queue = f"gptstore-outbox-{uuid.uuid4().hex[:8]}"
        self.processes: list[subprocess.Popen] = []

    def sender(self) -> CeleryBackend:
        return CeleryBackend(self.settings.with_(jobs="celery", celery_broker_url=self.redis.url),
                             queue=self.queue, plan=PLAN)

    def start(self) -> None:
        env = {**os.environ, "GPTSTORE_HOME": str(self.settings.home),
               "DATABASE_URL": self.settings.database_url, "GPTSTORE_JOBS": "celery",
               "CELERY_BROKER_URL": self.redis.url, "PYTHONPATH": str(ROOT)}
        log = open(self.tmp / f"worker-{len(self.processes)}.log", "wb")
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "engine.jobs", "serve", f"--queue={self.queue}",
             "--pool=solo", *PLAN.args()],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture
def world(pg_url: str, settings: Settings, tmp_path: Path):
    pg = settings.with_(database_url=pg_url)
    for folder in (pg.home, pg.jobs_dir, pg.logs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    Database(pg_url).migrate()
    redis = RedisServer(tmp_path / "redis").start()
    workers = Workers(pg, redis, tmp_path)
    yield workers
    workers.close()
    redis.stop()


def owed(settings: Settings, job_id: int):
    db = Database(settings.database_url)
    try:
        return db.retrying(lambda s: outbox.get(s, job_id))
    finally:
        db.close()


def test_a_job_committed_while_the_broker_is_down_runs_once_it_is_back(world: Workers,
                                                                       tmp_path: Path) -> None:
    sender = world.sender()
    service = service_for(world.settings, sender)
    world.redis.stop()  # the broker goes away after the service started, before the send
    job = submit(service, tmp_path, "down", steps=3)
    assert job.state == "queued"  # the user was told it is queued: the commit happened
    row = owed(world.settings, job.id)
    assert row is not None and row.sent_at is None and row.last_error  # and the debt is kept
    world.redis.start()  # the same port: the broker is back, empty
    world.start()  # the worker's relay sends what is owed
    done = service.wait(job.id, timeout=90, poll=0.1)
    assert done.state == "succeeded", done.error
    assert steps(tmp_path, "down") == [0, 1, 2]
    sender.close()


def test_jobs_whose_messages_were_flushed_still_run_each_once(world: Workers,
                                                              tmp_path: Path) -> None:
    sender = world.sender()
    service = service_for(world.settings, sender)
    jobs = [submit(service, tmp_path, f"f{i}", steps=2) for i in range(3)]
    assert world.redis.queued_messages(world.queue) == 3
    world.redis.flush()  # every message gone; the jobs are still queued in the database
    assert world.redis.queued_messages(world.queue) == 0
    world.start()
    for job in jobs:
        done = service.wait(job.id, timeout=90, poll=0.1)
        assert done.state == "succeeded", done.error
    for i in range(3):
        assert steps(tmp_path, f"f{i}") == [0, 1]
    sender.close()


def test_a_job_sent_twice_runs_once(world: Workers, tmp_path: Path) -> None:
    sender = world.sender()
    service = service_for(world.settings, sender)
    job = submit(service, tmp_path, "twice", steps=3)
    sender.enqueue(job.id, "step")  # a second message for the same job
    assert world.redis.queued_messages(world.queue) == 2
    world.start()
    done = service.wait(job.id, timeout=90, poll=0.1)
    assert done.state == "succeeded", done.error
    assert steps(tmp_path, "twice") == [0, 1, 2]
    running = [e for e in service.get(ALICE, job.id).events if e.data.get("state") == "running"]
    assert len(running) == 1  # claimed once
    sender.close()
