"""Rate limits that hold across processes: one row per key in `rate_limits`.

Chat rates use the generic cell rate algorithm (GCRA, a token bucket kept as one number):
a key's row holds its "theoretical arrival time" `tat`; a turn is allowed when
max(tat, now) + interval - now <= burst, and then tat moves on by one interval. The check
and the move are one conditional UPDATE, so two processes can never both take the last
turn. Job limits count jobs while holding the key's row locked (an UPDATE of it), so the
count and the insert of the new job happen as one step for every process.

Rows of idle keys carry no information (a tat in the past is a full bucket): `purge` drops
them, so the table stays as small as the set of keys used in the last minute or so.
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import case, delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from storage.tables import RateLimitRecord

KEY_LENGTH = 191


def _ensure(session: Session, key: str, tat: float) -> None:
    """The key's row, created with `tat` if it is missing (never overwritten)."""
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(insert(RateLimitRecord).values(key=key, tat=tat)
                        .on_conflict_do_nothing(index_elements=["key"]))
        return
    try:  # other databases: a savepoint around a plain insert
        with session.begin_nested():
            session.add(RateLimitRecord(key=key, tat=tat))
    except IntegrityError:
        pass


def take(session: Session, key: str, now: float, interval: float, burst: float) -> float:
    """Take one turn of `key` (a bucket of burst/interval turns refilling one per
    `interval` seconds). Returns 0.0 when taken, else the seconds until a turn is free."""
    key = key[:KEY_LENGTH]
    _ensure(session, key, now)
    start = case((RateLimitRecord.tat > now, RateLimitRecord.tat), else_=now)
    result = session.execute(
        update(RateLimitRecord)
        .where(RateLimitRecord.key == key, start + interval - now <= burst + 1e-9)
        .values(tat=start + interval))
    if result.rowcount == 1:
        return 0.0
    tat = session.exec(select(RateLimitRecord.tat).where(RateLimitRecord.key == key)).one()
    return max(tat, now) + interval - now - burst


def lock(session: Session, keys: Iterable[str]) -> None:
    """Hold the rows of `keys` until the session's transaction ends: another process that
    locks one of them waits until then (PostgreSQL row locks; SQLite's one writer). Keys
    are locked in sorted order, so two callers never wait on each other in a circle."""
    for key in sorted({k[:KEY_LENGTH] for k in keys}):
        _ensure(session, key, 0.0)
        session.execute(update(RateLimitRecord).where(RateLimitRecord.key == key)
                        .values(tat=RateLimitRecord.tat))


def purge(session: Session, now: float) -> int:
    """Drop rows that hold nothing: buckets refilled (tat in the past) and unlocked locks."""
    result = session.execute(delete(RateLimitRecord).where(RateLimitRecord.tat < now))
    return int(result.rowcount or 0)


def count(session: Session) -> int:
    """How many keys have a row (memory held by the limits)."""
    return len(session.exec(select(RateLimitRecord.key)).all())
