"""Running one job: claim it atomically, beat a heartbeat, run its body, record the outcome.

A job runs once: the claim is a conditional UPDATE that only one worker wins, and a job whose
worker died (its heartbeat went stale) can be claimed again, resuming from its checkpoints
under settings.jobs_dir/<id>/checkpoints. run_job never raises: every failure is recorded.
`python -m engine.jobs` (engine/jobs/__main__.py) is the command line around it.
"""

from __future__ import annotations

import logging
import shutil
import threading
import traceback
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from engine.artifacts.refs import is_ref
from engine.artifacts.store import ArtifactStore
from engine.errors import Cancelled, StoreError, is_user_error
from engine.jobs.context import JobContext
from engine.jobs.plan import WorkerPlan, resolve, utcnow
from engine.settings import Settings
from storage import jobs as store
from storage.db import Database

log = logging.getLogger("gptstore.worker")
Clock = Callable[[], datetime]


def run_job(settings: Settings, job_id: int, worker_name: str, *,
            engine_factory: Callable[[Settings], Any] | None = None,
            plan: WorkerPlan | None = None, clock: Clock = utcnow) -> str:
    """Claim and run job `job_id`; returns its state afterwards (never raises)."""
    plan = plan or WorkerPlan()
    try:
        return _Run(settings, job_id, worker_name, plan, clock,
                    engine_factory or resolve(plan.engine_factory)).run()
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
        self._artifacts: ArtifactStore | None = None
        self.recorded = ""  # the checkpoint recorded on the job (an artifact reference)

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
                params=dict(job.params or {}), checkpoint_dir=self.checkpoints(job),
                settings=self.settings, db=engine.db, catalog=getattr(engine, "catalog", None),
                datasets=getattr(engine, "datasets", None), hub=getattr(engine, "hub", None),
                chat=getattr(engine, "chat", None), artifacts=getattr(engine, "artifacts", None),
                knowledge=getattr(engine, "knowledge", None),
                model_id=job.model_id, report=self.report, should_stop=self.cancel.is_set,
                checkpoint_saved=self.checkpoint_saved)
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

    def checkpoints(self, job) -> Path:
        """This host's checkpoint folder for the job, holding the last checkpoint recorded on
        the job (from the artifact store, so one written on another host counts too)."""
        folder = self.settings.jobs_dir / str(self.job_id) / "checkpoints"
        self.recorded = job.checkpoint_path or ""
        if is_ref(self.recorded):
            try:
                self.store().restore(self.recorded, folder)
            except StoreError as exc:  # lost or damaged: train again rather than fail
                log.warning("job %s: its checkpoint cannot be restored (%s); starting over",
                            self.job_id, exc)
                shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def store(self) -> ArtifactStore:
        if self._artifacts is None:
            self._artifacts = ArtifactStore.open(self.settings, self.db, self.clock)
        return self._artifacts

    def checkpoint_saved(self, note: dict[str, Any]) -> None:
        """Store the checkpoint folder and record it on the job with one "checkpoint" event,
        in one transaction and only while this worker's claim holds: the steps the event
        names are exactly the ones a resumed run will not train again."""
        ref = self.store().put_folder(self.settings.jobs_dir / str(self.job_id) / "checkpoints")
        now = self.clock()
        text = note.get("message") or "Checkpoint saved."

        def work(s) -> bool:
            if not store.record_checkpoint(s, self.job_id, self.worker, self.attempt, ref):
                return False
            store.add_event(s, self.job_id, "checkpoint", text, now,
                            {**note, "attempt": self.attempt})
            return True

        if not self.db.retrying(work):
            self.cancel.set()  # the claim went to another worker: stop at the next step
            return
        previous, self.recorded = self.recorded, ref
        if previous and previous != ref:
            self.store().forget(previous)  # only the newest checkpoint is ever resumed

    def finish(self, state: str, message: str, result: dict | None = None) -> str:
        now = self.clock()
        fields_: dict[str, Any] = {"result": result} if result is not None else {}
        if state == "succeeded":
            fields_["progress"] = 1.0
        if state in ("succeeded", "cancelled"):
            fields_["checkpoint_path"] = ""  # nothing will resume it; its files may go
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
            if self.recorded:
                try:
                    self.store().forget(self.recorded)
                except Exception:  # housekeeping collects it later
                    log.exception("job %s: could not delete its checkpoint", self.job_id)
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


