"""The chat service on a temporary SQLite store with a deterministic runner: every turn is
logged, feedback and corrections become curated pairs, forget-me and retention delete."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlmodel import select

from engine.errors import InvalidInput, NotFound
from engine.settings import DEFAULT_BASE
from storage.tables import (
    ConversationRecord,
    FeedbackRecord,
    MessageRecord,
    ModelRecord,
)
from tests.helpers.store import ADMIN_A, ALICE, BOB, CAROL, Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(tmp_path / "home")
    s.model_id = s.tuned(ALICE, "helpdesk", "support answers", visibility="public")
    yield s
    s.db.close()


def rows(store: Store, record) -> list:
    with store.db.session() as s:
        return list(s.exec(select(record).order_by(record.id)).all())


def model(store: Store) -> ModelRecord:
    return store.catalog.model_by_id(store.model_id)


def test_a_turn_is_answered_streamed_and_logged(store: Store) -> None:
    with store.db.session() as s:
        record = s.get(ModelRecord, store.model_id)
        record.system_prompt = "You are the helpdesk."
        s.add(record)
    streamed: list[str] = []
    caller = replace(BOB, thread="1700.1")
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    answer = store.chat.answer(caller, "helpdesk", "Where is my order?", history=history,
                               on_token=streamed.append, question_ref="1700.2")
    assert answer.text == "echo: Where is my order?" and "".join(streamed).strip() == answer.text
    assert (answer.model_name, answer.version) == ("helpdesk", 1)
    assert 7 <= answer.latency_ms < 7 + 1000  # the runner's 7 ms plus the retrieval's own time
    target, messages = store.runner.calls[-1]
    assert target.adapter_path == "/adapters/helpdesk/v1"
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "You are the helpdesk."

    (conv,) = rows(store, ConversationRecord)
    assert (conv.platform, conv.workspace, conv.channel, conv.thread) == (
        "slack", "slack:T1", "C1", "1700.1")
    question, reply = rows(store, MessageRecord)
    assert (question.role, question.user, question.content, question.platform_message_id) == (
        "user", BOB.user, "Where is my order?", "1700.2")
    assert (reply.id, reply.role, reply.reply_to_id, reply.latency_ms) == (
        answer.message_id, "assistant", question.id, answer.latency_ms)
    live = store.catalog.live_target(model(store))
    assert (reply.model_id, reply.model_version_id) == (store.model_id, live.version_id)
    assert model(store).usage_count == 1
    assert store.chat.history_for(caller) == [
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "echo: Where is my order?"}]
    assert store.chat.history_for(replace(BOB, thread="other")) == []


def test_plain_messages_go_to_the_channel_deployment(store: Store) -> None:
    first = store.chat.answer(BOB, None, "hello")  # nothing deployed: the store's default base
    assert (first.model_name, first.chosen_by) == (DEFAULT_BASE, "store")
    store.catalog.deploy(ADMIN_A, "helpdesk")
    second = store.chat.answer(BOB, None, "hello")
    assert (second.model_name, second.chosen_by) == ("helpdesk", "channel")
    other = store.chat.answer(CAROL, None, "hello")  # deployments belong to one workspace
    assert (other.model_name, other.chosen_by) == (DEFAULT_BASE, "store")
    assert store.chat.answer(BOB, "helpdesk", "hello").chosen_by == "named"
    with pytest.raises(InvalidInput):
        store.chat.answer(BOB, None, "   ")


def test_feedback_counts_one_vote_per_user_and_follows_changes_of_mind(store: Store) -> None:
    answer = store.chat.answer(BOB, "helpdesk", "question one")
    store.chat.set_answer_ref(answer.message_id, "1700.9")
    store.chat.feedback(BOB, "1700.9", "up")
    store.chat.feedback(BOB, "1700.9", "up")  # a repeated reaction counts once
    store.chat.feedback(ALICE, str(answer.message_id), "up")
    assert (model(store).rating_up, model(store).rating_down) == (2, 0)
    store.chat.feedback(BOB, "1700.9", "down")
    assert (model(store).rating_up, model(store).rating_down) == (1, 1)
    assert len(rows(store, FeedbackRecord)) == 2
    with pytest.raises(NotFound, match="not an answer"):
        store.chat.feedback(BOB, "9999.1", "up")
    with pytest.raises(NotFound):
        store.chat.feedback(CAROL, "1700.9", "up")  # refs are looked up in one's own workspace
    with pytest.raises(InvalidInput, match="'up' or 'down'"):
        store.chat.feedback(BOB, "1700.9", "meh")


def test_corrections_train_only_once_approved_and_likes_only_when_the_owner_says(
        store: Store) -> None:
    liked = store.chat.answer(BOB, "helpdesk", "liked question")
    wrong = store.chat.answer(ALICE, "helpdesk", "wrong question")
    store.chat.feedback(ALICE, str(liked.message_id), "up")
    assert store.chat.correct(ALICE, None, "the right answer") == wrong.message_id
    assert store.chat.curated_pairs(store.model_id) == []  # waiting in the review inbox
    [suggestion] = store.chat.curation.inbox(ADMIN_A, "helpdesk").pending
    store.chat.curation.approve(ADMIN_A, suggestion.id)
    assert store.chat.curated_pairs(store.model_id) == [
        ("wrong question", "the right answer", "correction")]

    store.chat.curation.set_options(ADMIN_A, "helpdesk", thumbs_up=True)
    later = store.chat.answer(BOB, "helpdesk", "new question")
    store.chat.feedback(ALICE, str(later.message_id), "up")
    assert ("new question", "echo: new question", "thumbs-up") in store.chat.curated_pairs(
        store.model_id)


def test_correct_without_an_answer_says_how(store: Store) -> None:
    with pytest.raises(NotFound, match="reply to the model's answer"):
        store.chat.correct(BOB, None, "better")
    store.chat.answer(BOB, "helpdesk", "q")
    with pytest.raises(InvalidInput, match="better answer"):
        store.chat.correct(BOB, None, "  ")
    store.chat.correct(BOB, None, "first try")
    store.chat.correct(BOB, None, "second try")  # a user's correction is replaced, not added
    with store.db.session() as s:
        [kept] = s.exec(select(FeedbackRecord).where(FeedbackRecord.kind == "correction")).all()
    assert kept.correction == "second try"


def test_a_chat_message_over_20000_characters_is_refused_like_a_command(store: Store) -> None:
    """Plain chat messages pass the same guard as commands: nothing reaches the model or
    the log (a 20,000-character message is still answered)."""
    with pytest.raises(InvalidInput, match=r"That message is 20,001 characters long; messages "
                                           r"take at most 20,000\. Shorten it"):
        store.chat.answer(BOB, "helpdesk", "x" * 20_001)
    assert store.runner.calls == [] and rows(store, MessageRecord) == []
    assert store.chat.answer(BOB, "helpdesk", "y" * 20_000).text.startswith("echo: yyy")


def test_forget_me_deletes_the_users_messages_feedback_and_votes(store: Store) -> None:
    mine = store.chat.answer(BOB, "helpdesk", "bob asks")
    theirs = store.chat.answer(ALICE, "helpdesk", "alice asks")
    store.chat.feedback(BOB, str(theirs.message_id), "up")
    store.chat.feedback(ALICE, str(mine.message_id), "up")
    store.chat.correct(BOB, str(theirs.message_id), "bob's better answer")
    assert model(store).rating_up == 2

    # question, answer, vote, correction, and the correction's suggestion in the review inbox
    assert store.chat.forget_me(BOB) == 5
    assert [m.content for m in rows(store, MessageRecord)] == ["alice asks", "echo: alice asks"]
    assert rows(store, FeedbackRecord) == []  # Alice's vote went with Bob's answer
    assert (model(store).rating_up, model(store).rating_down) == (0, 0)
    assert store.chat.curated_pairs(store.model_id) == []
    assert store.chat.curation.inbox(ADMIN_A, "helpdesk").pending == ()
    assert store.chat.history_for(BOB) == [
        {"role": "user", "content": "alice asks"},
        {"role": "assistant", "content": "echo: alice asks"}]  # the channel's remaining turn
    assert store.chat.forget_me(BOB) == 0


def test_retention_deletes_old_logs_and_keeps_the_counts(store: Store) -> None:
    old = store.chat.answer(replace(BOB, thread="old"), "helpdesk", "old question")
    store.chat.feedback(ALICE, str(old.message_id), "up")
    store.clock.advance(days=100)
    store.chat.answer(BOB, "helpdesk", "new question")
    assert store.chat.purge_old() == 2  # default 90 days
    assert [m.content for m in rows(store, MessageRecord)] == ["new question", "echo: new question"]
    assert rows(store, FeedbackRecord) == [] and len(rows(store, ConversationRecord)) == 1
    assert (model(store).usage_count, model(store).rating_up) == (2, 1)
    store.chat.settings = store.settings.with_(log_retention_days=0)
    store.clock.advance(days=1000)
    assert store.chat.purge_old() == 0 and len(rows(store, MessageRecord)) == 2
    assert store.chat.purge_older_than(1) == 2
