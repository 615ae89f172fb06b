"""Socket Mode end to end: `gptstore serve --slack` with SLACK_APP_TOKEN, the real slack-sdk
Socket Mode client and Bolt app against a fake Socket Mode WebSocket (apps.connections.open,
hello, envelopes and acks) and the fake Web API; a dropped connection and a refresh request
are reconnected and the next messages are answered."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from bot.slack.app import serve
from bot.slack.testing import FakeSlack
from bot.slack.testing_socket import FakeSocketMode
from tests.helpers.slack import blocks_text

TIMEOUT = 240.0  # a deadline for waits, not a speed assertion


@pytest.fixture
def slack(engine, settings):
    with FakeSlack(token="xoxb-test", admins=("UADMIN",)) as fake, \
            FakeSocketMode(fake) as socket:
        stop, ready = threading.Event(), threading.Event()
        served = settings.with_(default_base="tiny", max_new_tokens=12,
                                slack_bot_token="xoxb-test", slack_app_token=fake.app_token,
                                slack_signing_secret=None, slack_api_url=fake.api_url)
        thread = threading.Thread(target=serve, args=(engine, served),
                                  kwargs={"stop": stop, "ready": lambda urls: ready.set()},
                                  daemon=True)
        thread.start()
        assert ready.wait(60)
        socket.wait_connected(1)
        yield fake, socket
        stop.set()
        thread.join(timeout=30)


def event_body(event: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {"token": "unused", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
            "event_id": event_id, "event_time": 1, "event": event,
            "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}]}


def mention(ts: str, text: str = "hello") -> dict[str, Any]:
    return {"type": "app_mention", "channel": "C1", "user": "U1", "text": f"<@UBOT> {text}",
            "ts": ts, "event_ts": ts, "team": "T1"}


def command(text: str) -> dict[str, Any]:
    return {"token": "unused", "team_id": "T1", "team_domain": "test", "channel_id": "C1",
            "channel_name": "general", "user_id": "U1", "user_name": "u1", "command": "/store",
            "text": text, "api_app_id": "A1", "response_url": "", "trigger_id": "TRIG"}


def test_commands_and_mentions_arrive_over_the_socket_and_are_acked(slack) -> None:
    fake, socket = slack
    assert [c.authorization for c in fake.calls("apps.connections.open")] == \
        [f"Bearer {fake.app_token}"]
    envelope = socket.push("slash_commands", command("search tiny"))
    assert socket.wait_ack(envelope)["envelope_id"] == envelope
    posted = fake.wait_for("chat.postMessage", timeout=TIMEOUT)[0].params
    assert "tiny" in blocks_text(posted)
    mentioned = socket.push("events_api", event_body(mention("1.000100"), "Ev1"))
    socket.wait_ack(mentioned)
    stop = fake.wait_for("chat.stopStream", timeout=TIMEOUT)[0].params
    assert any(b["type"] == "context_actions" for b in stop["blocks"])
    # Slack sends the same envelope again when it missed the ack: answered once.
    socket.wait_ack(socket.push("events_api", event_body(mention("1.000100"), "Ev1"),
                                retry_attempt=1))
    socket.wait_ack(socket.push("slash_commands", command("help")))  # a barrier
    fake.wait_for("chat.postEphemeral", timeout=TIMEOUT)
    assert len(fake.calls("chat.startStream")) == 1


@pytest.mark.parametrize("how", ["drop", "refresh"])
def test_after_a_lost_or_refreshed_connection_it_reconnects_and_answers(slack, how: str) -> None:
    fake, socket = slack
    getattr(socket, how)()
    socket.wait_connected(2)
    assert len(fake.calls("apps.connections.open")) >= 2  # a fresh URL for each connection
    envelope = socket.push("events_api", event_body(mention("2.000100", "are you back?"),
                                                    "Ev2"))
    socket.wait_ack(envelope, timeout=TIMEOUT)
    stop = fake.wait_for("chat.stopStream", timeout=TIMEOUT)[0].params
    assert fake.message("C1", stop["ts"])["thread_ts"] == "2.000100"


def test_a_button_and_a_file_in_a_dm_work_over_the_socket_as_over_http(slack) -> None:
    """The interactive and file paths of HTTP mode, through Socket Mode envelopes: a card's
    button runs its command in the message's thread; a Q&A file dropped in a DM starts a
    tune that reports in the file's thread."""
    from tests.bot.slack.test_app import FAQ, message_event

    fake, socket = slack
    pressed = socket.push("interactive", {
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U1", "team_id": "T1"},
        "api_app_id": "A1", "trigger_id": "T3", "channel": {"id": "C1"},
        "container": {"type": "message", "channel_id": "C1", "message_ts": "5.000100"},
        "message": {"ts": "5.000100", "text": "card"},
        "actions": [{"action_id": "store:0", "block_id": "store_buttons", "type": "button",
                     "value": "info tiny", "action_ts": "5.1"}]})
    socket.wait_ack(pressed)
    posted = fake.wait_for("chat.postMessage", lambda p: p.get("thread_ts") == "5.000100",
                           timeout=TIMEOUT)[0].params
    assert "tiny" in blocks_text(posted)
    file = fake.add_file("Shop FAQ.csv", FAQ.encode())
    dropped = socket.push("events_api", event_body(message_event(
        "tune shop epochs=1", ts="7.000100", channel="D1", channel_type="im", files=[file]),
        "Ev7"))
    socket.wait_ack(dropped)
    status = fake.wait_for("chat.postMessage", lambda p: "Job " in p.get("text", "")
                           and p.get("thread_ts") == "7.000100", timeout=TIMEOUT)[0]
    assert "shop" in status.params["text"]


def test_a_reaction_on_an_answer_is_feedback_over_the_socket(slack, engine) -> None:
    from engine.identity import Caller

    fake, socket = slack
    socket.wait_ack(socket.push("events_api", event_body(mention("8.000100"), "Ev8")))
    fake.wait_for("chat.stopStream", timeout=TIMEOUT)
    answer_ts = fake.wait_for("chat.startStream")[0].result["ts"]
    reaction = {"type": "reaction_added", "user": "U2", "reaction": "+1", "item_user": "UBOT",
                "item": {"type": "message", "channel": "C1", "ts": answer_ts},
                "event_ts": "8.000500"}
    socket.wait_ack(socket.push("events_api", event_body(reaction, "Ev9")))
    thanks = fake.wait_for("chat.postEphemeral", timeout=TIMEOUT)[0].params
    assert thanks["user"] == "U2" and "Thanks" in thanks["text"]
    card = engine.catalog.card(Caller("slack", "slack:T1", "slack:T1:U2", channel="C1"), "tiny")
    assert card.rating_up == 1


def test_the_tune_form_opens_and_submits_over_the_socket(slack) -> None:
    from tests.bot.slack.test_app import FAQ

    fake, socket = slack
    cmd = dict(command("tune acme epochs=1"), trigger_id="TRIG42")
    socket.wait_ack(socket.push("slash_commands", cmd))
    view = fake.wait_for("views.open", timeout=TIMEOUT)[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    file = fake.add_file("faq.csv", FAQ.encode())
    values = {"name": {"value": {"type": "plain_text_input", "value": "acme"}},
              "base": {"value": {"type": "plain_text_input", "value": None}},
              "epochs": {"value": {"type": "number_input", "value": "1"}},
              "lr": {"value": {"type": "number_input", "value": None}},
              "batch_size": {"value": {"type": "number_input", "value": "4"}},
              "file": {"value": {"type": "file_input", "files": [{"id": file["id"]}]}}}
    submitted = socket.push("interactive", {
        "type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1", "team_id": "T1"},
        "api_app_id": "A1", "trigger_id": "T2",
        "view": {**view, "id": "V1", "team_id": "T1", "state": {"values": values}}})
    socket.wait_ack(submitted)
    status = fake.wait_for("chat.postMessage", lambda p: "Job " in p.get("text", ""),
                           timeout=TIMEOUT)[0]
    assert "acme" in status.params["text"]
    assert fake.calls("files.info")[0].params["file"] == file["id"]
