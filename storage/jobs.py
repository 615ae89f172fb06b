"""Jobs and their events: insert, read, and the atomic state changes (claim, heartbeat, finish).

Every state change that two processes could race on is one conditional UPDATE whose row
count says who won, so a job is claimed by one worker only and a finished job stays finished.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Optional

from sqlalchemy import func, or_, update
from sqlmodel import Session, select

from storage.tables import JobEventRecord, JobRecord, ModelRecord

ACTIVE = ("validating", "queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")


def insert_job(session: Session, job: JobRecord) -> JobRecord:
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Optional[JobRecord]:
    return session.get(JobRecord, job_id)


def by_idempotency_key(session: Session, key: str) -> Optional[JobRecord]:
    return session.exec(select(JobRecord).where(JobRecord.idempotency_key == key)).first()


def delete_job(session: Session, job_id: int) -> None:
    job = session.get(JobRecord, job_id)
    if job is not None:
        session.delete(job)
        session.flush()


def visible_jobs(session: Session, user: str, workspace: str, limit: int = 50) -> list[JobRecord]:
    """The user's own jobs and those of their workspace, newest first."""
    query = (select(JobRecord)
             .where(or_(JobRecord.owner == user, JobRecord.workspace == workspace))
             .order_by(JobRecord.id.desc()).limit(limit))
    return list(session.exec(query))


def add_event(session: Session, job_id: int, kind: str, message: str, at: datetime,
              data: Optional[dict[str, Any]] = None) -> JobEventRecord:
    event = JobEventRecord(job_id=job_id, kind=kind, message=message, at=at, data=dict(data or {}))
    session.add(event)
    session.flush()
    return event


def events(session: Session, job_id: int, after_id: int = 0) -> list[JobEventRecord]:
    query = (select(JobEventRecord)
             .where(JobEventRecord.job_id == job_id, JobEventRecord.id > after_id)
             .order_by(JobEventRecord.id))
    return list(session.exec(query))


def move(session: Session, job_id: int, to_state: str, *, from_states: Iterable[str],
         **fields: Any) -> bool:
    """Set the state (and other columns) only if the job is still in one of `from_states`."""
    result = session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.state.in_(list(from_states)))
        .values(state=to_state, **fields))
    return result.rowcount == 1


def claim(session: Session, job_id: int, worker: str, now: datetime,
          stale_before: datetime) -> Optional[JobRecord]:
    """Take the job for `worker` if it is queued, or running with a heartbeat older than
    `stale_before` (its worker died). Returns the claimed job, or None if another has it."""
    result = session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id,
               or_(JobRecord.state == "queued",
                   (JobRecord.state == "running") & (
                       (JobRecord.heartbeat_at == None)  # noqa: E711 (SQL IS NULL)
                       | (JobRecord.heartbeat_at < stale_before))))
        .values(state="running", worker=worker, attempts=JobRecord.attempts + 1,
                heartbeat_at=now, started_at=func.coalesce(JobRecord.started_at, now)))
    if result.rowcount != 1:
        return None
    job = session.get(JobRecord, job_id)
    session.refresh(job)
    return job


def heartbeat(session: Session, job_id: int, worker: str, attempt: int,
              now: datetime) -> Optional[bool]:
    """Refresh the claim. Returns cancel_requested, or None when the claim was lost."""
    result = session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.state == "running",
               JobRecord.worker == worker, JobRecord.attempts == attempt)
        .values(heartbeat_at=now))
    if result.rowcount != 1:
        return None
    flag = session.exec(select(JobRecord.cancel_requested).where(JobRecord.id == job_id)).first()
    return bool(flag)


def finish(session: Session, job_id: int, worker: str, attempt: int, state: str,
           now: datetime, **fields: Any) -> bool:
    """Record the outcome, only while this worker's claim still holds."""
    result = session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.state == "running",
               JobRecord.worker == worker, JobRecord.attempts == attempt)
        .values(state=state, finished_at=now, heartbeat_at=now, **fields))
    return result.rowcount == 1


def record_checkpoint(session: Session, job_id: int, worker: str, attempt: int,
                      location: str) -> bool:
    """Point the job at its newest checkpoint, only while this worker's claim holds."""
    result = session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.state == "running",
               JobRecord.worker == worker, JobRecord.attempts == attempt)
        .values(checkpoint_path=location))
    return result.rowcount == 1


def request_cancel(session: Session, job_id: int) -> bool:
    result = session.execute(
        update(JobRecord).where(JobRecord.id == job_id, JobRecord.state == "running")
        .values(cancel_requested=True))
    return result.rowcount == 1


def set_progress(session: Session, job_id: int, progress: float) -> None:
    session.execute(update(JobRecord).where(JobRecord.id == job_id, JobRecord.state == "running")
                    .values(progress=progress))


def runnable(session: Session, stale_before: datetime, limit: int = 20) -> list[tuple[int, str]]:
    """(id, kind) of queued jobs and of running jobs whose worker stopped beating, oldest first."""
    query = (select(JobRecord.id, JobRecord.kind)
             .where(or_(JobRecord.state == "queued",
                        (JobRecord.state == "running") & (
                            (JobRecord.heartbeat_at == None)  # noqa: E711
                            | (JobRecord.heartbeat_at < stale_before))))
             .order_by(JobRecord.id).limit(limit))
    return [(row[0], row[1]) for row in session.execute(query)]


def stale_running(session: Session, stale_before: datetime, limit: int = 20) -> list[tuple[int, str]]:
    """(id, kind) of running jobs whose worker stopped beating."""
    query = (select(JobRecord.id, JobRecord.kind)
             .where(JobRecord.state == "running",
                    or_(JobRecord.heartbeat_at == None,  # noqa: E711
                        JobRecord.heartbeat_at < stale_before))
             .order_by(JobRecord.id).limit(limit))
    return [(row[0], row[1]) for row in session.execute(query)]


def count_active(session: Session, workspace: str) -> int:
    query = select(func.count()).select_from(JobRecord).where(
        JobRecord.workspace == workspace, JobRecord.state.in_(ACTIVE))
    return int(session.exec(query).one())


def count_active_of(session: Session, owner: str) -> int:
    """Queued or running jobs started by `owner`, in any workspace."""
    query = select(func.count()).select_from(JobRecord).where(
        JobRecord.owner == owner, JobRecord.state.in_(ACTIVE))
    return int(session.exec(query).one())


def started_since(session: Session, owner: str, kinds: Iterable[str],
                  since: datetime, *, workspace: Optional[str] = None) -> list[datetime]:
    """Creation times of the owner's jobs of these kinds since `since`, oldest first; with
    `workspace` (and owner ""), those of every owner in that workspace."""
    who = JobRecord.owner == owner if workspace is None else JobRecord.workspace == workspace
    query = (select(JobRecord.created_at)
             .where(who, JobRecord.kind.in_(list(kinds)), JobRecord.created_at >= since)
             .order_by(JobRecord.created_at))
    return list(session.exec(query))


def datasets_in_use(session: Session, owner: str) -> set[int]:
    """Datasets that the owner's unfinished jobs will still read."""
    rows = session.exec(select(JobRecord.dataset_id).where(
        JobRecord.owner == owner, JobRecord.state.in_(ACTIVE),
        JobRecord.dataset_id.isnot(None))).all()
    return {int(r) for r in rows}


def model_of(session: Session, workspace: str, model_name: str) -> Optional[ModelRecord]:
    """The entry a job names, in the job's workspace (names are unique per workspace)."""
    return session.exec(select(ModelRecord).where(ModelRecord.workspace == workspace,
                                                  ModelRecord.name == model_name)).first()


def unannounced(session: Session, after_id: int, platform: str, limit: int = 20) -> list[JobRecord]:
    """Jobs newer than `after_id` that nobody started from chat (scheduled retrains) and that
    should report to `platform`; the JSON origin is filtered here, the rest in SQL."""
    query = (select(JobRecord).where(JobRecord.id > after_id, JobRecord.kind == "retrain")
             .order_by(JobRecord.id).limit(limit))
    found = list(session.exec(query))
    return [job for job in found
            if (job.origin or {}).get("scheduled") and (job.origin or {}).get("platform") == platform]


def count_by_state(session: Session) -> dict[str, int]:
    query = select(JobRecord.state, func.count()).group_by(JobRecord.state)
    return {row[0]: int(row[1]) for row in session.execute(query)}


def retrain_results(session: Session) -> list[dict[str, Any]]:
    """The results (verdicts) of the retrains that finished."""
    query = select(JobRecord.result).where(JobRecord.kind == "retrain",
                                           JobRecord.state == "succeeded")
    return [dict(r or {}) for r in session.execute(query).scalars()]


def checkpoint_locations(session: Session) -> list[str]:
    """The checkpoints of jobs that may still resume."""
    query = select(JobRecord.checkpoint_path).where(JobRecord.state.in_(ACTIVE),
                                                    JobRecord.checkpoint_path != "")
    return list(session.exec(query))
