"""Tenant isolation through the command core: workspace B can neither see nor use workspace A's
private or workspace models, on every command, and its errors read exactly as for a name
that does not exist. Inside one workspace, a private model is its owner's alone."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from bot.core.dispatch import Dispatcher
from engine.errors import ModelUnavailable
from engine.identity import Caller
from storage.tables import MessageRecord
from tests.helpers.tenants import (
    A_ADMIN,
    A_X,
    A_Y,
    B_ADMIN,
    B_USER,
    FAQ,
    context,
    in_channel,
    open_engine,
    say,
    shown,
)

PRIVATE, TEAM, TUNED = "acme-private", "acme-team", "acme-bot"
A_MODELS = (PRIVATE, TEAM, TUNED)
B_CALLERS = (B_USER, B_ADMIN)


@pytest.fixture
def world(settings, tiny_base_dir):
    """A's models: a private base of X, a workspace base, X's private tuned model (2 versions)."""
    engine = open_engine(settings, tiny_base_dir)
    engine.catalog.add_base(A_X, PRIVATE, str(tiny_base_dir), tags="secretsauce")
    engine.catalog.add_base(A_X, TEAM, str(tiny_base_dir), tags="secretsauce")
    engine.catalog.publish(A_ADMIN, TEAM, "workspace")
    tuned = engine.catalog.create_or_get_tuned(A_X, TUNED, "tiny", "Our support bot")
    for n in (1, 2):
        engine.catalog.add_version(tuned.id, path=str(settings.adapters_dir / f"v{n}"), live=True)
    yield engine, Dispatcher(engine)
    engine.close()


def state_of(engine: Any) -> dict[str, Any]:
    """What A would notice changing: visibility, live version, deployments, usage, ratings,
    schedules and jobs."""
    cards = {m: engine.catalog.card(A_X, m) for m in A_MODELS}
    return {
        "cards": {m: (c.visibility, c.live_version, tuple(c.deployments), c.usage_count,
                      c.rating_up, c.rating_down, c.owner) for m, c in cards.items()},
        "schedule": engine.retrainer.schedule(A_X, TUNED),
        "jobs": [(j.id, j.state) for j in engine.jobs.list(A_ADMIN)],
        "b_jobs": [(j.id, j.state) for j in engine.jobs.list(B_ADMIN)],
        "b_deployment": engine.catalog.deployed(B_ADMIN),
    }


def ghost_of(name: str) -> str:
    """A name nobody has, shaped like `name`, so both get the same did-you-mean."""
    return name[:-1] + ("z" if name[-1] != "z" else "y")


def assert_hidden(dispatcher: Dispatcher, caller: Caller, command: str, *, file: bytes | None = None,
                  names: tuple[str, ...] = A_MODELS, not_found: bool = True) -> None:
    """`command` ({m} = a model of A) fails for `caller` exactly as for a name that does not
    exist: same kind, same words, nothing that mentions A. (A did-you-mean may differ between
    two names; it only ever offers names the caller can see, which is checked too.)"""
    visible = {name for name, _ in say(dispatcher, caller, "search").fields}
    for name in names:
        ghost = ghost_of(name)
        real = say(dispatcher, caller, command.format(m=name), file=file)
        fake = say(dispatcher, caller, command.format(m=ghost), file=file)
        assert real.kind == fake.kind == "error", (command, name, real)
        hint = "Did you mean '"
        if hint in real.text:
            assert real.text.split(hint)[1].split("'")[0] in visible, real.text
            real_text = real.text.split(hint)[0]
            fake_text = fake.text.split(hint)[0].split("`/store search`")[0]
        else:
            real_text, fake_text = real.text, fake.text
        assert real_text == fake_text.replace(ghost, name), (command, name)
        assert real.title == fake.title and not real.fields
        if not_found:
            assert f"No model named '{name}'" in real.text, real.text
        assert "slack:TA" not in shown(real) and "secretsauce" not in shown(real)


@pytest.fixture
def checked(world):
    """The world, and afterwards a check that nothing of A's changed."""
    engine, dispatcher = world
    before = state_of(engine)
    yield engine, dispatcher
    assert state_of(engine) == before


# -- one test per command ---------------------------------------------------------------------

def test_search_never_lists_another_workspaces_models(checked) -> None:
    engine, dispatcher = checked
    for caller in B_CALLERS:
        for query in ("search", "search acme", "search task:secretsauce", "search acme-private",
                      "search support bot", f"search base:{PRIVATE}", f"search base:{TEAM}"):
            reply = say(dispatcher, caller, query)
            assert reply.kind != "error", reply.text
            listed = " ".join(f"{name} {line}" for name, line in reply.fields)
            assert "acme" not in listed and "secretsauce" not in listed, query
            if query != "search":
                assert reply.text.startswith("No models found"), (query, reply.text)
        assert "tiny" in shown(say(dispatcher, caller, "search"))  # public models still show
    assert all(m in shown(say(dispatcher, A_X, "search acme")) for m in A_MODELS)


def test_info_is_not_found(checked) -> None:
    for caller in B_CALLERS:
        assert_hidden(checked[1], caller, "info {m}")


def test_chat_is_not_found_and_nothing_is_logged(checked) -> None:
    engine, dispatcher = checked
    for caller in B_CALLERS:
        assert_hidden(dispatcher, caller, "chat {m} what do you know?")
        reply = dispatcher.chat_turn(context(caller), "what do you know?", model=PRIVATE)
        assert reply.kind == "error" and f"No model named '{PRIVATE}'" in reply.text
    assert engine.chat.history_for(B_USER) == []


def test_deploy_is_not_found_even_for_an_admin(checked) -> None:
    assert_hidden(checked[1], B_ADMIN, "deploy {m}")
    assert_hidden(checked[1], B_USER, "deploy {m}", not_found=False)  # not an admin: refused first


def test_publish_is_not_found_even_for_an_admin(checked) -> None:
    for caller in B_CALLERS:
        for visibility in ("public", "workspace", "private"):
            assert_hidden(checked[1], caller, "publish {m} " + visibility)


def test_versions_is_not_found(checked) -> None:
    for caller in B_CALLERS:
        assert_hidden(checked[1], caller, "versions {m}")


def test_rollback_is_not_found_even_for_an_admin(checked) -> None:
    for caller in B_CALLERS:
        assert_hidden(checked[1], caller, "rollback {m} 1")


def test_retrain_and_its_schedule_are_not_found_even_for_an_admin(checked) -> None:
    for caller in B_CALLERS:
        for when in ("now", "daily", "off", "0 3 * * 1"):
            assert_hidden(checked[1], caller, "retrain {m} " + when)


def test_retrain_of_a_public_model_is_only_for_its_own_workspace(world) -> None:
    """Public means anyone may use it, not that another workspace's admin may manage it."""
    engine, dispatcher = world
    engine.catalog.publish(A_ADMIN, TUNED, "public")
    assert say(dispatcher, B_USER, f"info {TUNED}").kind != "error"  # visible, usable
    for caller in B_CALLERS:
        for command in (f"retrain {TUNED} now", f"retrain {TUNED} daily",
                        f"rollback {TUNED} 1", f"publish {TUNED} private"):
            reply = say(dispatcher, caller, command)
            assert reply.kind == "error" and "Only" in reply.text, (command, reply.text)
    assert engine.retrainer.schedule(A_X, TUNED) is None
    assert engine.jobs.list(A_ADMIN) == [] and engine.jobs.list(B_ADMIN) == []
    card = engine.catalog.card(A_X, TUNED)
    assert (card.visibility, card.live_version) == ("public", 2)
    assert say(dispatcher, A_ADMIN, f"retrain {TUNED} daily").kind == "success"


def test_tune_with_another_workspaces_base_is_not_found_and_stores_nothing(checked) -> None:
    engine, dispatcher = checked
    for caller in B_CALLERS:
        assert_hidden(dispatcher, caller, "tune mine base={m}", file=FAQ)
        assert say(dispatcher, caller, "info mine").kind == "error"  # no entry was created
    with engine.db.session() as s:
        from sqlmodel import select

        from storage.tables import DatasetRecord
        assert s.exec(select(DatasetRecord)).all() == []


def test_the_same_name_in_another_workspace_is_its_own_model(world) -> None:
    """Names are unique per workspace: B's `tune acme-bot` makes B's own acme-bot (so B
    learns nothing about A's names), and A's entries get no job and no version from B."""
    engine, dispatcher = world
    before = state_of(engine)
    for name in (TUNED, PRIVATE):
        reply = say(dispatcher, B_USER, f"tune {name}", file=FAQ)
        assert reply.kind != "error" and reply.job_id, reply.text
        assert "slack:TA" not in shown(reply) and "taken" not in reply.text
        mine = engine.catalog.resolve(B_USER, name)
        assert mine.workspace == B_USER.workspace and mine.owner == B_USER.user
        assert engine.catalog.resolve(A_X, name).workspace == A_X.workspace
    after = state_of(engine)
    assert after["cards"] == before["cards"] and after["jobs"] == before["jobs"]
    b_jobs = engine.jobs.list(B_USER)
    assert len(b_jobs) == 2 and {j.workspace for j in b_jobs} == {B_USER.workspace}
    assert "acme" not in shown(say(dispatcher, B_USER, "search secretsauce"))


def test_a_model_made_private_while_deployed_elsewhere_stops_answering_at_once(world) -> None:
    """The visibility rule holds at every answer: B deployed A's public model; once A makes it
    private it stops answering in B at once, B is told why once per deployment, and later
    messages go on to the next model in line (never A's)."""
    engine, dispatcher = world
    engine.catalog.publish(A_ADMIN, TEAM, "public")
    assert say(dispatcher, B_ADMIN, f"deploy {TEAM}").kind == "success"
    assert say(dispatcher, B_ADMIN, f"deploy {TEAM} default").kind == "success"
    before = dispatcher.chat_turn(context(B_USER), "Hello")
    assert before.kind == "chat" and TEAM in before.note
    other_channel = in_channel(B_USER, "C2")  # nothing deployed there: the workspace default
    assert TEAM in dispatcher.chat_turn(context(other_channel), "Hello").note
    assert engine.catalog.deployed(B_USER).name == TEAM

    engine.catalog.publish(A_ADMIN, TEAM, "private")
    team = engine.catalog.resolve(A_X, TEAM)
    told = dispatcher.chat_turn(context(B_USER), "Hello again")
    assert told.kind == "error" and told.ephemeral
    assert told.text == (f"'{TEAM}', deployed here, is no longer shared with this workspace (its "
                         "owner made it private), so it stopped answering; an admin can pick "
                         "another with `/store deploy MODEL`.")
    assert engine.catalog.deployed(B_USER) is None  # plain messages in C1 are not chat turns now
    told_default = dispatcher.chat_turn(context(other_channel), "Hello again")
    assert told_default.kind == "error" and "the workspace's default" in told_default.text
    assert "`/store deploy MODEL default`" in told_default.text
    for caller in (B_USER, other_channel):  # told once per deployment, then onwards
        reply = dispatcher.chat_turn(context(caller), "And now?")
        assert reply.kind == "chat" and TEAM not in reply.note, reply.text
        assert "the store's default model" in reply.note
    with engine.db.session() as s:
        answered = {m.model_id for m in s.exec(select(MessageRecord).where(
            MessageRecord.role == "assistant", MessageRecord.user.startswith("slack:TB")))}
    assert len(answered) == 2 and team.id in answered  # before, and never after
    assert sum(1 for m in engine.chat.history_for(B_USER) if m["role"] == "assistant") == 2
    # asked by name, or with a record resolved a moment before it went private
    assert say(dispatcher, B_USER, f"chat {TEAM} hi").kind == "error"
    with pytest.raises(ModelUnavailable, match="no longer shared"):
        engine.catalog.live_target(team, B_USER)
    # A's own workspace is unaffected
    assert engine.catalog.live_target(team, A_X).model_id == team.id


def test_correct_and_feedback_never_reach_another_workspaces_answers(world) -> None:
    engine, dispatcher = world
    say(dispatcher, A_ADMIN, f"deploy {TEAM}")
    answer = dispatcher.chat_turn(context(A_Y), "When do you open?")
    assert answer.kind == "chat" and answer.message_id
    dispatcher.answer_posted(answer.message_id, "1700.000100")
    team_id = engine.catalog.resolve(A_Y, TEAM).id
    for caller in B_CALLERS:  # same channel id "C1", other workspace
        for ref in ("1700.000100", str(answer.message_id)):
            real = say(dispatcher, caller, "correct We open at nine.", reply_ref=ref)
            fake = say(dispatcher, caller, "correct We open at nine.", reply_ref="1700.999999")
            assert real.kind == "error" and real.text == fake.text
            assert dispatcher.feedback(context(caller), ref, "down") is None
        reply = say(dispatcher, caller, "correct We open at nine.")  # no ref: last answer here
        assert reply.kind == "error" and "no answer here" in reply.text
    assert engine.chat.curated_pairs(team_id) == []
    assert engine.catalog.card(A_Y, TEAM).rating_down == 0
    # A's own users can (the same calls work inside the workspace)
    assert dispatcher.feedback(context(A_Y), "1700.000100", "up").kind == "success"
    assert engine.catalog.card(A_Y, TEAM).rating_up == 1


def test_jobs_job_and_cancel_never_reach_another_workspaces_jobs(world) -> None:
    engine, dispatcher = world
    started = say(dispatcher, A_X, "tune acme-job epochs=1", file=FAQ)
    assert started.job_id, started.text
    job_id = started.job_id
    for caller in B_CALLERS:
        listing = say(dispatcher, caller, "jobs")
        assert f"#{job_id}" not in shown(listing) and "acme-job" not in shown(listing)
        for command in ("job {}", "cancel {}"):
            real = say(dispatcher, caller, command.format(job_id))
            fake = say(dispatcher, caller, command.format(job_id + 1000))
            assert real.kind == "error" and real.text == fake.text.replace(
                str(job_id + 1000), str(job_id))
    assert engine.jobs.view(job_id).state == "queued"
    assert f"#{job_id}" in shown(say(dispatcher, A_Y, "jobs"))  # the workspace sees it
    assert say(dispatcher, A_X, f"cancel {job_id}").kind == "success"


def test_plain_chat_in_a_channel_of_the_same_id_in_another_workspace(world) -> None:
    engine, dispatcher = world
    assert say(dispatcher, A_ADMIN, f"deploy {TEAM}").kind == "success"
    assert dispatcher.chat_turn(context(A_Y), "Hello").kind == "chat"
    for caller in B_CALLERS:  # B's channel C1 has no deployment: the store's default answers
        reply = dispatcher.chat_turn(context(caller), "Hello")
        assert reply.kind == "chat" and TEAM not in reply.note
        assert "the store's default model" in reply.note
    assert say(dispatcher, B_ADMIN, "undeploy").text == "No model is deployed here."
    # only B_USER's own question and answer go; A's conversation stays
    assert say(dispatcher, B_USER, "forget-me").text.startswith("Deleted 2 ")
    assert engine.catalog.deployed(A_Y).name == TEAM  # A's binding survived B's undeploy
    assert engine.chat.history_for(A_Y)  # and A's log B's forget-me


# -- inside one workspace ----------------------------------------------------------------------

def test_a_private_model_is_invisible_to_another_user_of_the_same_workspace(checked) -> None:
    engine, dispatcher = checked
    for command in ("info {m}", "chat {m} hi", "versions {m}", "retrain {m} now",
                    "tune mine base={m}", "deploy {m}"):
        assert_hidden(dispatcher, A_Y, command, names=(PRIVATE, TUNED),
                      file=FAQ if "tune" in command else None,
                      not_found=not command.startswith("deploy"))
    listing = shown(say(dispatcher, A_Y, "search acme"))
    assert PRIVATE not in listing and TUNED not in listing
    assert "private" in shown(say(dispatcher, A_X, f"info {PRIVATE}"))  # the owner sees it


def test_a_workspace_model_is_visible_and_usable_by_everyone_in_it(world) -> None:
    engine, dispatcher = world
    assert TEAM in shown(say(dispatcher, A_Y, "search acme"))
    assert say(dispatcher, A_Y, f"info {TEAM}").kind != "error"
    assert say(dispatcher, A_Y, f"versions {TEAM}").kind != "error"
    reply = say(dispatcher, A_Y, f"chat {TEAM} Hello")
    assert reply.kind == "chat"
    assert engine.catalog.card(A_Y, TEAM).usage_count == 1
