"""Migration 0020 (gap asks): a gap recorded before it keeps its words and count; a later ask
joins it and forget-me takes only that ask out again; retention still removes it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.knowledge.service import Knowledge
from storage.db import Database
from tests.helpers.knowledge import session_embedder
from tests.storage.test_migration_0021 import at_revision, insert_base_model

OLD = "What is the capital of Australia?"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_gap_from_before_keeps_its_count_and_forget_me_takes_only_new_asks(
        backend: str, tmp_path: Path, request, tmp_path_factory) -> None:
    embedder = session_embedder(tmp_path_factory)
    url = (f"sqlite:///{tmp_path / 'store.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    db = Database(url)
    at_revision(db, "0019")  # the revision before 0020
    asked = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
    with db.engine.begin() as c:
        insert_base_model(c, "faq", "slack:T1", asked)
        c.execute(text("INSERT INTO knowledge_gaps (model_id, workspace, question, count, "
                       "first_asked, last_asked, embedding, state, answer, entry_id, "
                       "answered_by, answered_at) VALUES (1, 'slack:T1', :q, 3, :t, :t, :e, "
                       "'open', '', NULL, '', NULL)"),
                  {"q": OLD, "t": asked, "e": embedder.embed([OLD])[0].tobytes()})
    db.migrate()
    now = [asked + timedelta(days=1)]
    knowledge = Knowledge(db, lambda: now[0], embedder=lambda: embedder)
    gap_id = knowledge.record_gap(1, "slack:T1", "Which city is the capital of Australia?",
                                  "slack:T1:U1")
    [gap] = knowledge.open_gaps(1, "slack:T1")
    assert (gap.id, gap.question, gap.count) == (gap_id, OLD, 4)

    assert knowledge.forget_asker("slack:T1:U1") == 1
    [gap] = knowledge.open_gaps(1, "slack:T1")
    assert (gap.question, gap.count) == (OLD, 3)  # the earlier asks are nobody's to forget

    assert knowledge.purge_gaps_before(asked + timedelta(days=2)) == 1
    assert knowledge.open_gaps(1, "slack:T1") == []
    db.engine.dispose()
