"""The Slack app end to end: the real Bolt app served over HTTP, signed requests posted to
POST /slack/events, a fake Slack Web API on 127.0.0.1 that records what the bot sent."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import pytest

from bot.slack.render import escape
from engine.identity import Caller
from engine.settings import Settings
from engine.views import Origin
from tests.helpers.slack import SlackRig, blocks_text, start_rig

FAQ = "question,answer\n" + "\n".join(
    f"What is fact number {i}?,Fact number {i} is that the shop opens at {i} o'clock."
    for i in range(1, 13)) + "\n"
BAD_FAQ = "title,body\nhello,world\n"
TIMEOUT = 240.0  # a deadline for waits, not a speed assertion


@pytest.fixture
def settings(home) -> Settings:  # overrides conftest's: one tune per user per hour
    return Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        default_base="tiny", tune_rate_per_hour=1, max_new_tokens=24,
        slack_bot_token="xoxb-test")


@pytest.fixture
def rig(engine, settings) -> SlackRig:
    rig = start_rig(engine, settings)
    yield rig
    rig.close()


def message_event(text: str, *, ts: str, channel: str = "C1", user: str = "U1",
                  channel_type: str = "channel", thread_ts: str = "", files: list | None = None,
                  kind: str = "message") -> dict[str, Any]:
    event = {"type": kind, "channel": channel, "user": user, "text": text, "ts": ts,
             "event_ts": ts, "channel_type": channel_type, "team": "T1"}
    if kind == "app_mention":
        event.pop("channel_type")
    if thread_ts:
        event["thread_ts"] = thread_ts
    if files:
        event["files"] = files
        event["subtype"] = "file_share"
    return event


def wait_job_end(rig: SlackRig) -> dict[str, Any]:
    ended = rig.fake.wait_for("chat.postMessage", lambda p: "finished" in blocks_text(p)
                              or "failed" in blocks_text(p), timeout=TIMEOUT)[0].params
    assert "finished" in blocks_text(ended), blocks_text(ended)
    return ended


def assert_job_reported(rig: SlackRig, *, thread_ts: str | None = None) -> None:
    """One status message, edited, then metrics + loss plot + Deploy/Publish in its thread."""
    status = rig.fake.wait_for("chat.postMessage", lambda p: "Job " in p.get("text", ""))[0]
    if thread_ts is not None:
        assert status.params.get("thread_ts") == thread_ts
    ended = wait_job_end(rig)
    statuses = [c for c in rig.fake.calls("chat.postMessage")
                if "Job " in c.params.get("text", "") and "finished" not in blocks_text(c.params)]
    assert len(statuses) == 1
    posted_ts = statuses[0].result["ts"]
    edits = rig.fake.calls("chat.update")
    assert edits and all(e.params["ts"] == posted_ts for e in edits)
    assert any("succeeded" in e.params.get("text", "") for e in edits)
    assert ended["thread_ts"] == (thread_ts or posted_ts)
    buttons = [b for block in ended["blocks"] if block["type"] == "actions"
               for b in block["elements"]]
    assert [b["value"].split()[0] for b in buttons] == ["deploy", "publish"]
    assert any("Token F1" in json.dumps(block) for block in ended["blocks"])
    upload = rig.fake.wait_for("files.completeUploadExternal")[0].params
    assert upload["thread_ts"] == ended["thread_ts"]
    assert any(data.startswith(b"\x89PNG") for data in rig.fake.uploads().values())


def test_search_is_acknowledged_and_answered_with_a_block_kit_list(rig: SlackRig) -> None:
    status, body = rig.send.command("search tiny")
    assert status == 200 and body == b""
    posted = rig.fake.wait_for("chat.postMessage")[0].params
    assert posted["channel"] == "C1"
    header = posted["blocks"][0]
    assert header["type"] == "header" and "Search" in header["text"]["text"]
    fields = [f["text"] for b in posted["blocks"] if b["type"] == "section"
              for f in b.get("fields", [])]
    assert any(f.startswith("*tiny*") for f in fields)


def test_a_bad_signature_is_refused_with_401_and_nothing_happens(rig: SlackRig) -> None:
    status, _ = rig.send.command("search tiny", signature="v0=" + "0" * 64)
    assert status == 401
    status, _ = rig.send.command("help")  # a good request afterwards is served
    assert status == 200
    rig.fake.wait_for("chat.postEphemeral")
    rig.drain()
    assert rig.fake.calls("chat.postMessage") == []
    assert len(rig.fake.calls("chat.postEphemeral")) >= 1


@pytest.mark.parametrize("text, user, expected", [
    ("info nosuch-model", "U1", "nosuch-model"),
    ("deploy tiny", "U1", "Only a workspace admin"),
    ("frobnicate", "U1", "There is no command"),
])
def test_user_errors_come_back_ephemeral(rig: SlackRig, text: str, user: str,
                                          expected: str) -> None:
    rig.send.command(text, user=user)
    note = rig.fake.wait_for("chat.postEphemeral")[0].params
    assert note["user"] == user and expected in note["text"]
    rig.drain()
    assert rig.fake.calls("chat.postMessage") == []


def test_tune_modal_starts_a_job_that_reports_in_a_thread(rig: SlackRig, engine) -> None:
    rig.send.command("tune acme epochs=1", trigger_id="TRIG42")
    opened = rig.fake.wait_for("views.open")[0].params
    assert opened["trigger_id"] == "TRIG42"
    view = opened["view"]
    blocks = {b["block_id"]: b for b in view["blocks"]}
    assert blocks["name"]["element"]["initial_value"] == "acme"
    assert blocks["epochs"]["element"]["initial_value"] == "1"
    assert blocks["file"]["element"]["type"] == "file_input"
    file = rig.fake.add_file("faq.csv", FAQ.encode())
    values = {"name": {"value": {"type": "plain_text_input", "value": "acme"}},
              "base": {"value": {"type": "plain_text_input", "value": None}},
              "epochs": {"value": {"type": "number_input", "value": "1"}},
              "lr": {"value": {"type": "number_input", "value": None}},
              "batch_size": {"value": {"type": "number_input", "value": "4"}},
              "file": {"value": {"type": "file_input", "files": [{"id": file["id"]}]}}}
    status, _ = rig.send.interaction({
        "type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1", "team_id": "T1"},
        "api_app_id": "A1", "trigger_id": "T2",
        "view": {**view, "id": "V1", "team_id": "T1", "state": {"values": values}}})
    assert status == 200
    assert_job_reported(rig)
    assert rig.fake.calls("files.info")[0].params["file"] == file["id"]
    assert rig.fake.calls("files.download")[0].authorization == "Bearer xoxb-test"
    caller = Caller("slack", "slack:T1", "slack:T1:U1", channel="C1")
    assert engine.catalog.card(caller, "acme").live_version == 1


def test_modal_errors_are_shown_next_to_the_fields(rig: SlackRig) -> None:
    values = {"name": {"value": {"type": "plain_text_input", "value": "two words"}},
              "epochs": {"value": {"type": "number_input", "value": "0"}},
              "file": {"value": {"type": "file_input", "files": []}}}
    status, body = rig.send.interaction({
        "type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1"},
        "view": {"id": "V9", "type": "modal", "callback_id": "store_tune", "private_metadata": "{}",
                 "state": {"values": values}}})
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"name", "epochs", "file"}


def test_file_dropped_in_a_dm_tunes_once_despite_retries_and_duplicates(rig: SlackRig,
                                                                       engine) -> None:
    file = rig.fake.add_file("Shop FAQ.csv", FAQ.encode())
    event = message_event("tune shop epochs=1", ts="1.000100", channel="D1",
                          channel_type="im", files=[file])
    assert rig.send.event(event, event_id="Ev1")[0] == 200
    assert rig.send.event(event, event_id="Ev1", retry=1)[0] == 200  # Slack's retry
    assert_job_reported(rig, thread_ts="1.000100")
    # A second tune by the same user within the hour is refused: busy, said only to them.
    again = message_event("tune shop2", ts="1.000200", channel="D1", channel_type="im",
                          files=[file])
    rig.send.event(again, event_id="Ev2")
    note = rig.fake.wait_for("chat.postEphemeral")[0].params
    assert "try again" in note["text"]
    rig.drain()
    owner = Caller("slack", "slack:T1", "slack:T1:U1", channel="D1", is_admin=True)
    assert len(engine.jobs.list(owner)) == 1


@pytest.mark.parametrize("content, login_page, expected", [
    (BAD_FAQ, False, "question"),
    (FAQ, True, "files:read"),
])
def test_a_file_that_cannot_be_used_is_explained_privately(rig: SlackRig, engine, content: str,
                                                           login_page: bool, expected: str,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    caplog.set_level(logging.DEBUG)
    file = rig.fake.add_file("faq.csv", content.encode(), login_page=login_page)
    rig.send.event(message_event("<@UBOT> tune acme", ts="1.000300", files=[file]),
                   event_id="Ev3")
    note = rig.fake.wait_for("chat.postEphemeral")[0].params
    assert expected in note["text"] and note["user"] == "U1"
    rig.drain()
    owner = Caller("slack", "slack:T1", "slack:T1:U1", channel="C1", is_admin=True)
    assert engine.jobs.list(owner) == []
    assert "xoxb" not in json.dumps([c.params for c in rig.fake.calls()])
    assert "xoxb-test" not in caplog.text


def deploy_tiny(rig: SlackRig, channel: str) -> None:
    rig.send.command("deploy tiny", user="UADMIN", channel=channel)
    rig.fake.wait_for("chat.postMessage", lambda p: p["channel"] == channel)


def logged_answer(engine, channel: str, thread: str, user: str = "U1") -> str:
    caller = Caller("slack", "slack:T1", f"slack:T1:{user}", channel=channel, thread=thread)
    return [m for m in engine.chat.history_for(caller) if m["role"] == "assistant"][-1]["content"]


def test_chat_in_a_thread_streams_natively_and_uses_the_thread_as_context(rig: SlackRig,
                                                                          engine) -> None:
    deploy_tiny(rig, "C9")
    rig.fake.add_message("C9", "2.000100", "What is fact number 3?")
    rig.fake.add_message("C9", "2.000200", "It opens at 3.", thread_ts="2.000100", bot=True)
    rig.fake.add_message("C9", "2.000300", "And on Sundays?", thread_ts="2.000100")
    rig.send.event(message_event("And on Sundays?", ts="2.000300", channel="C9",
                                 thread_ts="2.000100"), event_id="Ev4")
    replies = rig.fake.wait_for("conversations.replies")[0].params
    assert replies["channel"] == "C9" and replies["ts"] == "2.000100"
    rig.fake.wait_for("chat.stopStream", timeout=TIMEOUT)
    rig.drain()
    started = rig.fake.calls("chat.startStream")
    assert len(started) == 1, "the answer is one streamed message"
    assert started[0].params["thread_ts"] == "2.000100"
    # Streaming in a channel names who it is for, as Slack requires.
    assert started[0].params["recipient_user_id"] == "U1"
    assert started[0].params["recipient_team_id"] == "T1"
    status = rig.fake.calls("assistant.threads.setStatus")[0].params
    assert status["thread_ts"] == "2.000100" and "thinking" in status["status"]
    assert [c for c in rig.fake.calls("chat.postMessage")
            if c.params.get("thread_ts") == "2.000100"] == []
    shown = rig.fake.message("C9", started[0].result["ts"])
    assert not shown["streaming"]
    assert shown["text"] == escape(logged_answer(engine, "C9", "2.000100").strip())


def test_a_mention_delivered_twice_is_answered_once_and_a_reaction_is_feedback(
        rig: SlackRig, engine) -> None:
    deploy_tiny(rig, "C9")
    text = "<@UBOT> hello there"
    rig.send.event(message_event(text, ts="3.000100", channel="C9", kind="app_mention"),
                   event_id="Ev5")
    rig.send.event(message_event(text, ts="3.000100", channel="C9"), event_id="Ev6")
    rig.fake.wait_for("chat.stopStream", timeout=TIMEOUT)
    answer_ts = rig.fake.wait_for("chat.startStream")[0].result["ts"]
    reaction = {"type": "reaction_added", "user": "U2", "reaction": "+1", "item_user": "UBOT",
                "item": {"type": "message", "channel": "C9", "ts": answer_ts},
                "event_ts": "3.000500"}
    rig.send.event(reaction, event_id="Ev7")
    rig.send.event(reaction, event_id="Ev7", retry=1)
    thanks = rig.fake.wait_for("chat.postEphemeral", timeout=TIMEOUT)[0].params
    assert thanks["user"] == "U2" and "Thanks" in thanks["text"]
    rig.drain()
    assert len(rig.fake.calls("chat.startStream")) == 1
    card = engine.catalog.card(Caller("slack", "slack:T1", "slack:T1:U2", channel="C9"), "tiny")
    assert card.rating_up == 1


def test_plain_messages_in_a_channel_without_a_deployment_are_ignored(rig: SlackRig) -> None:
    rig.send.event(message_event("just talking", ts="4.000100", channel="C5"), event_id="Ev8")
    rig.send.command("help", channel="C5")  # something that does answer, as a barrier
    rig.fake.wait_for("chat.postEphemeral")
    rig.drain()
    assert [c.method for c in rig.fake.calls() if c.method.startswith("chat.")] == \
        ["chat.postEphemeral"]


def test_a_button_runs_its_command_in_the_thread(rig: SlackRig) -> None:
    rig.send.interaction({
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U1", "team_id": "T1"},
        "api_app_id": "A1", "trigger_id": "T3", "channel": {"id": "C1"},
        "container": {"type": "message", "channel_id": "C1", "message_ts": "5.000100"},
        "message": {"ts": "5.000100", "text": "card"},
        "actions": [{"action_id": "store:0", "block_id": "store_buttons", "type": "button",
                     "value": "info tiny", "action_ts": "5.1"}]})
    posted = rig.fake.wait_for("chat.postMessage")[0].params
    assert posted["thread_ts"] == "5.000100" and "tiny" in blocks_text(posted)


def test_a_scheduled_retrain_is_announced_where_its_schedule_was_set(rig: SlackRig,
                                                                     engine) -> None:
    from slack_sdk import WebClient

    from bot.core.progress import JobWatcher
    from bot.slack.app import slack_announcer

    client = WebClient(token="xoxb-test", base_url=rig.fake.api_url)
    announcer = slack_announcer(engine, client, watcher=JobWatcher(engine, poll_s=0.05,
                                                                   min_interval_s=0.0))
    origin = Origin(platform="slack", channel="C9", thread="111.222", scheduled=True)
    # A retrain of a model that has no live version fails at once: enough to see the report.
    job = engine.jobs.submit("retrain", "tiny", owner="slack:T1:UADMIN", workspace="slack:T1",
                             params={"new_pairs": 12}, origin=origin)
    engine.jobs.submit("retrain", "tiny", owner="slack:T1:UADMIN", workspace="slack:T1",
                       origin=replace(origin, platform="discord"))  # not Slack's to announce
    assert announcer.poll_once() == [job.id]
    assert announcer.poll_once() == []  # announced once, also across processes
    opening = rig.fake.wait_for("chat.postMessage", lambda p: "scheduled retrain" in
                                blocks_text(p))[0]
    assert opening.params["channel"] == "C9" and opening.params["thread_ts"] == "111.222"
    final = rig.fake.wait_for("chat.postMessage", lambda p: "failed" in blocks_text(p))[0]
    assert "Retraining tiny failed" in blocks_text(final.params)
