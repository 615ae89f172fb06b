"""storage/events.py: a platform event is acted on once, across processes, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from storage import events
from storage.db import Database

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, settings):
    if request.param == "sqlite":
        settings.home.mkdir(parents=True, exist_ok=True)
        url = settings.database_url
    else:
        url = request.getfixturevalue("pg_url")
    database = Database(url)
    database.migrate()
    yield database
    database.close()


def test_an_event_is_new_only_the_first_time(db) -> None:
    assert db.retrying(lambda s: events.first_time(s, "slack:Ev1", T0)) is True
    assert db.retrying(lambda s: events.first_time(s, "slack:Ev1", T0)) is False
    assert db.retrying(lambda s: events.first_time(s, "discord:Ev1", T0)) is True


def test_concurrent_deliveries_of_one_event_are_handled_once(db) -> None:
    # Slack retries and the app_mention/message pair arrive at the same time in two processes.
    def deliver(_: int) -> bool:
        second = Database(db.url)
        try:
            return second.retrying(lambda s: events.first_time(s, "slack:EvRace", T0))
        finally:
            second.close()

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(deliver, range(4)))
    assert sorted(outcomes) == [False, False, False, True]


def test_old_keys_are_purged(db) -> None:
    db.retrying(lambda s: events.first_time(s, "slack:Old", T0 - timedelta(days=2)))
    db.retrying(lambda s: events.first_time(s, "slack:New", T0))
    assert db.retrying(lambda s: events.purge_before(s, T0 - timedelta(days=1))) == 1
    assert db.retrying(lambda s: events.first_time(s, "slack:Old", T0)) is True
    assert db.retrying(lambda s: events.first_time(s, "slack:New", T0)) is False
