"""Migration 0019 (entry vectors that weigh in the answer): a store's knowledge entries keep
their text, lose the vectors ranked the older way, and get the new ones the first time their
model is searched, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from engine.knowledge.ranking import entry_vector
from engine.knowledge.service import Knowledge
from storage.db import Database
from tests.helpers.knowledge import session_embedder
from tests.storage.test_migration_0021 import at_revision, insert_base_model

QUESTION, ANSWER = "How do I delete my account?", "Go to Settings, then Account, then Delete."


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_entry_vectors_are_recomputed_after_upgrading(backend: str, tmp_path: Path, request,
                                                      tmp_path_factory) -> None:
    embedder = session_embedder(tmp_path_factory)
    url = (f"sqlite:///{tmp_path / 'store.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    db = Database(url)
    at_revision(db, "0018")  # the revision before 0019
    old = embedder.embed([f"{QUESTION}\n{ANSWER}"])[0].astype(np.float32).tobytes()
    with db.engine.begin() as c:
        now = "2026-12-01 10:00:00"
        insert_base_model(c, "faq", "local", now)
        c.execute(text("INSERT INTO knowledge_entries (model_id, version, origin, source, "
                       "position, ref, question, text, embedding, created_at) VALUES (1, NULL, "
                       "'file', 'faq.csv', 2, 'faq.csv, row 2', :q, :a, :e, :t)"),
                  {"q": QUESTION, "a": ANSWER, "e": old, "t": now})
        c.execute(text("INSERT INTO knowledge_settings (model_id, threshold, threshold_by, "
                       "handoff, revision, updated_at) VALUES (1, NULL, 'default', '', 1, :t)"),
                  {"t": now})
    db.migrate()
    with db.engine.connect() as c:
        rows = c.execute(text("SELECT question, text, embedding FROM knowledge_entries")).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [(QUESTION, ANSWER, None)]

    knowledge = Knowledge(db, lambda: datetime(2026, 12, 3, tzinfo=timezone.utc),
                          embedder=lambda: embedder)
    found = knowledge.search(1, None, "How can I close my account for good?", k=1)
    assert [p.ref for p in found] == ["faq.csv, row 2"]
    with db.engine.connect() as c:
        stored = c.execute(text("SELECT embedding FROM knowledge_entries")).scalar_one()
    expected = entry_vector(embedder.embed([f"{QUESTION}\n{ANSWER}"]), embedder.embed([ANSWER]))
    assert np.allclose(np.frombuffer(stored, np.float32), expected[0], atol=1e-5)
    assert stored != old
    db.engine.dispose()
