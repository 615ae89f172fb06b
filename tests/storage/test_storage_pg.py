"""The catalog and the conversation logs on PostgreSQL (full-text search with a tsvector +
GIN index instead of FTS5). Skipped when no server answers at 127.0.0.1:5432."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from engine.errors import NotFound, PermissionDenied
from engine.settings import DEFAULT_BASE
from tests.helpers.store import ADMIN_A, ALICE, BOB, CAROL, Store, open_store


@pytest.fixture
def store(pg_url: str, tmp_path: Path) -> Store:
    s = open_store(tmp_path / "home", url=pg_url)
    yield s
    s.db.close()


def names(cards) -> list[str]:
    return [c.name for c in cards]


def test_migrations_build_the_search_index_and_rerun_cleanly(store: Store) -> None:
    store.db.migrate()  # a second process starting: nothing to do, nothing lost
    with store.db.engine.connect() as c:
        kind = c.execute(text("SELECT data_type FROM information_schema.columns WHERE "
                              "table_name = 'models' AND column_name = 'search_vector' "
                              "AND table_schema = current_schema()")).scalar()
        index = c.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                               "'ix_models_search_vector' AND schemaname = current_schema()")).scalar()
    assert kind == "tsvector" and "gin" in index.lower()
    assert names(store.catalog.search(CAROL, "")) == [DEFAULT_BASE]


def test_search_ranks_filters_and_respects_visibility(store: Store) -> None:
    store.tuned(ALICE, "refund-helper", "answers questions about orders", tags="support",
                visibility="public")
    store.tuned(ALICE, "order-bot", "handles refund requests", tags="orders", visibility="public")
    store.tuned(ALICE, "team-refunds", "refund policy of the team", visibility="workspace")
    store.tuned(ALICE, "secret-refunds", "refund notes")
    hits = store.catalog.search(BOB, "refunds")
    assert names(hits)[0] in ("refund-helper", "team-refunds")  # name matches first
    assert set(names(hits)) == {"refund-helper", "order-bot", "team-refunds"}
    assert hits[0].score > hits[-1].score > 0
    assert set(names(store.catalog.search(CAROL, "refund"))) == {"refund-helper", "order-bot"}
    assert "secret-refunds" in names(store.catalog.search(ALICE, "refund"))
    assert names(store.catalog.search(CAROL, "refund", task="orders")) == ["order-bot"]
    assert set(names(store.catalog.search(BOB, owner="alice"))) == {
        "refund-helper", "order-bot", "team-refunds"}
    assert set(names(store.catalog.search(BOB, base=DEFAULT_BASE))) == {
        "refund-helper", "order-bot", "team-refunds"}
    with pytest.raises(NotFound, match="Did you mean 'order-bot'"):
        store.catalog.resolve(CAROL, "ordr-bot")
    with pytest.raises(NotFound) as err:
        store.catalog.resolve(CAROL, "team-refund")
    assert "team-refunds" not in str(err.value)


def test_publish_rollback_and_deploy(store: Store) -> None:
    model_id = store.tuned(ALICE, "helpdesk", "x")
    store.catalog.add_version(model_id, path="/v2", live=True)
    with pytest.raises(PermissionDenied):
        store.catalog.publish(ALICE, "helpdesk", "workspace")
    store.catalog.publish(ADMIN_A, "helpdesk", "workspace")
    assert store.catalog.rollback(ALICE, "helpdesk", 1).live_version == 1
    assert [v.status for v in store.catalog.versions(BOB, "helpdesk")] == ["live", "retired"]
    store.catalog.deploy(ADMIN_A, "helpdesk")
    assert store.catalog.deployed(BOB).name == "helpdesk" and store.catalog.deployed(CAROL) is None


def test_chat_logs_feedback_curation_forget_me_and_retention(store: Store) -> None:
    model_id = store.tuned(ALICE, "helpdesk", "x", visibility="public")
    store.catalog.deploy(ADMIN_A, "helpdesk")
    liked = store.chat.answer(BOB, None, "liked question", question_ref="1.1")
    store.chat.set_answer_ref(liked.message_id, "1.2")
    disliked = store.chat.answer(ALICE, None, "disliked question")
    store.chat.feedback(ALICE, "1.2", "up")
    store.chat.feedback(BOB, str(disliked.message_id), "up")
    store.chat.feedback(ALICE, str(disliked.message_id), "down")
    store.chat.correct(ALICE, None, "corrected")
    record = store.catalog.model_by_id(model_id)
    assert (record.usage_count, record.rating_up, record.rating_down) == (2, 2, 1)
    assert store.chat.curated_pairs(model_id) == []  # nothing approved yet
    waiting = store.chat.curation.inbox(ADMIN_A, "helpdesk").pending
    assert [(i.origin, i.answer) for i in waiting] == [("thumbs-down", ""),
                                                      ("correction", "corrected")]
    store.chat.curation.approve(ADMIN_A, waiting[1].id)
    assert store.chat.curated_pairs(model_id) == [
        ("disliked question", "corrected", "correction")]

    # her question, answer, up, down, correction, and her two suggestions
    assert store.chat.forget_me(ALICE) == 7
    record = store.catalog.model_by_id(model_id)
    assert (record.rating_up, record.rating_down) == (0, 0)  # Bob's vote was on her answer
    assert store.chat.curated_pairs(model_id) == []
    assert [m["content"] for m in store.chat.history_for(BOB)] == [
        "liked question", "echo: liked question"]

    store.clock.advance(days=91)
    assert store.chat.purge_old() == 2 and store.chat.history_for(BOB) == []
