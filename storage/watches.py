"""Job watches: who in chat waits for which job, and which serve process reports to them.

A watch is held through a lease (owner, lease_until) that its holder renews; a watch whose
lease ran out (its serve process died) is taken by the next process that asks. The end of a
job is reported through two conditional steps, following -> finishing -> delivered, so a
process that takes over knows whether the final message may already be out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import or_, update
from sqlmodel import Session, select

from storage.tables import JobWatchRecord


def add(session: Session, key: str, job_id: int, platform: str, place: dict[str, Any],
        now: datetime) -> JobWatchRecord:
    """The watch for `key`, created once (IntegrityError on a race: read it again)."""
    found = session.exec(select(JobWatchRecord).where(JobWatchRecord.key == key)).first()
    if found is not None:
        return found
    record = JobWatchRecord(key=key, job_id=job_id, platform=platform, place=place,
                            created_at=now)
    session.add(record)
    session.flush()
    return record


def claim(session: Session, platform: str, owner: str, now: datetime, until: datetime,
          limit: int = 50) -> list[JobWatchRecord]:
    """Renew this owner's watches and take those whose lease ran out; returns all it holds."""
    open_ = JobWatchRecord.state != "delivered"
    session.execute(
        update(JobWatchRecord)
        .where(JobWatchRecord.platform == platform, open_,
               or_(JobWatchRecord.owner == owner, JobWatchRecord.lease_until == None,  # noqa: E711
                   JobWatchRecord.lease_until < now))
        .values(owner=owner, lease_until=until))
    query = (select(JobWatchRecord)
             .where(JobWatchRecord.platform == platform, open_, JobWatchRecord.owner == owner)
             .order_by(JobWatchRecord.id).limit(limit))
    return list(session.exec(query))


def shown(session: Session, watch_id: int, owner: str, text: str, now: datetime) -> bool:
    result = session.execute(
        update(JobWatchRecord)
        .where(JobWatchRecord.id == watch_id, JobWatchRecord.owner == owner)
        .values(last_text=text, updated_at=now))
    return result.rowcount == 1


def move(session: Session, watch_id: int, owner: str, from_state: str, to_state: str,
         now: datetime) -> bool:
    values: dict[str, Any] = {"state": to_state}
    if to_state == "delivered":
        values["delivered_at"] = now
    result = session.execute(
        update(JobWatchRecord)
        .where(JobWatchRecord.id == watch_id, JobWatchRecord.owner == owner,
               JobWatchRecord.state == from_state)
        .values(**values))
    return result.rowcount == 1


def release(session: Session, owner: str) -> None:
    session.execute(update(JobWatchRecord)
                    .where(JobWatchRecord.owner == owner, JobWatchRecord.state != "delivered")
                    .values(lease_until=None))


def get(session: Session, watch_id: int) -> Optional[JobWatchRecord]:
    return session.get(JobWatchRecord, watch_id)


def for_job(session: Session, job_id: int) -> list[JobWatchRecord]:
    return list(session.exec(select(JobWatchRecord).where(JobWatchRecord.job_id == job_id)
                             .order_by(JobWatchRecord.id)))
