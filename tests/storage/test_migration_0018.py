"""Migration 0018 (installations): a store at the previous head upgrades, keeps its data, and
then keeps one install per workspace (a reinstall replaces the token; uninstall removes it)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from engine.installations import Installation, Installations
from storage.db import Database
from tests.storage.test_migration_0021 import at_revision


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_installations_after_upgrading_a_store(backend: str, tmp_path: Path, request) -> None:
    url = (f"sqlite:///{tmp_path / 'store.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    db = Database(url)
    at_revision(db, "0017")  # the revision before 0018
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO processed_events (key, created_at) VALUES ('slack:Ev1', :t)"),
                  {"t": "2026-12-01 10:00:00"})
        before = set(inspect(c).get_table_names())
    assert "installations" not in before
    at_revision(db, "0018")  # this migration alone: later ones add tables of their own
    with db.engine.connect() as c:
        assert set(inspect(c).get_table_names()) == before | {"installations"}
        assert c.execute(text("SELECT key FROM processed_events")).scalars().all() == ["slack:Ev1"]
    clock = lambda: datetime(2026, 12, 2, tzinfo=timezone.utc)  # noqa: E731
    installs = Installations(db, clock)
    installs.save(Installation("slack", "TA", "xoxb-old", bot_user_id="UBOTA", installer="U1"))
    installs.save(Installation("slack", "TA", "xoxb-new", bot_user_id="UBOTA", installer="U2"))
    installs.save(Installation("slack", "TB", "xoxb-b", bot_user_id="UBOTB"))
    assert installs.count("slack") == 2
    found = installs.find("slack", team_id="TA")
    assert found is not None and found.bot_token == "xoxb-new" and found.installer == "U2"
    assert installs.find("discord", team_id="TA") is None
    assert installs.remove("slack", team_id="TA") and not installs.remove("slack", team_id="TA")
    assert installs.find("slack", team_id="TA") is None
    assert installs.find("slack", team_id="TB") is not None
    db.engine.dispose()
