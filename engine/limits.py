"""Rate limits, per user and per workspace, that hold across every process sharing the store.

- Chat turns: a token bucket per user (GPTSTORE_CHAT_RATE a minute) and per workspace
  (GPTSTORE_WORKSPACE_CHAT_RATE), each one row in the database taken by one conditional
  UPDATE (storage/limits.py), both in one transaction: a turn refused by either takes
  nothing from the other.
- Fine-tunes started per hour, per user (GPTSTORE_TUNE_RATE) and per workspace
  (GPTSTORE_WORKSPACE_TUNE_RATE), and unfinished jobs per workspace
  (GPTSTORE_MAX_JOBS_PER_WORKSPACE) and per user (GPTSTORE_MAX_JOBS_PER_USER): counted in the
  jobs table. `admit` counts them and the caller inserts the new job in the same transaction
  while the workspace's and the user's limit rows are locked, so a burst from several
  processes cannot pass a limit; `check_*` are the same counts without the lock, to refuse
  early (before a file is parsed).

Memory is bounded: nothing is kept in the process, and the database holds one row per key
used in the last minute or so (`purge`, run by Engine.housekeeping). The clock is injected.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Callable

from sqlmodel import Session

from engine.errors import Busy, InvalidInput
from engine.identity import Caller
from engine.settings import Settings
from storage import jobs as store
from storage import limits as rows
from storage.db import Database

Clock = Callable[[], datetime]
MAX_TEXT_CHARS = 20_000  # a command's or a chat message's text; longer is an attachment's job
HOUR = timedelta(hours=1)
MINUTE_S = 60.0
TUNE_KINDS = ("tune", "retrain")  # what counts as a fine-tune a user started


class RateLimiter:
    """Raises Busy, with a sentence saying when to try again, once a limit is reached."""

    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    # -- chat ---------------------------------------------------------------------------

    def check_chat(self, caller: Caller) -> None:
        """Take one chat turn from the caller's bucket and their workspace's (both refill
        continuously); Busy, taking neither, when one is empty."""
        now = self.clock().timestamp()
        buckets = ((f"chat:user:{caller.user}", self.settings.chat_rate_per_minute,
                    "You have sent {rate} messages in the last minute, the most allowed"),
                   (f"chat:workspace:{caller.workspace}",
                    self.settings.workspace_chat_rate_per_minute,
                    "This workspace has sent {rate} messages in the last minute, the most "
                    "allowed"))

        def work(session: Session) -> None:
            for key, rate, said in buckets:
                wait = rows.take(session, key, now, MINUTE_S / rate, MINUTE_S)
                if wait > 0:
                    raise Busy(f"{said.format(rate=rate)}; try again in {_seconds(wait)}.")

        self.db.retrying(work)

    # -- jobs ---------------------------------------------------------------------------

    def check_tune(self, caller: Caller) -> None:
        """At most settings.tune_rate_per_hour fine-tunes started by a user in any hour, and
        settings.workspace_tune_rate_per_hour in the caller's workspace."""
        self.db.retrying(lambda s: self._tune_rate(s, caller.user, caller.workspace))

    def check_workspace_jobs(self, workspace: str) -> None:
        """At most settings.max_jobs_per_workspace queued or running jobs per workspace."""
        self.db.retrying(lambda s: self._workspace_jobs(s, workspace))

    def check_user_jobs(self, caller: Caller) -> None:
        """At most settings.max_jobs_per_user queued or running jobs per user."""
        self.db.retrying(lambda s: self._user_jobs(s, caller.user))

    def admit(self, session: Session, caller: Caller, workspace: str) -> None:
        """Every job limit for a job `caller` starts in `workspace`, atomically: call it in
        the transaction that inserts the job. Locks the workspace's and the user's limit rows
        (others wait) and counts; Busy rolls the transaction back."""
        rows.lock(session, (f"jobs:workspace:{workspace}", f"jobs:user:{caller.user}"))
        self._tune_rate(session, caller.user, workspace)
        self._workspace_jobs(session, workspace)
        self._user_jobs(session, caller.user)

    def _tune_rate(self, session: Session, user: str, workspace: str) -> None:
        now = self.clock()
        since = now - HOUR
        for limit, started, said in (
                (self.settings.tune_rate_per_hour,
                 store.started_since(session, user, TUNE_KINDS, since),
                 "You have started {n} fine-tunes in the last hour, the most allowed"),
                (self.settings.workspace_tune_rate_per_hour,
                 store.started_since(session, "", TUNE_KINDS, since, workspace=workspace),
                 "This workspace has started {n} fine-tunes in the last hour, the most allowed")):
            if len(started) >= limit:
                oldest = _aware(started[-limit], now)
                wait = (oldest + HOUR - now).total_seconds()
                raise Busy(f"{said.format(n=len(started))}; try again in {_seconds(wait)}.")

    def _workspace_jobs(self, session: Session, workspace: str) -> None:
        limit = self.settings.max_jobs_per_workspace
        active = store.count_active(session, workspace)
        if active >= limit:
            raise Busy(f"This workspace already has {active} fine-tunes queued or running, the "
                       f"most allowed; try again when one finishes (`/store jobs` shows them).")

    def _user_jobs(self, session: Session, user: str) -> None:
        limit = self.settings.max_jobs_per_user
        active = store.count_active_of(session, user)
        if active >= limit:
            raise Busy(f"You already have {active} fine-tunes queued or running, the most "
                       f"allowed; try again when one finishes (`/store jobs` shows them).")

    # -- housekeeping -------------------------------------------------------------------

    def purge(self) -> int:
        """Drop the rows of idle keys (full buckets, free locks); returns how many went."""
        now = self.clock().timestamp()
        return int(self.db.retrying(lambda s: rows.purge(s, now)))


def check_length(size: int, what: str) -> None:
    """Refuse text of `size` characters over MAX_TEXT_CHARS (commands and chat messages
    alike: the command core and ChatService.answer both call this) in one sentence."""
    if size > MAX_TEXT_CHARS:
        raise InvalidInput(f"That {what} is {size:,} characters long; {what}s take at most "
                           f"{MAX_TEXT_CHARS:,}. Shorten it, or put long content in an "
                           "attached file.")


def _aware(value: datetime, like: datetime) -> datetime:
    """SQLite returns naive datetimes; the store writes UTC, so attach the clock's zone."""
    if value.tzinfo is None and like.tzinfo is not None:
        return value.replace(tzinfo=like.tzinfo)
    return value


def _seconds(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds - 1e-6))
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"
