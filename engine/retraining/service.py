"""Retraining as users see it: set a schedule, retrain now, and fire the runs that are due.

Schedules live in the database (the source of truth). `run_due(now)` is the one place that
decides a run: it claims the (model, slot) run record first, so two processes that both
fire the same slot start one retrain between them. The job body is
engine/workflows/retrain.py; what it takes to go live is engine/retraining/gate.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

from engine.catalog.rules import check_manage
from engine.errors import Busy, InvalidInput, PermissionDenied
from engine.identity import Caller
from engine.retraining.schedule import cron_for, latest_fire, next_fires
from engine.views import JobView, Origin, ScheduleView, from_dict
from engine.curation import Curation
from engine.views import CuratedView
from storage import schedules as schedule_rows
from storage.tables import ModelRecord, ModelVersionRecord

if TYPE_CHECKING:
    from engine.catalog.service import Catalog
    from engine.jobs.service import JobService
    from engine.settings import Settings
    from storage.db import Database

@dataclass(frozen=True)
class RetrainOutcome:
    """What one firing of a schedule (or `retrain now`) did."""

    model_name: str
    started: bool
    message: str
    job: JobView | None = None


class Retrainer:
    def __init__(self, db: "Database", settings: "Settings", catalog: "Catalog",
                 jobs: "JobService", clock: Callable[[], datetime],
                 curation: Curation | None = None) -> None:
        self.db = db
        self.settings = settings
        self.catalog = catalog
        self.jobs = jobs
        self.clock = clock
        self.curation = curation or Curation(db, settings, catalog, clock)

    def set_schedule(self, caller: Caller, name: str, spec: str,
                     origin: Origin | None = None) -> ScheduleView:
        """Set when MODEL retrains: daily, weekly, off or a cron expression."""
        spec = " ".join((spec or "").split()).lower()
        model = self.catalog.resolve(caller, name)
        if model.is_base:
            raise InvalidInput(f"'{model.name}' is a base model; only tuned models are retrained.")
        if not caller.is_admin:
            raise PermissionDenied("Only a workspace admin can set retrain schedules; ask one of them.")
        check_manage(caller, model, "set its retrain schedule")  # an admin of its own workspace
        if spec != "off":
            cron_for(spec)
        now = self.clock()
        with self.db.session() as session:
            record = schedule_rows.upsert(
                session, model.id, spec, min_new_examples=self.settings.retrain_min_examples,
                created_by=caller.user, origin=(origin or Origin()).stored(), now=now)
            return self._view(model.name, record, now)

    def schedule(self, caller: Caller, name: str) -> ScheduleView | None:
        model = self.catalog.resolve(caller, name)
        with self.db.session() as session:
            record = schedule_rows.get(session, model.id)
            return None if record is None else self._view(model.name, record, self.clock())

    def retrain_now(self, caller: Caller, name: str,
                    origin: Origin | None = None) -> RetrainOutcome:
        """Retrain MODEL at once (still skipped when too few new curated pairs exist)."""
        model = self.catalog.resolve(caller, name)
        if model.is_base:
            raise InvalidInput(f"'{model.name}' is a base model; only tuned models are retrained.")
        check_manage(caller, model, "retrain it")  # owner, or an admin of the model's workspace
        workspace = model.workspace or caller.workspace
        self.jobs.limits.check_tune(caller)  # a user's retrain is a fine-tune they start
        self.jobs.limits.check_workspace_jobs(workspace)
        self.jobs.limits.check_user_jobs(caller)
        return self._fire(model.id, model.name, f"now:{uuid.uuid4().hex[:12]}",
                          origin or Origin(), limited_for=caller)

    def run_due(self, now: datetime | None = None) -> list[RetrainOutcome]:
        """Fire every schedule with a slot in (last run, now]. Safe to call from many processes."""
        now = now or self.clock()
        with self.db.session() as session:
            due = []
            for record in schedule_rows.active(session):
                since = record.last_run_at or record.created_at
                slot = latest_fire(record.spec, _aware(since), now)
                if slot is not None:
                    due.append((record.model_id, slot, from_dict(Origin, record.origin)))
        outcomes = []
        for model_id, slot, origin in due:
            origin = replace(origin, scheduled=True)  # the adapter announces it there
            with self.db.session() as session:
                name = session.get(ModelRecord, model_id).name
            outcomes.append(self._fire(model_id, name, slot.isoformat(), origin, at=slot))
        return outcomes

    def _fire(self, model_id: int, name: str, slot: str, origin: Origin,
              at: datetime | None = None, limited_for: Caller | None = None) -> RetrainOutcome:
        now = self.clock()
        with self.db.session() as session:
            run = schedule_rows.claim_slot(session, model_id, slot, now)
            if run is None:
                return RetrainOutcome(name, False, f"The retrain of {name} for {slot} already ran.")
            run_id = run.id
            schedule_rows.record_outcome(session, model_id, "starting", at or now)
        fresh = self.new_pairs(model_id)
        needed = self.settings.retrain_min_examples
        if len(fresh) < needed:
            message = (f"Retrain of {name} skipped: {len(fresh)} new approved pair(s) since the "
                       f"live version, {needed} needed. Approve suggestions with `/store review "
                       f"{name}` (corrections and 👎 answers land there).")
            self._record(model_id, run_id, message, None, at or now)
            return RetrainOutcome(name, False, message)
        with self.db.session() as session:
            model = session.get(ModelRecord, model_id)
            live = session.get(ModelVersionRecord, model.live_version_id) if model.live_version_id else None
            owner, workspace = model.owner, model.workspace
            dataset_id = live.dataset_id if live is not None else None
        # The job reads the approved pairs again when it runs (all of them, not only the new
        # ones), so a forget-me or a rejection in between still leaves them out.
        try:
            job = self.jobs.submit(
                "retrain", name, owner=owner, workspace=workspace, dataset_id=dataset_id,
                params={"new_pairs": len(fresh)}, origin=origin,
                idempotency_key=f"retrain:{model_id}:{slot}", model_id=model_id,
                limited_for=limited_for)
        except Busy as refused:  # a limit filled up since the early check
            self._record(model_id, run_id, str(refused), None, at or now)
            raise
        message = (f"Retrain of {name} started as job {job.id} with {len(fresh)} new approved "
                   "pairs.")
        self._record(model_id, run_id, message, job.id, at or now)
        return RetrainOutcome(name, True, message, job)

    def new_pairs(self, model_id: int) -> list[CuratedView]:
        """Approved curated pairs that the live version was not trained on."""
        return self.curation.new_pairs(model_id)

    def _record(self, model_id: int, run_id: int, outcome: str, job_id: int | None, at: datetime) -> None:
        with self.db.session() as session:
            schedule_rows.finish_run(session, run_id, outcome=outcome, job_id=job_id)
            schedule_rows.record_outcome(session, model_id, outcome, at)

    def _view(self, name: str, record, now: datetime) -> ScheduleView:
        return ScheduleView(
            model_name=name, spec=record.spec, min_new_examples=record.min_new_examples,
            last_run_at=record.last_run_at, last_outcome=record.last_outcome,
            next_runs=tuple(next_fires(record.spec, now, 3)))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
