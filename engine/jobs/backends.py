"""Where queued jobs go: a local worker thread (each job in a child process), inline, or Celery.

A backend is only a doorbell: the job's state lives in the database, and a worker claims a job
atomically before running it, so ringing twice (a duplicate message, a sweep that finds a job
whose worker died) never runs a job twice.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from engine.jobs.celery_app import make_celery, send
from engine.jobs.outbox import OutboxRelay
from engine.jobs.plan import WorkerPlan, settings_to_json, worker_name
from engine.jobs.runner import run_job
from engine.settings import Settings
from storage import jobs as store
from storage.db import Database

log = logging.getLogger("gptstore.jobs")
ROOT = Path(__file__).resolve().parents[2]


class JobBackend(Protocol):
    def enqueue(self, job_id: int, kind: str = "tune") -> None: ...
    def close(self) -> None: ...


class InlineBackend:
    """Runs the job at once in the caller's thread (tests, and scripts that wait anyway)."""

    def __init__(self, settings: Settings, plan: WorkerPlan | None = None, *,
                 engine_factory: Callable[[Settings], Any] | None = None) -> None:
        self.settings, self.plan, self.engine_factory = settings, plan, engine_factory

    def enqueue(self, job_id: int, kind: str = "tune") -> None:
        run_job(self.settings, job_id, worker_name(), plan=self.plan,
                engine_factory=self.engine_factory)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class ThreadBackend:
    """Runs each job in a thread of this process (tests, and `gptstore demo`).

    enqueue() returns at once, as with the real backends; close() asks unfinished jobs to
    stop at their next step and waits for them, so nothing outlives the engine."""

    def __init__(self, settings: Settings, plan: WorkerPlan | None = None, *,
                 engine_factory: Callable[[Settings], Any] | None = None) -> None:
        self.settings, self.plan, self.engine_factory = settings, plan, engine_factory
        self.threads: dict[int, threading.Thread] = {}

    def enqueue(self, job_id: int, kind: str = "tune") -> None:
        thread = threading.Thread(
            target=run_job, args=(self.settings, job_id, worker_name()),
            kwargs={"plan": self.plan, "engine_factory": self.engine_factory},
            name=f"gptstore-job-{job_id}", daemon=True)
        self.threads[job_id] = thread
        thread.start()

    def start(self) -> None:
        pass

    def close(self, timeout: float = 120.0) -> None:
        running = [job_id for job_id, t in self.threads.items() if t.is_alive()]
        if running:
            db = Database(self.settings.database_url)
            try:
                db.retrying(lambda s: [store.request_cancel(s, job_id) for job_id in running])
            except Exception:  # the store may already be gone; the threads are daemons
                log.exception("could not ask running jobs to stop")
            finally:
                db.close()
        for thread in self.threads.values():
            thread.join(timeout=timeout)


class NullBackend:
    """Leaves jobs queued (for a process that submits but never runs jobs)."""

    def enqueue(self, job_id: int, kind: str = "tune") -> None:
        pass

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class LocalBackend:
    """A thread of the serving process that starts `python -m engine.jobs run ID` children.

    The thread starts on the first enqueue() or on start(); `gptstore serve` and
    `gptstore worker` call start() so jobs queued before a restart run, and jobs whose worker
    died resume. Children run in their own session: a job outlives the process that started
    it (a `gptstore tune` without --wait), and the chat adapters stay responsive meanwhile.
    """

    def __init__(self, settings: Settings, plan: WorkerPlan | None = None, *, slots: int = 1,
                 poll_s: float | None = None, python: str = sys.executable) -> None:
        self.settings = settings
        self.plan = plan or WorkerPlan()
        self.slots = slots
        self.poll_s = poll_s if poll_s is not None else self.plan.sweep_s
        self.python = python
        self.children: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._db: Database | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="gptstore-jobs",
                                                daemon=True)
                self._thread.start()

    def enqueue(self, job_id: int, kind: str = "tune") -> None:
        with self._lock:
            self._reap()
            if len(self.children) < self.slots and job_id not in self.children:
                self._spawn(job_id)
        self.start()
        self._wake.set()

    def close(self) -> None:
        """Stop looking for work; running children finish their job on their own."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._db is not None:
            self._db.close()

    def wait_children(self, timeout: float | None = None) -> None:
        for child in list(self.children.values()):
            child.wait(timeout=timeout)

    def kill_children(self) -> None:
        for child in list(self.children.values()):
            if child.poll() is None:
                child.kill()
                child.wait()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._fill()
            except Exception:  # a database hiccup must not end the loop
                log.exception("local jobs: looking for work failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _fill(self) -> None:
        if self._db is None:
            self._db = Database(self.settings.database_url)
        stale = datetime.now(timezone.utc) - timedelta(seconds=self.plan.stale_after_s)
        with self._lock:
            self._reap()
            free = self.slots - len(self.children)
        if free <= 0:
            return
        found = self._db.retrying(lambda s: store.runnable(s, stale, limit=free + 10))
        with self._lock:
            for job_id, _kind in found:
                if len(self.children) >= self.slots or self._stop.is_set():
                    break
                if job_id not in self.children:
                    self._spawn(job_id)

    def _reap(self) -> None:
        for job_id, child in list(self.children.items()):
            if child.poll() is not None:
                del self.children[job_id]

    def _spawn(self, job_id: int) -> None:
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.settings.logs_dir / f"job-{job_id}.log", "ab") as out:
            child = subprocess.Popen(
                [self.python, "-m", "engine.jobs", "run", str(job_id), "--settings=-",
                 *self.plan.args()],
                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                start_new_session=True)
        assert child.stdin is not None
        child.stdin.write(settings_to_json(self.settings).encode())
        child.stdin.close()
        self.children[job_id] = child


class CeleryBackend:
    """Sends each job to Celery workers (`gptstore worker` with GPTSTORE_JOBS=celery).

    enqueue() returns once the broker took the message, or raises at once when it cannot
    (no long retry loop: the job outbox keeps the debt). start() (what `gptstore serve`
    calls) runs an OutboxRelay that sends what is due, as every worker's sweeper also does."""

    def __init__(self, settings: Settings, *, queue: str = "gptstore",
                 plan: WorkerPlan | None = None) -> None:
        self.settings, self.queue, self.plan = settings, queue, plan
        self._app = None
        self._relay: tuple[threading.Thread, threading.Event] | None = None
        self._db: Database | None = None

    @property
    def app(self):
        if self._app is None:
            self._app = make_celery(self.settings, plan=self.plan, queue=self.queue)
        return self._app

    def enqueue(self, job_id: int, kind: str = "tune") -> None:
        send(self.app, job_id, kind, self.queue)

    def start(self) -> None:
        if self._relay is None:
            plan = self.plan or WorkerPlan()
            self._db = Database(self.settings.database_url)
            relay = OutboxRelay(self._db, self.enqueue, lambda: datetime.now(timezone.utc),
                                requeue_after_s=plan.requeue_after_s)
            self._relay = relay.start(plan.sweep_s)

    def close(self) -> None:
        if self._relay is not None:
            thread, stop = self._relay
            stop.set()
            thread.join(timeout=10)
            self._relay = None
        if self._db is not None:
            self._db.close()
        if self._app is not None:
            self._app.close()


def make_backend(settings: Settings) -> JobBackend:
    """The backend GPTSTORE_JOBS names: local (child processes) or celery."""
    if settings.jobs == "celery":
        return CeleryBackend(settings)
    return LocalBackend(settings)
