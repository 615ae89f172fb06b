"""Migration 0022 on a store that has data (two workspaces, bases, tuned models, versions,
deployments, jobs), on SQLite and PostgreSQL: names become unique per workspace, tuned
models and jobs get the ids their names pointed at, and everything keeps working."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage.db import MIGRATIONS, Database
from storage.tables import JobRecord, ModelRecord
from tests.helpers.store import ALICE, CAROL, open_store

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
A, B = "slack:T1", "discord:G2"  # the workspaces of ALICE and CAROL
BASE_PATH = "/models/tiny"


def config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def insert(connection, table: str, **values) -> int:
    columns = ", ".join(values)
    marks = ", ".join(f":{k}" for k in values)
    return connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
                                   "RETURNING id"), values).scalar_one()


def model(connection, name: str, workspace: str, owner: str, *, base: str | None = None,
          visibility: str = "private") -> int:
    return insert(connection, "models", name=name, description=f"{name} of {workspace}",
                  tags="support", base_name=base, is_base=base is None, owner=owner,
                  workspace=workspace, visibility=visibility, system_prompt="", usage_count=0,
                  rating_up=0, rating_down=0, created_at=T0, updated_at=T0)


def version(connection, model_id: int, path: str, kind: str = "adapter") -> int:
    version_id = insert(connection, "model_versions", model_id=model_id, number=1,
                        status="live", kind=kind, path=path, notes="", created_at=T0)
    connection.execute(text("UPDATE models SET live_version_id = :v WHERE id = :m"),
                       {"v": version_id, "m": model_id})
    return version_id


def job(connection, model_name: str, workspace: str, owner: str) -> int:
    return insert(connection, "jobs", kind="tune", state="succeeded", model_name=model_name,
                  base_name="tiny", owner=owner, workspace=workspace, progress=1.0, error="",
                  checkpoint_path="", worker="", attempts=1, cancel_requested=False,
                  created_at=T0)


def old_store(url: str) -> dict[str, int]:
    """A store at revision 0003 (names unique in the whole store) with data in it."""
    db = Database(url)
    with db.engine.begin() as connection:
        command.upgrade(config(connection), "0003")
        ids = {
            "tiny": model(connection, "tiny", "local", "console:admin", visibility="public"),
            "a-bot": model(connection, "a-bot", A, ALICE.user, base="tiny"),
            "b-bot": model(connection, "b-bot", B, CAROL.user, base="tiny", visibility="public"),
        }
        version(connection, ids["tiny"], BASE_PATH, kind="weights")
        version(connection, ids["a-bot"], "/adapters/a-bot/v1")
        version(connection, ids["b-bot"], "/adapters/b-bot/v1")
        for workspace, channel, name in ((A, "C1", "a-bot"), (A, "C2", "b-bot"), (B, "42", "b-bot")):
            insert(connection, "deployments", workspace=workspace, channel=channel,
                   model_id=ids[name], created_by="admin", created_at=T0)
        ids["job-a"] = job(connection, "a-bot", A, ALICE.user)
        ids["job-b"] = job(connection, "b-bot", B, CAROL.user)
    db.close()
    return ids


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("pg_url")


def test_an_old_store_with_data_upgrades_to_names_per_workspace(url: str, tmp_path: Path) -> None:
    ids = old_store(url)
    store = open_store(tmp_path / "home", url=url)  # migrates to head
    try:
        with store.db.session() as s:
            for name in ("a-bot", "b-bot"):
                assert s.get(ModelRecord, ids[name]).base_id == ids["tiny"]
            assert s.get(JobRecord, ids["job-a"]).model_id == ids["a-bot"]
            assert s.get(JobRecord, ids["job-b"]).model_id == ids["b-bot"]
        # Everything reads as before: targets (base found by id), deployments, search.
        target = store.catalog.live_target(store.catalog.resolve(ALICE, "a-bot"))
        assert (target.base_path, target.adapter_path) == (BASE_PATH, "/adapters/a-bot/v1")
        assert store.catalog.deployed(ALICE).name == "a-bot"
        assert store.catalog.deployed(replace(ALICE, channel="C2")).name == "b-bot"
        assert store.catalog.deployed(CAROL).name == "b-bot"
        assert sorted(c.name for c in store.catalog.search(CAROL, "support")) == ["b-bot", "tiny"]
        # Names are now per workspace: B may have an a-bot of its own, found by search too.
        theirs = store.catalog.create_or_get_tuned(CAROL, "a-bot", "tiny", "B's helpdesk")
        assert theirs.id != ids["a-bot"] and theirs.base_id == ids["tiny"]
        assert [c.name for c in store.catalog.search(CAROL, "helpdesk")] == ["a-bot"]
        assert store.catalog.resolve(ALICE, "a-bot").id == ids["a-bot"]
        with pytest.raises(IntegrityError):  # and unique within one, in the database itself
            with store.db.session() as s:
                s.add(ModelRecord(name="a-bot", workspace=B, owner="x", created_at=T0,
                                  updated_at=T0))
    finally:
        store.db.close()


def test_the_migration_goes_down_again_while_names_are_still_unique(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old_store(url)
    db = Database(url)
    db.migrate()
    with db.engine.begin() as connection:
        command.downgrade(config(connection), "0003")
        with pytest.raises(IntegrityError):  # the global unique name is back
            connection.execute(text("INSERT INTO models (name, description, tags, is_base, "
                                    "owner, workspace, visibility, system_prompt, usage_count, "
                                    "rating_up, rating_down, created_at, updated_at) SELECT name,"
                                    " description, tags, is_base, owner, 'other', visibility, "
                                    "system_prompt, 0, 0, 0, created_at, updated_at FROM models "
                                    "WHERE name = 'a-bot'"))
    db.migrate()  # and up once more
    db.close()
