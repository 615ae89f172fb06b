"""Running one job: claim it atomically, beat a heartbeat, run its body, record the outcome.

A job runs once: the claim is a conditional UPDATE that only one worker wins, and a job whose
worker died (its heartbeat went stale) can be claimed again, resuming from its checkpoints
under settings.jobs_dir/<id>/checkpoints. run_job never raises: every failure is recorded.

    python -m engine.worker run JOB_ID [--settings -] [plan options]   one job (local backend)
    python -m engine.worker serve [--queue Q] [--pool solo] [plan options]   `gptstore worker`
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shutil
import socket
import sys
import threading
import traceback
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.errors import is_user_error
from engine.jobcontext import Cancelled, JobContext
from engine.settings import Settings
from storage import jobs as store
from storage.db import Database

log = logging.getLogger("gptstore.worker")
Clock = Callable[[], datetime]
DEFAULT_KINDS = {
    "tune": "engine.tuning:run_tune",
    "retrain": "engine.retrain:run_retrain",
    "evaluate": "engine.retraining:run_evaluation",
}
SECRETS = {"slack_bot_token", "slack_signing_secret", "slack_app_token", "discord_token"}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class WorkerPlan:
    """How workers run jobs; the same plan reaches child processes and Celery workers."""

    kinds: dict[str, str] = field(default_factory=dict)
    """Extra or replaced job bodies, kind -> "module:function" (tests register fakes here)."""
    engine_factory: str = "engine.worker:open_engine"
    """"module:function" building the services a job body gets, from Settings."""
    heartbeat_s: float = 10.0
    """Seconds between heartbeats (each also picks up a cancel request)."""
    stale_after_s: float = 90.0
    """A running job whose heartbeat is older than this lost its worker and runs again."""
    sweep_s: float = 30.0
    """How often idle workers look for queued jobs and jobs with a stale heartbeat."""

    def body(self, kind: str) -> Callable[[JobContext], dict]:
        path = {**DEFAULT_KINDS, **self.kinds}.get(kind)
        if path is None:
            raise LookupError(f"no job body is registered for kind {kind!r}")
        return _resolve(path)

    def args(self) -> list[str]:
        out = [f"--engine-factory={self.engine_factory}", f"--heartbeat={self.heartbeat_s}",
               f"--stale-after={self.stale_after_s}", f"--sweep={self.sweep_s}"]
        return out + [f"--kind={k}={v}" for k, v in sorted(self.kinds.items())]

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> "WorkerPlan":
        kinds = dict(item.split("=", 1) for item in ns.kind or [])
        return cls(kinds=kinds, engine_factory=ns.engine_factory, heartbeat_s=ns.heartbeat,
                   stale_after_s=ns.stale_after, sweep_s=ns.sweep)


def open_engine(settings: Settings) -> Any:
    """The default engine factory: the full Engine on an already migrated store."""
    from engine.app import Engine

    return Engine.open(settings, migrate=False)


def run_job(settings: Settings, job_id: int, worker_name: str, *,
            engine_factory: Callable[[Settings], Any] | None = None,
            plan: WorkerPlan | None = None, clock: Clock = utcnow) -> str:
    """Claim and run job `job_id`; returns its state afterwards (never raises)."""
    plan = plan or WorkerPlan()
    try:
        return _Run(settings, job_id, worker_name, plan, clock,
                    engine_factory or _resolve(plan.engine_factory)).run()
    except Exception:  # last line of defence: nothing escapes into a worker thread
        log.exception("job %s: worker error", job_id)
        return "failed"


class _Run:
    def __init__(self, settings: Settings, job_id: int, worker: str, plan: WorkerPlan,
                 clock: Clock, factory: Callable[[Settings], Any]) -> None:
        self.settings, self.job_id, self.worker, self.plan = settings, job_id, worker, plan
        self.clock, self.factory = clock, factory
        self.db = Database(settings.database_url)
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.attempt = 0

    def run(self) -> str:
        try:
            now = self.clock()
            stale = now - timedelta(seconds=self.plan.stale_after_s)
            job = self.db.retrying(lambda s: store.claim(s, self.job_id, self.worker, now, stale))
            if job is None:
                current = self.db.retrying(lambda s: store.get_job(s, self.job_id))
                return current.state if current else "missing"
            self.attempt = job.attempts
            self.event("state", "Running" + (f" again (attempt {job.attempts})"
                                              if job.attempts > 1 else "") + f" on {self.worker}.",
                       {"state": "running", "worker": self.worker, "attempt": job.attempts})
            if job.cancel_requested:
                return self.finish("cancelled", "Cancelled before it started.")
            beat = threading.Thread(target=self.beat, name=f"job-{self.job_id}-heartbeat",
                                    daemon=True)
            beat.start()
            try:
                return self.execute(job)
            finally:
                self.done.set()
                beat.join(timeout=5)
        finally:
            self.db.close()

    def execute(self, job) -> str:
        engine = None
        try:
            body = self.plan.body(job.kind)
            engine = self.factory(self.settings)
            ctx = JobContext(
                job_id=job.id, kind=job.kind, model_name=job.model_name, base_name=job.base_name,
                dataset_id=job.dataset_id, owner=job.owner, workspace=job.workspace,
                params=dict(job.params or {}), checkpoint_dir=self.checkpoints(),
                settings=self.settings, db=engine.db, catalog=getattr(engine, "catalog", None),
                datasets=getattr(engine, "datasets", None), hub=getattr(engine, "hub", None),
                report=self.report, should_stop=self.cancel.is_set)
            result = body(ctx)
        except Cancelled:
            return self.finish("cancelled", "Cancelled.")
        except Exception as exc:  # recorded for the user, never raised into the thread
            return self.finish("failed", self.explain(exc))
        finally:
            if engine is not None and hasattr(engine, "close"):
                try:
                    engine.close()
                except Exception:
                    log.exception("job %s: closing the engine failed", self.job_id)
        try:
            return self.finish("succeeded", "Succeeded.", result=dict(result or {}))
        except Exception as exc:
            return self.finish("failed", self.explain(exc))

    def checkpoints(self) -> Path:
        folder = self.settings.jobs_dir / str(self.job_id) / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def finish(self, state: str, message: str, result: dict | None = None) -> str:
        now = self.clock()
        fields_: dict[str, Any] = {"result": result} if result is not None else {}
        if state == "succeeded":
            fields_["progress"] = 1.0
        if state == "failed":
            fields_["error"] = message

        def work(s) -> bool:
            won = store.finish(s, self.job_id, self.worker, self.attempt, state, now, **fields_)
            if won:
                kind = "error" if state == "failed" else "state"
                store.add_event(s, self.job_id, kind, message if state == "failed" else message,
                                now, {"state": state})
            return won

        if not self.db.retrying(work):  # our claim was lost: someone else owns the outcome
            current = self.db.retrying(lambda s: store.get_job(s, self.job_id))
            return current.state if current else "missing"
        if state in ("succeeded", "cancelled"):
            shutil.rmtree(self.settings.jobs_dir / str(self.job_id) / "checkpoints",
                          ignore_errors=True)
        return state

    def explain(self, exc: Exception) -> str:
        if is_user_error(exc):
            return str(exc)
        ref = uuid.uuid4().hex[:6]
        text = "".join(traceback.format_exception(exc))
        log.error("job %s failed (ref %s)\n%s", self.job_id, ref, text)
        try:
            self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
            with open(self.settings.logs_dir / "errors.log", "a", encoding="utf-8") as out:
                out.write(f"--- ref {ref} job {self.job_id} at {utcnow().isoformat()}\n{text}\n")
        except OSError:
            pass
        return f"Unexpected error (ref {ref}); the operator can look it up in the store's logs."

    def event(self, kind: str, message: str, data: dict | None = None) -> None:
        now = self.clock()
        self.db.retrying(lambda s: store.add_event(s, self.job_id, kind, message, now, data))

    def report(self, progress: float, message: str, data: dict | None = None,
               kind: str = "progress") -> None:
        now = self.clock()

        def work(s) -> None:
            store.add_event(s, self.job_id, kind, message, now, data)
            if kind == "progress":
                store.set_progress(s, self.job_id, max(0.0, min(1.0, float(progress))))

        self.db.retrying(work)

    def beat(self) -> None:
        while not self.done.wait(self.plan.heartbeat_s):
            try:
                flag = self.db.retrying(lambda s: store.heartbeat(
                    s, self.job_id, self.worker, self.attempt, self.clock()))
            except Exception:
                log.exception("job %s: heartbeat failed", self.job_id)
                continue
            if flag is None or flag:  # cancelled, or the claim went to another worker
                self.cancel.set()


def _resolve(path: str) -> Callable:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:4]}"


def settings_to_json(settings: Settings) -> str:
    """Settings for a child process, without platform tokens (workers never need them)."""
    values = {f.name: getattr(settings, f.name) for f in fields(settings) if f.name not in SECRETS}
    values["home"] = str(settings.home)
    return json.dumps(values)


def settings_from_json(text: str) -> Settings:
    values = json.loads(text)
    known = {f.name for f in fields(Settings)}
    values = {k: v for k, v in values.items() if k in known}
    values["home"] = Path(values["home"])
    return Settings(**values)


def serve_forever(settings: Settings, stop_event: threading.Event, *,
                  plan: WorkerPlan | None = None, queue: str = "gptstore",
                  pool: str = "prefork") -> None:
    """`gptstore worker`: run jobs until stop_event is set (local: poll the database;
    celery: a Celery worker consuming `queue`, which also re-sends stale jobs)."""
    plan = plan or WorkerPlan()
    if settings.jobs == "celery":
        from engine.celery_app import run_celery_worker

        run_celery_worker(settings, stop_event, plan=plan, queue=queue, pool=pool)
        return
    from engine.job_backends import LocalBackend

    backend = LocalBackend(settings, plan)
    backend.start()
    try:
        stop_event.wait()
    finally:
        backend.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.worker")
    parser.add_argument("command", choices=("run", "serve"))
    parser.add_argument("job_id", nargs="?", type=int)
    parser.add_argument("--settings", help="'-' reads the settings as JSON from stdin")
    parser.add_argument("--kind", action="append", help="KIND=module:function")
    parser.add_argument("--engine-factory", default=WorkerPlan.engine_factory)
    parser.add_argument("--heartbeat", type=float, default=WorkerPlan.heartbeat_s)
    parser.add_argument("--stale-after", type=float, default=WorkerPlan.stale_after_s)
    parser.add_argument("--sweep", type=float, default=WorkerPlan.sweep_s)
    parser.add_argument("--queue", default="gptstore")
    parser.add_argument("--pool", default="prefork")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = settings_from_json(sys.stdin.read()) if ns.settings == "-" else Settings.from_env()
    plan = WorkerPlan.from_args(ns)
    if ns.command == "run":
        if ns.job_id is None:
            parser.error("run needs a JOB_ID")
        state = run_job(settings, ns.job_id, worker_name(), plan=plan)
        log.info("job %s: %s", ns.job_id, state)
        return 0
    serve_forever(settings, threading.Event(), plan=plan, queue=ns.queue, pool=ns.pool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
