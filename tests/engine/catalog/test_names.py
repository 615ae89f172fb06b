"""Model names are unique per owner workspace: two workspaces may both have a `support-bot`,
neither learns of the other's private one, and a third names them WORKSPACE/NAME when the
bare name is ambiguous (engine/catalog/names.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.catalog import names
from engine.errors import Conflict, InvalidInput, NotFound
from engine.identity import Caller
from engine.jobs.backends import NullBackend
from engine.jobs.service import JobService
from engine.settings import DEFAULT_BASE
from storage.tables import JobRecord
from tests.helpers.store import ADMIN_A, ADMIN_B, ALICE, BOB, CAROL, Store, open_store

DAVE = Caller(platform="slack", workspace="slack:T3", user="slack:T3:dave", channel="C9",
              is_admin=True)


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(tmp_path / "home")
    yield s
    s.db.close()


def listed(store: Store, caller: Caller, words: str = "support") -> list[str]:
    return sorted(card.name for card in store.catalog.search(caller, words))


def test_handles_are_short_stable_and_typable() -> None:
    assert names.handle("slack:T0123ABC") == "t0123abc"
    assert names.handle("discord:4567") == "4567"
    assert names.handle("discord:dm:42") == "dm-42"
    assert names.handle("local") == "local"
    assert names.handle("") == "store"
    for typed in ("t0123abc", "T0123ABC", "slack:T0123ABC", "slack-t0123abc"):
        assert names.qualifier_means(typed, "slack:T0123ABC"), typed
    assert not names.qualifier_means("4567", "slack:T0123ABC")
    with pytest.raises(InvalidInput, match="WORKSPACE/NAME"):
        names.parse("t1/")


def test_two_workspaces_with_the_same_model_name(store: Store) -> None:
    ours = store.tuned(ALICE, "support-bot", "Alice's helpdesk")  # private to Alice
    # Another workspace can take the name: nothing tells it that T1 has one.
    theirs = store.tuned(CAROL, "support-bot", "Carol's helpdesk")
    assert ours != theirs
    with pytest.raises(Conflict, match="taken in this workspace"):  # unique within one
        store.catalog.create_or_get_tuned(BOB, "support-bot", None)
    # Each workspace's bare name means its own entry, on every command.
    assert store.catalog.resolve(ALICE, "support-bot").id == ours
    assert store.catalog.resolve(CAROL, "support-bot").id == theirs
    assert store.catalog.card(CAROL, "support-bot").description == "Carol's helpdesk"
    with pytest.raises(NotFound, match="No model named 't1/support-bot'"):
        store.catalog.resolve(CAROL, "t1/support-bot")  # private: still hidden when qualified
    assert listed(store, CAROL) == ["support-bot"]

    store.catalog.publish(ADMIN_A, "support-bot", "public")
    store.catalog.publish(ADMIN_B, "support-bot", "public")
    # Now each also sees the other's, qualified, because its bare name is its own.
    assert listed(store, ALICE) == ["g2/support-bot", "support-bot"]
    assert listed(store, CAROL) == ["support-bot", "t1/support-bot"]
    assert store.catalog.resolve(CAROL, "t1/support-bot").id == ours
    assert store.catalog.card(CAROL, "t1/support-bot").name == "t1/support-bot"

    # A third workspace has neither: the bare name is ambiguous and says how to qualify it.
    with pytest.raises(InvalidInput) as ambiguous:
        store.catalog.resolve(DAVE, "support-bot")
    assert str(ambiguous.value) == ("Several workspaces share a model called 'support-bot'; "
                                    "name the one you mean: g2/support-bot, t1/support-bot.")
    assert listed(store, DAVE) == ["g2/support-bot", "t1/support-bot"]
    for typed in ("t1/support-bot", "slack:T1/support-bot", "SLACK-T1/Support-Bot"):
        assert store.catalog.resolve(DAVE, typed).id == ours, typed
    assert store.catalog.resolve(DAVE, "discord:G2/support-bot").id == theirs

    # Deploying and chatting by the qualified name reach that entry, and answers name it so.
    card = store.catalog.deploy(DAVE, "g2/support-bot")
    assert card.name == "g2/support-bot" and card.deployments == ["C9"]
    answer = store.chat.answer(DAVE, None, "hello")
    assert answer.model_name == "g2/support-bot" and answer.chosen_by == "channel"
    assert store.runner.calls[-1][0].model_id == theirs

    # Once only one other workspace shares it, the bare name is enough again.
    store.catalog.publish(ADMIN_B, "support-bot", "private")
    assert store.catalog.resolve(DAVE, "support-bot").id == ours
    assert listed(store, DAVE) == ["support-bot"]


def test_the_stores_own_names_stay_the_stores(store: Store) -> None:
    with pytest.raises(Conflict, match="taken by the store's own model"):
        store.catalog.create_or_get_tuned(CAROL, DEFAULT_BASE, None)
    assert store.catalog.resolve(CAROL, DEFAULT_BASE).workspace == ""
    assert store.catalog.resolve(CAROL, f"store/{DEFAULT_BASE}").workspace == ""


def test_tuned_entries_and_jobs_keep_pointing_at_their_own_entry(store: Store) -> None:
    """A tuned model records its base by id, a job its model by id: same names elsewhere
    cannot redirect them."""
    jobs = JobService(store.db, store.settings, store.catalog, None, NullBackend(), store.clock)
    ours = store.tuned(ALICE, "support-bot")
    theirs = store.tuned(CAROL, "support-bot")
    for caller, entry in ((ALICE, ours), (CAROL, theirs)):
        job = jobs.submit("retrain", "support-bot", owner=caller.user, workspace=caller.workspace)
        with store.db.session() as s:
            assert s.get(JobRecord, job.id).model_id == entry
        assert store.catalog.job_model(None, caller.workspace, "support-bot").id == entry
    base = store.catalog.model_by_id(ours)
    assert base is not None and base.base_id is not None
    assert store.catalog.base_target(base).base_name == store.settings.default_base
