"""Rate limits: chat turns per user, fine-tunes per user, unfinished jobs per workspace.

Chat is limited in memory (a token bucket per user, per process): it is checked on every
message and must cost nothing; with several `gptstore serve` processes each one allows the
configured rate. Fine-tunes and workspace jobs are counted in the database, so the limits
hold across every process and survive restarts. The clock is injected.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from engine.errors import Busy
from engine.identity import Caller
from engine.settings import Settings
from storage import jobs as store
from storage.db import Database

Clock = Callable[[], datetime]
HOUR = timedelta(hours=1)


@dataclass
class _Bucket:
    tokens: float
    at: datetime


class RateLimiter:
    """Raises Busy, with a sentence saying when to try again, once a limit is reached."""

    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check_chat(self, caller: Caller) -> None:
        """Take one chat turn from the caller's bucket (refills continuously)."""
        rate = self.settings.chat_rate_per_minute
        per_second = rate / 60.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(caller.user) or _Bucket(tokens=float(rate), at=now)
            elapsed = max(0.0, (now - bucket.at).total_seconds())
            bucket.tokens = min(float(rate), bucket.tokens + elapsed * per_second)
            bucket.at = now
            self._buckets[caller.user] = bucket
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / per_second
        raise Busy(f"You have sent {rate} messages in the last minute, the most allowed; "
                   f"try again in {_seconds(wait)}.")

    def check_tune(self, caller: Caller) -> None:
        """At most settings.tune_rate_per_hour fine-tunes started by a user in any hour."""
        limit = self.settings.tune_rate_per_hour
        now = self.clock()
        started = self.db.retrying(
            lambda s: store.started_since(s, caller.user, ("tune", "retrain"), now - HOUR))
        if len(started) < limit:
            return
        oldest = _aware(started[-limit], now)
        wait = (oldest + HOUR - now).total_seconds()
        raise Busy(f"You have started {len(started)} fine-tunes in the last hour, the most "
                   f"allowed; try again in {_seconds(wait)}.")

    def check_workspace_jobs(self, workspace: str) -> None:
        """At most settings.max_jobs_per_workspace queued or running jobs per workspace."""
        limit = self.settings.max_jobs_per_workspace
        active = self.db.retrying(lambda s: store.count_active(s, workspace))
        if active >= limit:
            raise Busy(f"This workspace already has {active} fine-tunes queued or running, the "
                       f"most allowed; try again when one finishes (`/store jobs` shows them).")

    def forget_idle(self) -> int:
        """Drop full buckets (users idle for over a minute) so memory stays bounded."""
        now = self.clock()
        with self._lock:
            idle = [user for user, b in self._buckets.items()
                    if (now - b.at).total_seconds() >= 60.0]
            for user in idle:
                del self._buckets[user]
        return len(idle)


def _aware(value: datetime, like: datetime) -> datetime:
    """SQLite returns naive datetimes; the store writes UTC, so attach the clock's zone."""
    if value.tzinfo is None and like.tzinfo is not None:
        return value.replace(tzinfo=like.tzinfo)
    return value


def _seconds(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"
