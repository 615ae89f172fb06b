"""The review inbox in Slack, through the real Bolt app and a fake Slack over HTTP: the list
carries Approve / Edit / Reject buttons, and pressing Approve makes the pair trainable."""

from __future__ import annotations

import pytest

from engine.identity import Caller
from engine.settings import Settings
from storage import conversations
from tests.helpers.slack import SlackRig, blocks_text, start_rig

TIMEOUT = 30.0


@pytest.fixture
def settings(home) -> Settings:
    return Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        default_base="tiny", slack_bot_token="xoxb-test")


@pytest.fixture
def rig(engine, settings) -> SlackRig:
    rig = start_rig(engine, settings)
    yield rig
    rig.close()


def suggested(engine) -> int:
    """A tuned `helpdesk` of workspace T1 with one logged answer that a user corrected."""
    admin = Caller.for_slack("T1", "UADMIN", channel="C1", is_admin=True)
    user = Caller.for_slack("T1", "U1", channel="C1")
    model = engine.catalog.create_or_get_tuned(admin, "helpdesk", "tiny")
    engine.catalog.add_version(model.id, path="/adapters/helpdesk/v1", live=True)
    with engine.db.session() as s:
        conv = conversations.conversation(s, "slack", "slack:T1", "C1", "")
        asked = conversations.add_message(s, conversation_id=conv.id, role="user",
                                          user=user.user, content="When do you open?",
                                          model_id=model.id)
        answer = conversations.add_message(s, conversation_id=conv.id, role="assistant",
                                           user=user.user, content="Whenever.",
                                           model_id=model.id, reply_to_id=asked.id)
    engine.chat.correct(user, str(answer.id), "At nine, Monday to Friday.")
    return model.id


def press(rig: SlackRig, value: str, user: str = "UADMIN") -> None:
    rig.send.interaction({
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": user, "team_id": "T1"},
        "api_app_id": "A1", "trigger_id": "T3", "channel": {"id": "C1"},
        "container": {"type": "message", "channel_id": "C1", "message_ts": "5.000100"},
        "message": {"ts": "5.000100", "text": "review"},
        "actions": [{"action_id": "store:0", "block_id": "store_buttons", "type": "button",
                     "value": value, "action_ts": "5.1"}]})


def test_the_review_list_has_buttons_and_approve_trains_the_pair(rig: SlackRig, engine) -> None:
    model_id = suggested(engine)
    rig.send.command("review helpdesk", user="UADMIN")
    listed = rig.fake.wait_for("chat.postMessage", lambda p: "Review helpdesk" in blocks_text(p),
                               timeout=TIMEOUT)[0].params
    assert "When do you open?" in blocks_text(listed) and "At nine" in blocks_text(listed)
    buttons = [e for block in listed["blocks"] if block["type"] == "actions"
               for e in block["elements"]]
    labels = [b["text"]["text"] for b in buttons]
    assert [label.split(" #")[0] for label in labels] == ["Approve", "Edit", "Reject"]
    assert engine.curation.training_pairs(model_id) == []

    press(rig, "approve 1", user="U1")  # not an admin: refused, nothing approved
    rig.fake.wait_for("chat.postEphemeral", lambda p: "admin" in blocks_text(p),
                      timeout=TIMEOUT)
    press(rig, buttons[0]["value"])
    rig.fake.wait_for("chat.postMessage", lambda p: "Approved #" in blocks_text(p),
                      timeout=TIMEOUT)
    [pair] = engine.curation.training_pairs(model_id)
    assert (pair.question, pair.answer, pair.approved_by) == (
        "When do you open?", "At nine, Monday to Friday.", "slack:T1:UADMIN")
