"""The knowledge store on SQLite and PostgreSQL alike: entries per version, documents for
every version, re-indexing, gaps folded by rephrasing, and several processes in step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.knowledge.service import Knowledge
from storage import catalog as catalog_rows
from storage.db import Database
from storage.tables import ModelRecord
from tests.helpers.knowledge import sample_rows
from tests.helpers.store import FakeClock


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    url = (request.getfixturevalue("pg_url") if request.param == "postgresql"
           else f"sqlite:///{tmp_path / 'store.db'}")
    database = Database(url)
    database.migrate()
    yield database
    database.close()


def new_model(db: Database, name: str = "acme") -> int:
    with db.session() as s:
        return int(catalog_rows.insert_model(s, ModelRecord(
            name=name, owner="slack:T1:U1", workspace="slack:T1")).id)


def test_each_version_answers_from_its_own_file_and_every_document(db: Database,
                                                                    embedder: Any) -> None:
    knowledge = Knowledge(db, FakeClock(), embedder=lambda: embedder)
    model = new_model(db)
    rows = sample_rows()
    assert knowledge.index_examples(model, 1, "faq.csv", rows[:10]) == 10
    assert knowledge.index_examples(model, 2, "faq.csv", rows[10:20]) == 10
    assert knowledge.add_document(model, "about.md", "# About\n\nAcme is in Lisbon.\n") == 1

    v1 = knowledge.search(model, 1, "I forgot my login password. What now?", k=1)[0]
    assert v1.ref == "faq.csv, row 3" and v1.origin == "file"
    v2 = [p.ref for p in knowledge.search(model, 2, "I forgot my password", k=20)]
    assert "faq.csv, row 3" not in v2 and "about.md, passage 1" in v2 and len(v2) == 11
    assert knowledge.search(model, None, "Where is Acme?", k=5)[0].ref == "about.md, passage 1"

    # tuning version 1 again on another file's rows replaces its entries, nothing else
    assert knowledge.index_examples(model, 1, "faq.csv", rows[:2]) == 2
    assert knowledge.entry_count(model, 1) == 3 and knowledge.entry_count(model, 2) == 11
    # a retrain's version 3 indexes nothing of its own: it answers from version 2's file
    assert knowledge.entry_count(model, 3) == 11
    assert knowledge.search(model, 3, "How do I cancel my plan?", k=1)[0].ref == "faq.csv, row 17"


def test_a_second_process_sees_an_answered_gap_at_once(db: Database, embedder: Any) -> None:
    clock = FakeClock()
    serving = Knowledge(db, clock, embedder=lambda: embedder)
    admin = Knowledge(db, clock, embedder=lambda: embedder)  # another serve process
    model = new_model(db)
    serving.index_examples(model, None, "faq.csv", sample_rows())
    question = "Can I visit your office in Berlin?"
    assert serving.score(model, None, question) < serving.threshold(model)  # cached now
    gap = serving.record_gap(model, "slack:T1", question)
    clock.advance(hours=1)
    rephrased = "Is it possible to visit the Berlin office?"
    assert serving.record_gap(model, "slack:T1", rephrased) == gap
    assert serving.record_gap(model, "slack:T2", question) != gap  # another workspace's own
    [open_gap] = admin.open_gaps(model, "slack:T1")
    assert (open_gap.count, open_gap.last_asked > open_gap.first_asked) == (2, True)

    admin.answer_gap(gap, "Yes: Alexanderplatz 1, weekdays 9-17.", "slack:T1:UADMIN")
    best = serving.search(model, None, "Could I drop by the Berlin office?", k=1)[0]
    assert best.ref == f"gap {gap}" and best.score >= serving.threshold(model)
    assert admin.open_gaps(model, "slack:T1") == []


def test_the_threshold_and_handoff_are_stored_per_model(db: Database) -> None:
    knowledge = Knowledge(db, FakeClock())  # no embedder: keyword ranking
    first, second = new_model(db, "first"), new_model(db, "second")
    assert knowledge.method == "keyword"
    assert knowledge.threshold_by(first) == "default"
    knowledge.set_threshold(first, 0.42, chosen_by="tuning")
    knowledge.set_handoff(first, "ask @support-team in #help")
    assert (knowledge.threshold(first), knowledge.threshold_by(first)) == (0.42, "tuning")
    assert knowledge.handoff(first) == "ask @support-team in #help"
    assert knowledge.threshold(second) != 0.42 and knowledge.handoff(second) == ""
