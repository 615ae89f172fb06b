"""Upgrading a store to the learning loop's tables (0017): older versions keep working and
show no data view (it was never recorded), new ones record theirs; and back down again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from storage import curation
from storage.db import MIGRATIONS, Database
from tests.storage.test_migration_0021 import at_revision, fill_old_store

TABLES = {"curated_examples", "version_data", "curation_settings"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_learning_loop_tables_upgrade_and_downgrade(backend: str, tmp_path: Path,
                                                       request) -> None:
    url = (f"sqlite:///{tmp_path / 'store.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    db = Database(url)
    at_revision(db, "0003")
    fill_old_store(db, tmp_path / "adapters" / "doors" / "v1")
    db.migrate()
    assert TABLES <= set(inspect(db.engine).get_table_names())
    with db.session() as s:
        assert curation.version_data(s, [2]) == {}  # recorded before 0017: no data view
        curation.record_version_data(s, 2, dataset_id=None, file_examples=12, curated_ids=[3, 1])
    with db.session() as s:
        assert curation.version_data(s, [2])[2].curated_ids == [1, 3]
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0021")
    assert not TABLES & set(inspect(db.engine).get_table_names())
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM model_versions")).scalar() == 2
    db.close()
