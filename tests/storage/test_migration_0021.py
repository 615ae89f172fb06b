"""Upgrading a store from the revision before the artifact store: nothing is lost, queued jobs
get their outbox row, and versions recorded as local folders still answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from engine.app import Engine
from engine.identity import Caller
from engine.jobs.backends import NullBackend
from storage.db import MIGRATIONS, Database


def at_revision(db: Database, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def insert_base_model(connection, name: str, workspace: str, at) -> None:
    """Model 1, a base with no versions, written the way the schema stood at 0018-0020."""
    connection.execute(text(
        "INSERT INTO models (id, name, description, tags, base_name, is_base, owner, workspace, "
        "visibility, system_prompt, usage_count, rating_up, rating_down, live_version_id, "
        "created_at, updated_at) VALUES (1, :name, '', '', NULL, true, 'a', :workspace, "
        "'public', '', 0, 0, 0, NULL, :t, :t)"), {"name": name, "workspace": workspace, "t": at})


def fill_old_store(db: Database, adapter: Path) -> None:
    with db.engine.begin() as c:
        now = "2026-11-30 10:00:00"
        c.execute(text("INSERT INTO models (id, name, description, tags, base_name, is_base, owner,"
                       " workspace, visibility, system_prompt, usage_count, rating_up, "
                       "rating_down, live_version_id, created_at, updated_at) VALUES (1, 'tiny', "
                       "'', '', NULL, true, 'a', 'local', 'public', '', 0, 0, 0, 1, :t, :t), "
                       "(2, 'doors', '', '', 'tiny', false, 'a', 'local', 'public', '', 0, 0, 0, "
                       "2, :t, :t)"), {"t": now})
        c.execute(text("INSERT INTO model_versions (id, model_id, number, status, kind, path, "
                       "hyperparams, metrics_before, metrics_after, notes, created_at) VALUES "
                       "(1, 1, 1, 'live', 'weights', :base, '{}', '{}', '{}', '', :t), "
                       "(2, 2, 1, 'live', 'adapter', :adapter, '{}', '{}', '{}', '', :t)"),
                  {"t": now, "base": str(adapter.parent / "base"), "adapter": str(adapter)})
        c.execute(text("INSERT INTO jobs (id, kind, state, model_name, base_name, owner, workspace,"
                       " params, origin, progress, result, error, checkpoint_path, worker, "
                       "attempts, cancel_requested, created_at) VALUES (7, 'tune', 'queued', "
                       "'doors', 'tiny', 'a', 'local', '{}', '{}', 0, '{}', '', '', '', 0, false, "
                       ":t), (8, 'tune', 'succeeded', 'doors', 'tiny', 'a', 'local', '{}', '{}', "
                       "1, '{}', '', '', '', 1, false, :t)"), {"t": now})


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_older_store_upgrades_with_its_data(backend: str, tmp_path: Path, request,
                                               settings) -> None:
    url = (f"sqlite:///{tmp_path / 'store.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    db = Database(url)
    at_revision(db, "0003")
    adapter = tmp_path / "adapters" / "doors" / "v1"
    adapter.mkdir(parents=True)
    fill_old_store(db, adapter)
    db.migrate()  # to the head, as Engine.open does
    with db.engine.connect() as c:
        owed = c.execute(text("SELECT job_id, kind FROM job_outbox")).all()
    assert [tuple(row) for row in owed] == [(7, "tune")]  # only the queued job
    engine = Engine.open(settings.with_(database_url=url), job_backend=NullBackend())
    try:
        target = engine.catalog.live_target(engine.catalog.resolve(Caller.console("a"), "doors"))
        assert target.adapter_path == str(adapter)  # an old path is still a location
        assert engine.hub.local(target.adapter_path) == adapter
        assert engine.jobs.view(7).state == "queued"
    finally:
        engine.close()
        db.close()
