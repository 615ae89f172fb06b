"""Fine-tune and retrain jobs as users see them: submit, list, show, cancel, follow, wait.

States: validating -> queued -> running -> succeeded | failed | cancelled. Every change is
also a JobEventRecord, which the chat adapters follow to report progress. Running a job is
the worker's business (engine/jobs/runner.py); the backend only tells a worker that one is queued.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable, Optional

from sqlalchemy.exc import IntegrityError

from engine.errors import Busy, Conflict, NotFound, PermissionDenied
from engine.identity import Caller
from engine.jobs.outbox import OutboxRelay
from engine.jobs.plan import WorkerPlan
from engine.limits import RateLimiter
from engine.settings import Settings
from engine.training.config import TrainConfig
from engine.views import JobEventView, JobView, Origin, from_dict
from storage import jobs as store
from storage import outbox
from storage.db import Database
from storage.tables import JobEventRecord, JobRecord

Clock = Callable[[], datetime]


class JobService:
    def __init__(self, db: Database, settings: Settings, catalog: Any, datasets: Any,
                 backend: Any, clock: Clock) -> None:
        self.db, self.settings, self.catalog, self.datasets = db, settings, catalog, datasets
        self.backend, self.clock = backend, clock
        self.limits = RateLimiter(db, settings, clock)
        plan = getattr(backend, "plan", None) or WorkerPlan()
        # The backend is looked up at each send: whatever backend the service has then rings.
        self.outbox = OutboxRelay(db, lambda job_id, kind: self.backend.enqueue(job_id, kind),
                                  clock,
                                  requeue_after_s=plan.requeue_after_s)

    def submit_tune(self, caller: Caller, name: str, filename: str, data: bytes,
                    options: dict, origin: Origin | None = None, validation: Any = None,
                    base: Optional[str] = None, idempotency_key: Optional[str] = None) -> JobView:
        """Validate everything, store the dataset, queue the job. A refused request (bad
        options, bad file, name taken, rate limit) leaves no job and no dataset behind;
        a repeated idempotency_key (or origin.idempotency_key) returns the first submission's
        job."""
        origin = origin or Origin()
        idempotency_key = idempotency_key or origin.idempotency_key or None
        existing = self._existing(idempotency_key)
        if existing is not None:
            return existing
        options = dict(options or {})
        option_base = options.pop("base", None)
        base = base or option_base or self.settings.default_base
        validate_options(options)
        self._check_limits(caller, caller.workspace)  # early, before the file is parsed
        self.datasets.inspect(caller, filename, data, validation=validation)  # raises, stores nothing
        model = self.catalog.create_or_get_tuned(caller, name, base)
        try:
            job = self._create(JobRecord(
                kind="tune", model_name=model.name, model_id=model.id,
                base_name=model.base_name or base, owner=caller.user,
                workspace=caller.workspace, params=options, origin=origin.stored(),
                idempotency_key=idempotency_key), admit=caller)
        except Busy:  # another process took the last place meanwhile
            self.catalog.discard_unused(model.id)
            raise
        if job is None:  # the same key won a race a moment ago
            return self._existing(idempotency_key)  # type: ignore[return-value]
        try:
            report = self.datasets.store(caller, filename, data, validation=validation,
                                         model_id=model.id)
        except BaseException:
            self.db.retrying(lambda s: store.delete_job(s, job.id))
            raise
        return self._queue(job.id, report.dataset_id, {
            "examples": report.n_examples, "split": report.split_sizes}, report.warnings)

    def submit_retrain(self, model_name: str, *, owner: str, workspace: str,
                       dataset_id: Optional[int], extra_dataset_id: Optional[int] = None,
                       options: Optional[dict] = None, origin: Origin | None = None,
                       base_name: Optional[str] = None, caller: Optional[Caller] = None,
                       idempotency_key: Optional[str] = None) -> JobView:
        """Queue a retrain of `model_name` on its dataset plus curated examples
        (`extra_dataset_id`). With a caller (a user's `/store retrain now`) the user's tune
        rate and the workspace's job limit apply; scheduled retrains skip them."""
        options = dict(options or {})
        validate_options(options)
        if caller is not None and self._existing(idempotency_key) is None:
            self._check_limits(caller, workspace)
        return self.submit("retrain", model_name, owner=owner, workspace=workspace,
                           base_name=base_name, dataset_id=dataset_id,
                           params={**options, "extra_dataset_id": extra_dataset_id},
                           origin=origin, idempotency_key=idempotency_key, limited_for=caller)

    def submit(self, kind: str, model_name: str, *, owner: str, workspace: str,
               base_name: Optional[str] = None, dataset_id: Optional[int] = None,
               params: Optional[dict] = None, origin: Origin | None = None,
               idempotency_key: Optional[str] = None, model_id: Optional[int] = None,
               limited_for: Optional[Caller] = None) -> JobView:
        """Queue a job of any registered kind whose inputs are already in the store
        (retrain, evaluate). The model is `model_id`, else `model_name` in `workspace`. With
        `limited_for`, that user's and the workspace's job limits apply, atomically with
        the insert (RateLimiter.admit); without, none do (scheduled retrains)."""
        existing = self._existing(idempotency_key)
        if existing is not None:
            return existing
        if model_id is None:
            found = self.db.retrying(lambda s: store.model_of(s, workspace, model_name))
            model_id = found.id if found is not None else None
            base_name = base_name or (found.base_name if found is not None else None)
        job = self._create(JobRecord(
            kind=kind, model_name=model_name, model_id=model_id, base_name=base_name or "",
            owner=owner, workspace=workspace, params=dict(params or {}),
            origin=(origin or Origin()).stored(), idempotency_key=idempotency_key),
            admit=limited_for)
        if job is None:
            return self._existing(idempotency_key)  # type: ignore[return-value]
        return self._queue(job.id, dataset_id, {}, [])

    def list(self, caller: Caller, limit: int = 50) -> list[JobView]:
        """The caller's jobs and their workspace's, newest first."""
        records = self.db.retrying(
            lambda s: store.visible_jobs(s, caller.user, caller.workspace, limit))
        return [job_view(r) for r in records]

    def get(self, caller: Caller, job_id: int) -> JobView:
        """One job with all its events."""
        job, events = self.db.retrying(lambda s: (store.get_job(s, job_id), store.events(s, job_id)))
        if job is None or not _can_see(caller, job):
            raise NotFound(f"There is no job {job_id} that you can see; `/store jobs` lists yours.")
        return job_view(job, events)

    def cancel(self, caller: Caller, job_id: int) -> JobView:
        """Queued: cancelled at once. Running: the worker stops at its next step."""
        job = self.db.retrying(lambda s: store.get_job(s, job_id))
        if job is None or not _can_see(caller, job):
            raise NotFound(f"There is no job {job_id} that you can see; `/store jobs` lists yours.")
        if job.owner != caller.user and not caller.is_admin:
            raise PermissionDenied(f"Only whoever started job {job_id} or a workspace admin can "
                                   "cancel it.")
        now = self.clock()

        def work(s) -> str:
            if store.move(s, job_id, "cancelled", from_states=("validating", "queued"),
                          finished_at=now, cancel_requested=True):
                store.add_event(s, job_id, "state", f"Cancelled by {_who(caller)}.", now,
                                {"state": "cancelled"})
                return "cancelled"
            if store.request_cancel(s, job_id):
                store.add_event(s, job_id, "state", f"Cancel requested by {_who(caller)}; "
                                "stopping at the next step.", now, {"state": "cancel_requested"})
                return "cancel_requested"
            return "finished"

        if self.db.retrying(work) == "finished":
            raise Conflict(f"Job {job_id} already finished.")
        return self.get(caller, job_id)

    def events_since(self, job_id: int, after_id: int = 0) -> list[JobEventView]:
        return [event_view(e) for e in self.db.retrying(lambda s: store.events(s, job_id, after_id))]

    def view(self, job_id: int) -> JobView:
        """A job's view without a permission check (for the engine's own followers)."""
        job = self.db.retrying(lambda s: store.get_job(s, job_id))
        if job is None:
            raise NotFound(f"There is no job {job_id}.")
        return job_view(job)

    def unannounced(self, after_id: int, platform: str) -> list[JobView]:
        """Scheduled jobs newer than `after_id` that report to `platform` (nobody in chat
        started them, so the adapter announces them where the schedule was set)."""
        records = self.db.retrying(lambda s: store.unannounced(s, after_id, platform))
        return [job_view(r) for r in records]

    def latest_id(self) -> int:
        from sqlalchemy import func
        from sqlmodel import select

        from storage.tables import JobRecord

        return int(self.db.retrying(lambda s: s.exec(select(func.max(JobRecord.id))).one()) or 0)

    def wait(self, job_id: int, timeout: Optional[float] = None, poll: float = 0.5) -> JobView:
        """Block until the job finished (or `timeout` seconds passed); returns its view."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            view = self.view(job_id)
            if view.finished or (deadline is not None and time.monotonic() >= deadline):
                return view
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))

    def start(self) -> None:
        """Start running jobs in this process's backend (serve: leftovers from before a
        restart; with Celery, a relay that sends the job outbox)."""
        if hasattr(self.backend, "start"):
            self.backend.start()

    def close(self) -> None:
        if hasattr(self.backend, "close"):
            self.backend.close()

    def _existing(self, key: Optional[str]) -> Optional[JobView]:
        if not key:
            return None
        job = self.db.retrying(lambda s: store.by_idempotency_key(s, key))
        return job_view(job) if job is not None else None

    def _check_limits(self, caller: Caller, workspace: str) -> None:
        """The job limits without their lock: a quick refusal before any work is done."""
        self.limits.check_tune(caller)
        self.limits.check_workspace_jobs(workspace)
        self.limits.check_user_jobs(caller)

    def _create(self, job: JobRecord, admit: Optional[Caller] = None) -> Optional[JobRecord]:
        """Insert the job (state validating); with `admit`, only if the limits of that
        caller and the job's workspace allow it, checked in the same transaction."""
        now = self.clock()
        job.created_at = now
        job.state = "validating"

        def work(s) -> JobRecord:
            if admit is not None:
                self.limits.admit(s, admit, job.workspace)
            store.insert_job(s, job)
            store.add_event(s, job.id, "state", "Validating the request.", now,
                            {"state": "validating"})
            return job

        try:
            return self.db.retrying(work)
        except IntegrityError:
            if job.idempotency_key:
                return None
            raise

    def _queue(self, job_id: int, dataset_id: Optional[int], data: dict,
               warnings: list[str]) -> JobView:
        now = self.clock()

        def work(s) -> str | None:
            if not store.move(s, job_id, "queued", from_states=("validating",),
                              dataset_id=dataset_id):
                return None  # cancelled while validating
            for warning in warnings:
                store.add_event(s, job_id, "warning", warning, now)
            store.add_event(s, job_id, "state", "Queued.", now, {"state": "queued", **data})
            kind = store.get_job(s, job_id).kind
            outbox.add(s, job_id, kind, now)  # committed with the job: no job without its message
            return kind

        kind = self.db.retrying(work)
        if kind is not None:
            self.outbox.deliver(job_id, kind)  # a broker that is down: a relay sends it later
        return self.view(job_id)


def validate_options(options: dict) -> None:
    """TrainConfig's validation (torch-free), so a bad option is refused before any upload work."""
    TrainConfig.from_options(options)


def job_view(job: JobRecord, events: Optional[list[JobEventRecord]] = None) -> JobView:
    return JobView(
        id=job.id, kind=job.kind, state=job.state, model_name=job.model_name,
        base_name=job.base_name, owner=job.owner, workspace=job.workspace,
        progress=job.progress, params=dict(job.params or {}), origin=from_dict(Origin, job.origin),
        result=dict(job.result or {}), error=job.error, created_at=job.created_at,
        started_at=job.started_at, finished_at=job.finished_at,
        events=[event_view(e) for e in events or []])


def event_view(event: JobEventRecord) -> JobEventView:
    return JobEventView(id=event.id, at=event.at, kind=event.kind, message=event.message,
                        data=dict(event.data or {}))


def _can_see(caller: Caller, job: JobRecord) -> bool:
    return job.owner == caller.user or job.workspace == caller.workspace


def _who(caller: Caller) -> str:
    return caller.display_name or caller.user
