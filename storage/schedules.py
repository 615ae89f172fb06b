"""Schedules and retrain runs: reading, writing, and claiming a run slot exactly once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from storage.tables import RetrainRunRecord, ScheduleRecord, utcnow


def get(session: Session, model_id: int) -> ScheduleRecord | None:
    return session.exec(select(ScheduleRecord).where(ScheduleRecord.model_id == model_id)).first()


def upsert(session: Session, model_id: int, spec: str, *, min_new_examples: int,
           created_by: str, origin: dict[str, Any], now: datetime) -> ScheduleRecord:
    record = get(session, model_id)
    if record is None:
        record = ScheduleRecord(model_id=model_id, created_at=now)
    record.spec = spec
    record.min_new_examples = min_new_examples
    record.created_by = created_by
    record.origin = origin
    session.add(record)
    session.flush()
    return record


def active(session: Session) -> list[ScheduleRecord]:
    return list(session.exec(select(ScheduleRecord).where(ScheduleRecord.spec != "off")))


def claim_slot(session: Session, model_id: int, slot: str, now: datetime | None = None) -> RetrainRunRecord | None:
    """Insert the run record for (model, slot); None when another process already did.

    The unique constraint is the lock: two schedulers firing the same slot race on this
    insert, and only one of them wins.
    """
    record = RetrainRunRecord(model_id=model_id, slot=slot, created_at=now or utcnow())
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        return None
    return record


def finish_run(session: Session, run_id: int, *, outcome: str, job_id: int | None = None) -> None:
    record = session.get(RetrainRunRecord, run_id)
    if record is not None:
        record.outcome = outcome
        record.job_id = job_id
        session.add(record)


def record_outcome(session: Session, model_id: int, outcome: str, at: datetime) -> None:
    record = get(session, model_id)
    if record is not None:
        record.last_outcome = outcome
        record.last_run_at = at
        session.add(record)


def runs(session: Session, model_id: int) -> list[RetrainRunRecord]:
    return list(session.exec(select(RetrainRunRecord).where(RetrainRunRecord.model_id == model_id)
                             .order_by(RetrainRunRecord.id)))
