"""Durable job notifications, the store's half: a chat adapter records where a job's progress
and result should go (a watch), and whichever serve process is alive holds it through a lease
and reports, so a restart loses no notification and two processes never both report one.

    watch_id = engine.watches.watch(job_id, "slack", "slack:C1:123.4", place)
    for w in engine.watches.claim("slack", owner):      # renew, and take orphaned ones
        ... engine.watches.begin_finish(w.id, owner) ... post ... engine.watches.delivered(...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy.exc import IntegrityError

from storage import watches as store
from storage.db import Database

Clock = Callable[[], datetime]
LEASE_S = 10.0  # a watch whose serve process stopped renewing is taken after this


@dataclass(frozen=True)
class WatchView:
    id: int
    job_id: int
    platform: str
    place: dict[str, Any] = field(default_factory=dict)  # the platform's own: channel, ts...
    state: str = "following"  # following|finishing|delivered
    last_text: str = ""  # the progress text shown last
    updated_at: datetime | None = None


class Watches:
    def __init__(self, db: Database, clock: Clock, *, lease_s: float = LEASE_S) -> None:
        self.db, self.clock, self.lease_s = db, clock, lease_s

    def watch(self, job_id: int, platform: str, key: str, place: dict[str, Any]) -> int:
        """Record (once per key) that `place` waits for the job."""
        now = self.clock()
        try:
            record = self.db.retrying(lambda s: store.add(s, key, job_id, platform, place, now))
        except IntegrityError:  # the same key recorded a moment ago by another process
            record = self.db.retrying(lambda s: store.add(s, key, job_id, platform, place, now))
        return int(record.id)

    def claim(self, platform: str, owner: str) -> list[WatchView]:
        now = self.clock()
        until = now + timedelta(seconds=self.lease_s)
        return [_view(r) for r in self.db.retrying(
            lambda s: store.claim(s, platform, owner, now, until))]

    def shown(self, watch_id: int, owner: str, text: str) -> bool:
        now = self.clock()
        return bool(self.db.retrying(lambda s: store.shown(s, watch_id, owner, text, now)))

    def begin_finish(self, watch_id: int, owner: str) -> bool:
        """following -> finishing: this owner is about to post the end (False: not ours)."""
        now = self.clock()
        return bool(self.db.retrying(
            lambda s: store.move(s, watch_id, owner, "following", "finishing", now)))

    def delivered(self, watch_id: int, owner: str) -> bool:
        now = self.clock()
        return bool(self.db.retrying(
            lambda s: store.move(s, watch_id, owner, "finishing", "delivered", now)))

    def release(self, owner: str) -> None:
        """A serve process stopping hands its watches over at once."""
        self.db.retrying(lambda s: store.release(s, owner))

    def of_job(self, job_id: int) -> list[WatchView]:
        return [_view(r) for r in self.db.retrying(lambda s: store.for_job(s, job_id))]


def _view(r: Any) -> WatchView:
    return WatchView(id=r.id, job_id=r.job_id, platform=r.platform, place=dict(r.place or {}),
                     state=r.state, last_text=r.last_text, updated_at=r.updated_at)
