"""engine/limits.py: chat, tune and workspace limits, each with a clear 'try again' sentence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from engine.errors import Busy, InvalidInput
from engine.identity import Caller
from engine.jobs.backends import NullBackend
from engine.jobs.service import JobService
from engine.limits import MAX_TEXT_CHARS, RateLimiter, check_length
from storage import limits as limit_rows
from storage.db import Database
from storage.tables import JobRecord

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
ALICE = Caller(platform="slack", workspace="slack:T1", user="slack:T1:UA")
BOB = Caller(platform="slack", workspace="slack:T1", user="slack:T1:UB")
CAROL = Caller(platform="slack", workspace="slack:T2", user="slack:T2:UC")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(settings):
    settings.home.mkdir(parents=True, exist_ok=True)
    database = Database(settings.database_url)
    database.migrate()
    yield database
    database.close()


def test_chat_allows_the_rate_then_says_when_to_try_again(db, settings) -> None:
    clock = Clock()
    limiter = RateLimiter(db, settings.with_(chat_rate_per_minute=3), clock)
    for _ in range(3):
        limiter.check_chat(ALICE)
    with pytest.raises(Busy, match=r"3 messages in the last minute.*try again in 20 seconds"):
        limiter.check_chat(ALICE)
    limiter.check_chat(BOB)  # per user
    clock.now += timedelta(seconds=20)
    limiter.check_chat(ALICE)  # one turn refilled
    with pytest.raises(Busy):
        limiter.check_chat(ALICE)


def test_tune_rate_counts_jobs_in_the_database(db, settings) -> None:
    clock = Clock()
    small = settings.with_(tune_rate_per_hour=2, max_jobs_per_workspace=10)
    service = JobService(db, small, None, None, NullBackend(), clock)
    for minute in (0, 10):
        clock.now = T0 + timedelta(minutes=minute)
        service.limits.check_tune(ALICE)
        service.submit("tune", "bot", owner=ALICE.user, workspace=ALICE.workspace)
    clock.now = T0 + timedelta(minutes=20)
    with pytest.raises(Busy, match=r"started 2 fine-tunes in the last hour.*try again in 40 minutes"):
        service.limits.check_tune(ALICE)
    # Another process (a fresh limiter on the same database) sees the same count.
    with pytest.raises(Busy):
        RateLimiter(db, small, clock).check_tune(ALICE)
    service.limits.check_tune(BOB)
    clock.now = T0 + timedelta(minutes=61)
    service.limits.check_tune(ALICE)


def test_a_workspace_has_a_limit_on_unfinished_jobs(db, settings) -> None:
    clock = Clock()
    service = JobService(db, settings.with_(max_jobs_per_workspace=2), None, None,
                         NullBackend(), clock)
    first = service.submit("tune", "a", owner=ALICE.user, workspace=ALICE.workspace)
    service.submit("tune", "b", owner=BOB.user, workspace=BOB.workspace)
    with pytest.raises(Busy, match=r"already has 2 fine-tunes queued or running.*try again when"):
        service.limits.check_workspace_jobs(ALICE.workspace)
    service.limits.check_workspace_jobs(CAROL.workspace)  # other tenants are not affected
    service.cancel(ALICE, first.id)
    service.limits.check_workspace_jobs(ALICE.workspace)


def test_retrain_now_by_a_user_respects_the_limits(db, settings) -> None:
    service = JobService(db, settings.with_(max_jobs_per_workspace=1), None, None,
                         NullBackend(), Clock())
    service.submit_retrain("bot", owner=ALICE.user, workspace=ALICE.workspace, dataset_id=None)
    with pytest.raises(Busy):
        service.submit_retrain("bot", owner=ALICE.user, workspace=ALICE.workspace,
                               dataset_id=None, caller=ALICE)
    # A scheduled retrain (no caller) is not refused.
    assert service.submit_retrain("bot", owner=ALICE.user, workspace=ALICE.workspace,
                                  dataset_id=None).state == "queued"


def test_chat_is_limited_per_workspace_too_and_a_refusal_takes_nothing(db, settings) -> None:
    clock = Clock()
    limiter = RateLimiter(db, settings.with_(chat_rate_per_minute=2,
                                             workspace_chat_rate_per_minute=3), clock)
    limiter.check_chat(ALICE)
    limiter.check_chat(ALICE)
    limiter.check_chat(BOB)  # the workspace's third
    with pytest.raises(Busy, match=r"This workspace has sent 3 messages in the last minute"):
        limiter.check_chat(BOB)
    limiter.check_chat(CAROL)  # another workspace has its own bucket
    clock.now += timedelta(seconds=20)  # one workspace turn back; Bob's own bucket was not used
    limiter.check_chat(BOB)
    with pytest.raises(Busy, match="You have sent 2 messages"):
        limiter.check_chat(ALICE)


def test_chat_limits_keep_memory_bounded(db, settings) -> None:
    """Nothing in the process; in the database one row per key used lately, dropped once idle."""
    clock = Clock()
    limiter = RateLimiter(db, settings, clock)
    for n in range(300):
        limiter.check_chat(Caller(platform="slack", workspace=f"slack:T{n % 3}",
                                  user=f"slack:T{n % 3}:U{n}"))
    assert db.retrying(limit_rows.count) == 303  # 300 users, 3 workspaces
    assert not [k for k in vars(limiter) if isinstance(getattr(limiter, k), dict)]
    clock.now += timedelta(minutes=2)
    assert limiter.purge() == 303 and db.retrying(limit_rows.count) == 0


def test_a_user_has_a_limit_on_unfinished_jobs_and_a_workspace_on_tunes_per_hour(
        db, settings) -> None:
    clock = Clock()
    service = JobService(db, settings.with_(max_jobs_per_user=1, max_jobs_per_workspace=10,
                                            workspace_tune_rate_per_hour=2), None, None,
                         NullBackend(), clock)
    service.submit("tune", "a", owner=ALICE.user, workspace=ALICE.workspace, limited_for=ALICE)
    with pytest.raises(Busy, match="You already have 1 fine-tunes queued or running"):
        service.submit("tune", "b", owner=ALICE.user, workspace=ALICE.workspace,
                       limited_for=ALICE)
    service.submit("tune", "c", owner=BOB.user, workspace=BOB.workspace, limited_for=BOB)
    with pytest.raises(Busy, match="This workspace has started 2 fine-tunes in the last hour"):
        service.limits.check_tune(Caller(platform="slack", workspace="slack:T1",
                                         user="slack:T1:UNEW"))
    service.limits.check_tune(CAROL)
    with db.session() as s:
        assert len(s.exec(select(JobRecord)).all()) == 2  # the refused one left nothing


def test_the_text_guard_covers_commands_and_chat_messages() -> None:
    check_length(MAX_TEXT_CHARS, "message")
    with pytest.raises(InvalidInput, match=r"That message is 20,001 characters long; messages "
                                           r"take at most 20,000\."):
        check_length(MAX_TEXT_CHARS + 1, "message")
