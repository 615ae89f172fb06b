"""Jobs on the real PostgreSQL, Redis and RabbitMQ: the local backend and the Celery backend (on
a Redis broker and on a RabbitMQ broker) pass the same tests (run, cancel, a worker killed
mid-job, a restart), and a dropped connection is not fatal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from engine.identity import Caller
from engine.jobs.backends import CeleryBackend, LocalBackend, NullBackend
from engine.jobs.plan import WorkerPlan
from engine.jobs.service import JobService
from engine.settings import Settings
from storage.db import Database
from tests.conftest import missing_service

ROOT = Path(__file__).resolve().parents[2]
REDIS = "redis://127.0.0.1:6379/12"
AMQP = os.environ.get("GPTSTORE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
BROKERS = {"celery": REDIS, "celery-amqp": AMQP}
PLAN = WorkerPlan(kinds={"step": "tests.helpers.jobs:stepping"},
                  engine_factory="tests.helpers.jobs:bare_engine",
                  heartbeat_s=0.2, stale_after_s=3.0, sweep_s=0.2)
ALICE = Caller(platform="slack", workspace="slack:T1", user="slack:T1:UA", display_name="alice")

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        client.ping()
    except Exception as exc:  # pragma: no cover - depends on the machine
        missing_service(f"Redis is not reachable at {REDIS}: {exc}")
    return client


def check_amqp() -> None:
    from kombu import Connection

    try:
        with Connection(AMQP, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # pragma: no cover - depends on the machine
        missing_service(f"RabbitMQ is not reachable at {AMQP}: {exc}")


def delete_amqp_queue(queue: str) -> None:
    from kombu import Connection

    with Connection(AMQP, connect_timeout=3) as connection:
        connection.default_channel.queue_delete(queue)


class Harness:
    """Starts workers of one backend kind and always stops them."""

    def __init__(self, kind: str, settings: Settings, tmp: Path) -> None:
        self.broker = BROKERS.get(kind)
        if self.broker:
            settings = settings.with_(jobs="celery", celery_broker_url=self.broker)
        self.kind, self.settings, self.tmp = kind, settings, tmp
        self.queue = f"gptstore-test-{uuid.uuid4().hex[:8]}"
        self.processes: list[subprocess.Popen] = []
        self.local: LocalBackend | None = None
        self.sender: CeleryBackend | None = None

    def backend(self):
        """What a serving process enqueues with."""
        if self.kind == "local":
            self.local = LocalBackend(self.settings, PLAN)
            return self.local
        self.sender = CeleryBackend(self.settings, queue=self.queue, plan=PLAN)
        return self.sender

    def offline_backend(self):
        """What enqueued jobs before the workers (re)started."""
        return NullBackend() if self.kind == "local" else self.backend()

    def start_worker(self) -> None:
        if self.kind == "local":
            if self.local is None:
                self.backend()
            self.local.start()
            return
        env = {**os.environ, "GPTSTORE_HOME": str(self.settings.home),
               "DATABASE_URL": self.settings.database_url, "GPTSTORE_JOBS": "celery",
               "CELERY_BROKER_URL": self.broker, "PYTHONPATH": str(ROOT)}
        log = open(self.tmp / f"celery-{len(self.processes)}.log", "wb")
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "engine.jobs", "serve", f"--queue={self.queue}",
             "--pool=solo", *PLAN.args()],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def close(self) -> None:
        if self.local is not None:
            self.local.close()
            self.local.kill_children()
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        if self.sender is not None and self.kind == "celery-amqp":
            self.sender.close()
            delete_amqp_queue(self.queue)
        elif self.sender is not None:
            self.sender.close()
            client = redis_client()
            client.delete(self.queue)
            for tag, payload in client.hgetall("unacked").items():
                if self.queue.encode() in payload:
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)


@pytest.fixture
def pg_settings(pg_url: str, settings: Settings) -> Settings:
    url = f"{pg_url}&application_name=gptstore_jobs_{uuid.uuid4().hex[:8]}"
    out = settings.with_(database_url=url)
    for folder in (out.home, out.jobs_dir, out.logs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    Database(url).migrate()
    return out


@pytest.fixture(params=["local", "celery", "celery-amqp"])
def harness(request, pg_settings: Settings, tmp_path: Path):
    if request.param == "celery":
        redis_client()
    if request.param == "celery-amqp":
        check_amqp()
    h = Harness(request.param, pg_settings, tmp_path)
    yield h
    h.close()


def service_for(settings: Settings, backend) -> JobService:
    return JobService(Database(settings.database_url), settings, None, None, backend,
                      lambda: __import__("datetime").datetime.now(
                          __import__("datetime").timezone.utc))


def submit(service: JobService, tmp: Path, name: str, key: str | None = None, **params):
    params.setdefault("log", str(tmp / f"{name}.log"))
    params.setdefault("version", str(tmp / f"{name}.version"))
    return service.submit("step", name, owner=ALICE.user, workspace=ALICE.workspace,
                          params=params, idempotency_key=key)


def steps(tmp: Path, name: str) -> list[int]:
    path = tmp / f"{name}.log"
    return [int(line.split()[0]) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def test_jobs_run_once_each_and_duplicates_are_one_job(harness: Harness, tmp_path: Path) -> None:
    service = service_for(harness.settings, harness.backend())
    harness.start_worker()
    first = submit(service, tmp_path, "a", key="slack:Ev1", steps=3)
    again = submit(service, tmp_path, "a", key="slack:Ev1", steps=3)  # Slack retried the event
    second = submit(service, tmp_path, "b", steps=2)
    assert again.id == first.id
    for job in (first, second):
        done = service.wait(job.id, timeout=90, poll=0.1)
        assert done.state == "succeeded", done.error
    assert steps(tmp_path, "a") == [0, 1, 2] and steps(tmp_path, "b") == [0, 1]
    shown = service.get(ALICE, first.id)
    assert [e.data.get("step") for e in shown.events if e.kind == "progress"] == [1, 2, 3]
    assert len(service.list(ALICE)) == 2


def test_cancel_stops_a_running_job_at_the_next_step(harness: Harness, tmp_path: Path) -> None:
    service = service_for(harness.settings, harness.backend())
    harness.start_worker()
    marker = tmp_path / "blocked"
    job = submit(service, tmp_path, "c", steps=5, block_at=2, marker=str(marker))
    wait_for(marker.exists)
    assert service.cancel(ALICE, job.id).events[-1].data["state"] == "cancel_requested"
    done = service.wait(job.id, timeout=60, poll=0.1)
    assert done.state == "cancelled"
    assert steps(tmp_path, "c") == [0, 1]
    assert not (tmp_path / "c.version").exists()  # no half-written version


def test_a_killed_worker_s_job_resumes_elsewhere_without_repeating_steps(
        harness: Harness, tmp_path: Path) -> None:
    service = service_for(harness.settings, harness.backend())
    harness.start_worker()
    marker = tmp_path / "blocked"
    job = submit(service, tmp_path, "k", steps=6, block_at=3, marker=str(marker))
    wait_for(marker.exists)
    os.kill(int(marker.read_text()), signal.SIGKILL)  # the process running the job body
    if harness.broker:
        harness.start_worker()  # a second worker; the first one is gone for good
    done = service.wait(job.id, timeout=90, poll=0.1)
    assert done.state == "succeeded", done.error
    assert steps(tmp_path, "k") == [0, 1, 2, 3, 4, 5]  # every step once
    assert done.result == {"steps": 6, "resumed_from": 3}
    assert any("attempt 2" in e.message for e in service.get(ALICE, job.id).events)


def test_jobs_queued_before_a_restart_still_run(harness: Harness, tmp_path: Path) -> None:
    before = service_for(harness.settings, harness.offline_backend())
    job = submit(before, tmp_path, "r", steps=2)
    assert job.state == "queued"
    harness.start_worker()  # the store comes back up
    done = before.wait(job.id, timeout=90, poll=0.1)
    assert done.state == "succeeded", done.error
    assert steps(tmp_path, "r") == [0, 1]


def test_a_dropped_database_connection_is_retried(pg_settings: Settings, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    service = service_for(pg_settings, NullBackend())
    job = submit(service, tmp_path, "d")
    app_name = make_url(pg_settings.database_url).query["application_name"]
    admin = create_engine(pg_settings.database_url.split("?")[0])
    with admin.begin() as connection:
        killed = connection.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = :name"), {"name": app_name}).scalar()
    admin.dispose()
    assert killed >= 1  # the service's pooled connection is gone
    assert service.get(ALICE, job.id).state == "queued"
    assert service.cancel(ALICE, job.id).state == "cancelled"
