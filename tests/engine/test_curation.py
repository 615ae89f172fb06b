"""The review inbox: corrections and 👎 become suggestions, the owner workspace's admins
decide, only approved pairs train, other workspaces stay out unless the owner opts in, and
suggestions are rate limited per user. A deterministic echo runner, no training."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.dispatch import Dispatcher
from bot.core.spec import Context
from engine.curation import Curation
from engine.errors import Busy, InvalidInput, NotFound, PermissionDenied
from storage import conversations
from tests.helpers.store import ADMIN_A, ADMIN_B, ALICE, BOB, CAROL, Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(tmp_path / "home")
    s.model_id = s.tuned(ALICE, "helpdesk", "support answers", visibility="public")
    yield s
    s.db.close()


def ask_and_correct(store: Store, caller, question: str, better: str) -> int:
    answer = store.chat.answer(caller, "helpdesk", question)
    store.chat.correct(caller, str(answer.message_id), better)
    return answer.message_id


def pending(store: Store):
    return store.chat.curation.inbox(ADMIN_A, "helpdesk").pending


def test_a_correction_waits_for_review_with_who_suggested_it_and_who_agreed(store) -> None:
    ask_and_correct(store, BOB, "When do you open?", "At nine.")
    ask_and_correct(store, ALICE, "when do you open?", "At nine.")  # the same suggestion
    ask_and_correct(store, ALICE, "Where are you?", "In Leeds.")
    first, second = pending(store)
    assert (first.question, first.bot_answer, first.answer, first.suggested_by, first.agreed) \
        == ("When do you open?", "echo: When do you open?", "At nine.", BOB.user, 2)
    assert (second.answer, second.agreed, second.origin) == ("In Leeds.", 1, "correction")
    assert store.chat.curated_pairs(store.model_id) == []  # nothing trains before approval
    store.chat.curation.approve(ADMIN_A, first.id)
    store.chat.curation.reject(ADMIN_A, second.id)
    assert store.chat.curated_pairs(store.model_id) == [
        ("When do you open?", "At nine.", "correction")]
    assert pending(store) == ()


def test_only_admins_of_the_owner_workspace_review(store) -> None:
    ask_and_correct(store, BOB, "When do you open?", "At nine.")
    [item] = pending(store)
    with pytest.raises(PermissionDenied, match="admin of the workspace that owns"):
        store.chat.curation.inbox(BOB, "helpdesk")
    with pytest.raises(PermissionDenied):
        store.chat.curation.approve(ALICE, item.id)  # the owner, but not an admin
    with pytest.raises(PermissionDenied):
        store.chat.curation.inbox(ADMIN_B, "slack:T1/helpdesk")  # another workspace's admin
    with pytest.raises(NotFound, match="no suggestion"):
        store.chat.curation.approve(ADMIN_B, item.id)
    assert store.chat.curated_pairs(store.model_id) == []


def test_other_workspaces_never_teach_the_model_unless_the_owner_opts_in(store) -> None:
    ask_and_correct(store, CAROL, "When do you open?", "Never, we are closed.")
    theirs = store.chat.answer(CAROL, "helpdesk", "Is it good?")
    store.chat.curation.set_options(ADMIN_A, "helpdesk", thumbs_up=True)
    store.chat.feedback(CAROL, str(theirs.message_id), "up")  # counts for ratings only
    assert pending(store) == () and store.chat.curated_pairs(store.model_id) == []
    # The raw log query is per workspace too: the owner's workspace sees none of Carol's.
    with store.db.session() as s:
        assert conversations.curated_pairs(s, store.model_id, workspace="slack:T1") == []
        assert conversations.curated_pairs(s, store.model_id, workspace="discord:G2") != []

    store.chat.curation.set_options(ADMIN_A, "helpdesk", outside=True)
    ask_and_correct(store, CAROL, "Where are you?", "On the moon.")
    [item] = pending(store)
    assert (item.workspace, item.answer) == ("discord:G2", "On the moon.")
    assert store.chat.curated_pairs(store.model_id) == []  # still only through review


def test_a_thumbs_down_needs_an_answer_written_before_it_is_approved(store) -> None:
    answer = store.chat.answer(BOB, "helpdesk", "How much is it?")
    store.chat.feedback(BOB, str(answer.message_id), "down")
    store.chat.feedback(ALICE, str(answer.message_id), "down")
    [item] = pending(store)
    assert (item.origin, item.answer, item.agreed) == ("thumbs-down", "", 2)
    with pytest.raises(InvalidInput, match="edit"):
        store.chat.curation.approve(ADMIN_A, item.id)
    edited = store.chat.curation.edit(ADMIN_A, item.id, "Ten pounds a month.")
    assert (edited.status, edited.approved_by) == ("approved", ADMIN_A.user)
    assert store.chat.curated_pairs(store.model_id) == [
        ("How much is it?", "Ten pounds a month.", "thumbs-down")]
    store.chat.curation.reject(ADMIN_A, item.id)  # taken back: trains no later version
    assert store.chat.curated_pairs(store.model_id) == []


def test_owner_thumbs_up_counts_as_approved_only_when_turned_on(store) -> None:
    answer = store.chat.answer(BOB, "helpdesk", "Do you ship abroad?")
    store.chat.feedback(BOB, str(answer.message_id), "up")
    assert store.chat.curated_pairs(store.model_id) == []
    store.chat.curation.set_options(ADMIN_A, "helpdesk", thumbs_up=True)
    again = store.chat.answer(BOB, "helpdesk", "Do you ship abroad?")
    store.chat.feedback(BOB, str(again.message_id), "up")
    assert store.chat.curated_pairs(store.model_id) == [
        ("Do you ship abroad?", "echo: Do you ship abroad?", "thumbs-up")]


def test_suggestions_are_rate_limited_per_user(store) -> None:
    store.chat.curation = Curation(store.db, store.settings.with_(suggestion_rate_per_hour=3),
                                   store.catalog, store.clock)
    for i in range(3):
        ask_and_correct(store, BOB, f"question {i}", f"answer {i}")
    answer = store.chat.answer(BOB, "helpdesk", "question 3")
    with pytest.raises(Busy, match="3 suggestions in the last hour"):
        store.chat.correct(BOB, str(answer.message_id), "answer 3")
    assert len(pending(store)) == 3  # the refused one stored nothing
    ask_and_correct(store, ALICE, "question 3", "answer 3")  # another user has their own
    store.clock.advance(minutes=20)  # one suggestion's worth refilled
    store.chat.correct(BOB, str(answer.message_id), "answer 3")  # agrees with Alice's
    last = store.chat.curation.inbox(ADMIN_A, "helpdesk").pending[-1]
    assert (last.answer, last.agreed) == ("answer 3", 2)


def test_an_answered_gap_is_an_approved_pair_with_its_origin(store) -> None:
    model = store.catalog.model_by_id(store.model_id)
    curated_id = store.chat.curation.add_approved(
        model, "Do you have a phone line?", "Yes: 0113 496 0000.", origin="gap", ref="gap 7",
        approved_by=ADMIN_A)
    [pair] = store.chat.curation.training_pairs(store.model_id)
    assert (pair.id, pair.origin, pair.ref, pair.approved_by) == (
        curated_id, "gap", "gap 7", ADMIN_A.user)
    with pytest.raises(InvalidInput):
        store.chat.curation.add_approved(model, "q", "", origin="gap", approved_by=ADMIN_A)


def test_the_review_commands_list_and_decide_with_buttons(store) -> None:
    ask_and_correct(store, BOB, "When do you open?", "At nine.")
    engine = _EngineView(store)
    reply = Dispatcher(engine).handle_text("review helpdesk", Context(caller=ADMIN_A))
    assert "1 suggestion" in reply.title, reply.text
    [(label, body)] = reply.fields
    assert "When do you open?" in body and "At nine." in body and BOB.user in body
    assert [b.command for b in reply.buttons] == [f"approve {label[1:]}", f"edit {label[1:]}",
                                                  f"reject {label[1:]}"]
    editing = Dispatcher(engine).handle_text(reply.buttons[1].command, Context(caller=ADMIN_A))
    assert f"/store edit {label[1:]} THE RIGHT ANSWER" in editing.text and "At nine." in editing.text
    done = Dispatcher(engine).handle_text(reply.buttons[0].command, Context(caller=ADMIN_A))
    assert done.kind == "success" and "next retrain trains on it" in done.text
    refused = Dispatcher(engine).handle_text("review helpdesk", Context(caller=BOB))
    assert refused.is_error and "admin" in refused.text
    on = Dispatcher(engine).handle_text("review helpdesk thumbs-up=on outside=off", Context(caller=ADMIN_A))
    assert "counts as approved: on" in on.text


class _EngineView:
    """The part of an Engine the review commands use, over the test store."""

    def __init__(self, store: Store) -> None:
        self.curation = store.chat.curation
        self.chat = store.chat
        self.catalog = store.catalog
