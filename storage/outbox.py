"""The job outbox: the broker message each queued job still owes, committed with the job.

A row is due at `due_at`. A dispatcher takes it (one conditional UPDATE moves `due_at` on, so
two dispatchers rarely send the same row at once), sends it, and on the broker's
acknowledgement sets it due again only much later: a job still queued by then lost its
message (a flushed or failed broker) and is sent again. Rows of jobs that left the queue go.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import delete, exists, update
from sqlmodel import Session, select

from storage.tables import JobOutboxRecord, JobRecord


def add(session: Session, job_id: int, kind: str, now: datetime) -> None:
    """The job's message is owed from now (in the caller's transaction, the job's own)."""
    row = session.get(JobOutboxRecord, job_id)
    if row is None:
        session.add(JobOutboxRecord(job_id=job_id, kind=kind, due_at=now, created_at=now))
    else:
        row.due_at = now
        session.add(row)
    session.flush()


def due(session: Session, now: datetime, limit: int = 20) -> list[JobOutboxRecord]:
    """Rows due now whose job is still queued, oldest first."""
    query = (select(JobOutboxRecord)
             .join(JobRecord, JobRecord.id == JobOutboxRecord.job_id)
             .where(JobOutboxRecord.due_at <= now, JobRecord.state == "queued")
             .order_by(JobOutboxRecord.due_at, JobOutboxRecord.job_id).limit(limit))
    return list(session.exec(query))


def take(session: Session, job_id: int, seen_due: datetime, until: datetime) -> bool:
    """Claim a due row for one send: only the dispatcher whose UPDATE matches wins."""
    result = session.execute(
        update(JobOutboxRecord)
        .where(JobOutboxRecord.job_id == job_id, JobOutboxRecord.due_at == seen_due)
        .values(due_at=until))
    return result.rowcount == 1


def sent(session: Session, job_id: int, now: datetime, check_at: datetime) -> None:
    session.execute(
        update(JobOutboxRecord).where(JobOutboxRecord.job_id == job_id)
        .values(sent_at=now, due_at=check_at, attempts=JobOutboxRecord.attempts + 1,
                last_error=""))


def failed(session: Session, job_id: int, retry_at: datetime, error: str) -> None:
    session.execute(
        update(JobOutboxRecord).where(JobOutboxRecord.job_id == job_id)
        .values(due_at=retry_at, attempts=JobOutboxRecord.attempts + 1, last_error=error[:500]))


def get(session: Session, job_id: int) -> Optional[JobOutboxRecord]:
    return session.get(JobOutboxRecord, job_id)


def prune(session: Session) -> int:
    """Drop the rows of jobs that are no longer queued (running, finished or deleted)."""
    still_queued = exists().where(JobRecord.id == JobOutboxRecord.job_id,
                                  JobRecord.state.in_(("validating", "queued")))
    result = session.execute(delete(JobOutboxRecord).where(~still_queued))
    return int(result.rowcount or 0)


def pending(session: Session) -> int:
    """Queued jobs whose message the broker has not acknowledged yet."""
    query = (select(JobOutboxRecord.job_id)
             .join(JobRecord, JobRecord.id == JobOutboxRecord.job_id)
             .where(JobRecord.state == "queued", JobOutboxRecord.sent_at == None))  # noqa: E711
    return len(list(session.exec(query)))
