"""The catalog on a temporary SQLite store: registering, search, visibility, publishing,
versions, deployments and what the runner is told to load."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import (
    Conflict,
    InvalidInput,
    ModelUnavailable,
    NotFound,
    PermissionDenied,
)
from engine.settings import DEFAULT_BASE
from tests.helpers.store import (
    ADMIN_A,
    ADMIN_B,
    ALICE,
    BOB,
    CAROL,
    Store,
    hf_folder,
    open_store,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(tmp_path / "home")
    yield s
    s.db.close()


def names(cards) -> list[str]:
    return [c.name for c in cards]


def test_bundled_base_is_registered_once_public_and_live(store: Store) -> None:
    store.catalog.ensure_bundled_base()  # a second process starting up
    assert names(store.catalog.search(CAROL, "")) == [DEFAULT_BASE]
    card = store.catalog.card(ALICE, DEFAULT_BASE)
    assert card.is_base and card.visibility == "public" and card.live_version == 1
    assert "chat" in card.tags and card.versions[0].kind == "weights"
    target = store.catalog.live_target(store.catalog.resolve(ALICE, DEFAULT_BASE))
    assert target.base_path == f"bundled:{DEFAULT_BASE}" and target.adapter_path is None


def test_add_base_needs_a_hugging_face_folder(store: Store, tmp_path: Path) -> None:
    bare = hf_folder(tmp_path / "bare", skip=("config.json", "model.safetensors", "tokenizer.json"))
    with pytest.raises(InvalidInput) as err:
        store.catalog.add_base(ALICE, "my-base", str(bare))
    assert "config.json" in str(err.value) and "safetensors" in str(err.value)
    assert "tokenizer" in str(err.value)
    only_tokenizer_missing = hf_folder(tmp_path / "nearly", skip=("tokenizer.json",))
    with pytest.raises(InvalidInput, match="missing tokenizer files"):
        store.catalog.add_base(ALICE, "my-base", str(only_tokenizer_missing))

    card = store.catalog.add_base(ALICE, "My-Base", str(hf_folder(tmp_path / "ok")),
                                  description="A local model", tags="Chat, Legal")
    assert (card.name, card.visibility, card.is_base, card.tags) == (
        "my-base", "private", True, ["chat", "legal"])
    target = store.catalog.live_target(store.catalog.resolve(ALICE, "my-base"))
    assert target.base_path == str((tmp_path / "ok").resolve())
    with pytest.raises(Conflict, match="taken"):
        store.catalog.add_base(BOB, "my-base", str(tmp_path / "ok"))


@pytest.mark.parametrize("bad", ["a", "Has Space", "under_score", "-dash", "x" * 65, "a--b"])
def test_model_names_must_be_slugs(store: Store, bad: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid model name"):
        store.catalog.create_or_get_tuned(ALICE, bad, None)


def test_visibility_private_workspace_public_across_two_workspaces(store: Store) -> None:
    store.tuned(ALICE, "alice-notes", "private notes bot")
    store.tuned(ALICE, "team-helper", "team helper bot", visibility="workspace")
    store.tuned(ALICE, "open-helper", "public helper bot", visibility="public")

    def seen(caller) -> set[str]:
        return set(names(store.catalog.search(caller, "bot"))) | set(
            names(store.catalog.search(caller, "")))

    assert seen(ALICE) >= {"alice-notes", "team-helper", "open-helper"}
    assert "alice-notes" not in seen(BOB) and {"team-helper", "open-helper"} <= seen(BOB)
    assert "alice-notes" not in seen(ADMIN_A)  # private means the owner only
    assert seen(CAROL) & {"alice-notes", "team-helper"} == set() and "open-helper" in seen(CAROL)
    with pytest.raises(NotFound):
        store.catalog.card(CAROL, "team-helper")
    with pytest.raises(NotFound):
        store.catalog.card(BOB, "alice-notes")
    assert store.catalog.card(CAROL, "open-helper").visibility == "public"


def test_better_matches_rank_first(store: Store) -> None:
    store.tuned(ALICE, "refund-helper", "answers questions about orders", visibility="public")
    store.tuned(ALICE, "order-bot", "handles refund requests and shipping", visibility="public")
    store.tuned(ALICE, "weather", "talks about the weather", visibility="public")
    store.tuned(ALICE, "shipping-refund-bot", "refund and shipping questions", visibility="public")
    hits = store.catalog.search(BOB, "refund")
    assert names(hits)[0] in ("refund-helper", "shipping-refund-bot")
    assert "weather" not in names(hits) and set(names(hits)) >= {"refund-helper", "order-bot"}
    assert hits[0].score > hits[-1].score
    both = names(store.catalog.search(BOB, "refund shipping"))
    assert both[0] == "shipping-refund-bot"  # matches both words, in name and description
    assert names(store.catalog.search(BOB, "refunds"))[0] in ("refund-helper", "shipping-refund-bot")


def test_usage_and_rating_break_ties_between_equal_matches(store: Store) -> None:
    quiet = store.tuned(ALICE, "faq-one", "support faq", visibility="public")
    busy = store.tuned(ALICE, "faq-two", "support faq", visibility="public")
    store.catalog.record_usage(busy, 40)
    store.catalog.add_rating(busy, up=5)
    assert names(store.catalog.search(BOB, "support"))[:2] == ["faq-two", "faq-one"]
    store.catalog.record_usage(quiet, 400)
    store.catalog.add_rating(quiet, up=50)
    assert names(store.catalog.search(BOB, "support"))[:2] == ["faq-one", "faq-two"]
    assert names(store.catalog.search(BOB, ""))[0] == "faq-one"  # no words: most used first


def test_filters_by_task_base_and_owner(store: Store, tmp_path: Path) -> None:
    store.catalog.add_base(ADMIN_A, "other-base", str(hf_folder(tmp_path / "b")))
    store.catalog.publish(ADMIN_A, "other-base", "public")
    store.tuned(ALICE, "legal-bot", "contracts", tags="legal", visibility="public")
    store.tuned(BOB, "faq-bot", "support", tags="support faq", visibility="public")
    other = store.catalog.create_or_get_tuned(BOB, "other-bot", "other-base", "support")
    store.catalog.add_version(other.id, path="/a", live=True)
    assert names(store.catalog.search(CAROL, task="legal")) == ["legal-bot"]
    assert names(store.catalog.search(CAROL, "contracts support", task="faq")) == ["faq-bot"]
    assert set(names(store.catalog.search(BOB, base="other-base"))) == {"other-bot"}
    assert set(names(store.catalog.search(CAROL, owner="alice"))) == {"legal-bot"}
    assert set(names(store.catalog.search(BOB, owner="me"))) == {"faq-bot", "other-bot"}


def test_search_index_follows_edits_and_deletes(store: Store) -> None:
    model_id = store.tuned(ALICE, "mutable", "penguins", visibility="public")
    assert names(store.catalog.search(BOB, "penguins")) == ["mutable"]
    from storage.tables import ModelRecord
    with store.db.session() as s:
        record = s.get(ModelRecord, model_id)
        record.description = "giraffes"
        s.add(record)
    assert names(store.catalog.search(BOB, "penguins")) == []
    assert names(store.catalog.search(BOB, "giraffe")) == ["mutable"]
    with store.db.session() as s:
        s.delete(s.get(ModelRecord, model_id))
    assert names(store.catalog.search(BOB, "giraffes")) == []


def test_unknown_names_suggest_the_closest_visible_name(store: Store) -> None:
    store.tuned(ALICE, "support-bot", "support", visibility="workspace")
    store.tuned(ALICE, "secret-project", "hidden")
    with pytest.raises(NotFound) as err:
        store.catalog.resolve(BOB, "suport-bot")
    assert str(err.value) == "No model named 'suport-bot'. Did you mean 'support-bot'?"
    with pytest.raises(NotFound) as err:
        store.catalog.resolve(BOB, "secret-projekt")
    assert "secret-project" not in str(err.value)  # private names never leak
    with pytest.raises(NotFound) as err:
        store.catalog.resolve(CAROL, "support-bot")  # other workspace: as if absent
    assert "Did you mean" not in str(err.value) and "/store search" in str(err.value)


def test_publish_needs_the_owner_or_an_admin_and_admins_for_wider_audiences(store: Store) -> None:
    store.tuned(ALICE, "alice-bot", "x")
    with pytest.raises(PermissionDenied, match="Only a workspace admin can"):
        store.catalog.publish(ALICE, "alice-bot", "public")
    with pytest.raises(InvalidInput, match="private, workspace or public"):
        store.catalog.publish(ALICE, "alice-bot", "everyone")
    assert store.catalog.publish(ADMIN_A, "alice-bot", "workspace").visibility == "workspace"
    with pytest.raises(PermissionDenied, match="owner of 'alice-bot' or an admin"):
        store.catalog.publish(BOB, "alice-bot", "private")
    store.catalog.publish(ADMIN_A, "alice-bot", "public")
    with pytest.raises(PermissionDenied):
        store.catalog.publish(ADMIN_B, "alice-bot", "private")  # an admin of another workspace
    assert store.catalog.publish(ALICE, "alice-bot", "private").visibility == "private"
    assert "alice-bot" not in names(store.catalog.search(BOB, ""))


def test_versions_and_rollback(store: Store) -> None:
    model_id = store.tuned(ALICE, "versioned", "x")
    store.catalog.add_version(model_id, path="/v2", live=True, metrics_after={"token_f1": 0.5})
    store.catalog.add_version(model_id, path="/v3", live=False, notes="failed the gate")
    assert [(v.number, v.status) for v in store.catalog.versions(ALICE, "versioned")] == [
        (1, "retired"), (2, "live"), (3, "candidate")]
    model = store.catalog.resolve(ALICE, "versioned")
    assert store.catalog.live_target(model).adapter_path == "/v2"

    card = store.catalog.rollback(ALICE, "versioned", 1)
    assert card.live_version == 1
    assert [v.status for v in card.versions] == ["live", "retired", "candidate"]
    target = store.catalog.live_target(model)
    assert (target.adapter_path, target.version, target.base_path) == (
        "/adapters/versioned/v1", 1, f"bundled:{DEFAULT_BASE}")
    with pytest.raises(NotFound, match="no version 9; its versions are 1, 2, 3"):
        store.catalog.rollback(ALICE, "versioned", 9)
    store.catalog.publish(ADMIN_A, "versioned", "workspace")
    with pytest.raises(PermissionDenied):
        store.catalog.rollback(BOB, "versioned", 2)


def test_deploy_binds_the_channel_of_the_workspace(store: Store) -> None:
    store.tuned(ALICE, "helpdesk", "x", visibility="public")
    with pytest.raises(PermissionDenied, match="Only a workspace admin"):
        store.catalog.deploy(ALICE, "helpdesk")
    card = store.catalog.deploy(ADMIN_A, "helpdesk")
    assert card.deployments == ["C1"]
    assert store.catalog.deployed(BOB).name == "helpdesk"
    assert store.catalog.deployed(CAROL) is None  # same channel id, other workspace
    dm = BOB.__class__(**{**BOB.__dict__, "channel": "dm:slack:T1:bob"})
    assert store.catalog.deploy(dm, DEFAULT_BASE).name == DEFAULT_BASE  # DMs need no admin
    assert store.catalog.deployed(dm).name == DEFAULT_BASE
    slack_dm = BOB.__class__(**{**BOB.__dict__, "channel": "D0123"})  # Slack's DM channel ids
    assert store.catalog.deploy(slack_dm, "helpdesk").deployments == ["C1", "D0123"]
    assert store.catalog.undeploy(ADMIN_A) == "helpdesk"
    assert store.catalog.deployed(BOB) is None and store.catalog.undeploy(ADMIN_A) is None


def test_a_plain_message_is_answered_by_the_channel_then_the_workspace_then_the_store(
        store: Store) -> None:
    from dataclasses import replace

    store.tuned(ALICE, "helpdesk", "x", visibility="public")
    store.tuned(ALICE, "sales", "y", visibility="public")
    elsewhere = replace(BOB, channel="C7")
    first = store.catalog.answering(elsewhere)
    assert (first.model.name, first.chosen_by) == (DEFAULT_BASE, "store")  # nothing deployed
    with pytest.raises(PermissionDenied, match="workspace's default"):
        store.catalog.deploy(ALICE, "helpdesk", default=True)
    assert store.catalog.deploy(ADMIN_A, "helpdesk", default=True).deployments == [
        "workspace default"]
    second = store.catalog.answering(elsewhere)
    assert (second.model.name, second.chosen_by) == ("helpdesk", "workspace")
    assert store.catalog.deployed(elsewhere) is None  # the default is not a channel's model
    assert store.catalog.answering(CAROL).chosen_by == "store"  # another workspace's default
    store.catalog.deploy(replace(ADMIN_A, channel="C7"), "sales")
    third = store.catalog.answering(elsewhere)
    assert (third.model.name, third.chosen_by) == ("sales", "channel")
    assert store.catalog.undeploy(ADMIN_A, default=True) == "helpdesk"
    assert store.catalog.answering(BOB).chosen_by == "store"


def test_deploy_needs_a_live_version(store: Store) -> None:
    store.catalog.create_or_get_tuned(ADMIN_A, "unborn", None)
    with pytest.raises(ModelUnavailable, match="no live version yet"):
        store.catalog.deploy(ADMIN_A, "unborn")


def test_tuned_names_belong_to_their_owner(store: Store) -> None:
    first = store.catalog.create_or_get_tuned(ALICE, "support-bot", None, "Answers support")
    again = store.catalog.create_or_get_tuned(ALICE, "support-bot", None)
    assert again.id == first.id and again.owner == ALICE.user and again.visibility == "private"
    with pytest.raises(Conflict) as err:  # names are unique within a workspace
        store.catalog.create_or_get_tuned(BOB, "support-bot", None)
    assert str(err.value) == "The name 'support-bot' is taken in this workspace; pick another."
    # another workspace has names of its own (and learns nothing of ALICE's private entry)
    theirs = store.catalog.create_or_get_tuned(CAROL, "support-bot", None)
    assert theirs.id != first.id and theirs.workspace == CAROL.workspace
    with pytest.raises(Conflict, match="taken"):
        store.catalog.create_or_get_tuned(ALICE, DEFAULT_BASE, None)
    with pytest.raises(InvalidInput, match="not a base model"):
        store.catalog.create_or_get_tuned(ALICE, "derived", "support-bot")
    with pytest.raises(NotFound, match="No model named 'nobase'"):
        store.catalog.create_or_get_tuned(ALICE, "derived", "nobase")
    with pytest.raises(ModelUnavailable, match="no live version"):
        store.catalog.live_target(first)


def test_upgrading_an_existing_store_indexes_its_entries(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from storage.db import MIGRATIONS, Database

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0001")  # a store made before the search index existed
        connection.execute(text(
            "INSERT INTO models (name, description, tags, is_base, owner, workspace, visibility,"
            " system_prompt, usage_count, rating_up, rating_down, created_at, updated_at) VALUES"
            " ('legacy-bot', 'answers about invoices', 'billing', 0, 'slack:T1:alice',"
            " 'slack:T1', 'public', '', 0, 0, 0, '2025-01-01', '2025-01-01')"))
    db.close()
    store = open_store(tmp_path / "home", url=f"sqlite:///{tmp_path / 'old.db'}")
    assert names(store.catalog.search(CAROL, "invoices")) == ["legacy-bot"]
    assert names(store.catalog.search(CAROL, "billing")) == ["legacy-bot"]
    store.db.close()


def test_common_words_are_searched_in_bounded_windows_without_losing_the_best(
        store: Store) -> None:
    from storage.search import SearchWindows

    # Shrink the windows so that this small catalog behaves like a big one: "assistant"
    # is a very common word here, "zebra" a rare one.
    store.catalog.search_windows = SearchWindows(name=4, any=2, count_cap=5)
    store.tuned(ALICE, "zebra-keeper", "an assistant for zebra care", visibility="public")
    store.tuned(ALICE, "assistant-pro", "answers everything", visibility="public")
    for i in range(10):
        store.tuned(ALICE, f"helper-{i}", "a friendly assistant", visibility="public")
    assert names(store.catalog.search(BOB, "assistant zebra"))[0] == "zebra-keeper"
    found = names(store.catalog.search(BOB, "assistant"))
    assert found[0] == "assistant-pro"  # the name hit, although older than the window
    assert 0 < len(found) < 12  # common words get a window, not every match
