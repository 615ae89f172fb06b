"""Processed platform event ids, so a retried or doubly delivered event is acted on once,
even when several `gptstore serve` processes share the database."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from storage.tables import ProcessedEventRecord

NOTICE_PREFIX = "notice:"  # keys of things told once for good: never purged


def first_time(session: Session, key: str, now: Optional[datetime] = None) -> bool:
    """Record `key` ("slack:Ev123"); True only for the first caller, in any process."""
    at = now or datetime.now(timezone.utc)
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(ProcessedEventRecord).values(key=key[:191], created_at=at)
    statement = statement.on_conflict_do_nothing(index_elements=["key"])
    # RETURNING says whether this call inserted the row (rowcount is not reliable here).
    return session.execute(statement.returning(ProcessedEventRecord.key)).first() is not None


def seen(session: Session, key: str) -> bool:
    """True when `key` was recorded already (by first_time)."""
    return session.get(ProcessedEventRecord, key[:191]) is not None


def purge_before(session: Session, cutoff: datetime) -> int:
    """Forget keys recorded before `cutoff` (platforms stop retrying after minutes); notice
    keys stay, so what is told once is not told again."""
    result = session.execute(
        delete(ProcessedEventRecord).where(ProcessedEventRecord.created_at < cutoff,
                                           ~ProcessedEventRecord.key.startswith(NOTICE_PREFIX)))
    return int(result.rowcount or 0)
