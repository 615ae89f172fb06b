"""The agent surface in the app's Messages tab: suggested prompts when a thread opens (the
questions the workspace asks most, else the store's commands), a title from the first
question, and the same streamed answer with feedback buttons. Real Bolt over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from bot.slack.assistant import COMMAND_PROMPTS
from engine.identity import Caller
from engine.settings import Settings
from tests.helpers.slack import SlackRig, start_rig

TIMEOUT = 240.0  # a deadline for waits, not a speed assertion


@pytest.fixture
def settings(home) -> Settings:
    return Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        default_base="tiny", max_new_tokens=16, slack_bot_token="xoxb-test")


@pytest.fixture
def rig(engine, settings) -> SlackRig:
    rig = start_rig(engine, settings)
    yield rig
    rig.close()


def thread_started(thread_ts: str, *, user: str = "U1", channel: str = "D1") -> dict[str, Any]:
    return {"type": "assistant_thread_started", "event_ts": thread_ts,
            "assistant_thread": {"user_id": user, "channel_id": channel, "thread_ts": thread_ts,
                                 "context": {"channel_id": "C5", "team_id": "T1"}}}


def dm(text: str, *, ts: str, thread_ts: str, user: str = "U1") -> dict[str, Any]:
    return {"type": "message", "channel": "D1", "channel_type": "im", "user": user,
            "text": text, "ts": ts, "event_ts": ts, "thread_ts": thread_ts, "team": "T1"}


def test_a_new_thread_suggests_the_store_commands_when_nothing_was_asked(rig: SlackRig) -> None:
    rig.send.event(thread_started("8.000100"), event_id="Ev1")
    call = rig.fake.wait_for("assistant.threads.setSuggestedPrompts")[0].params
    assert call["channel_id"] == "D1" and call["thread_ts"] == "8.000100"
    assert [p["message"] for p in call["prompts"]] == [m for _, m in COMMAND_PROMPTS]


def test_a_new_thread_suggests_what_this_workspace_asks_most(rig: SlackRig, engine) -> None:
    asked = {"T1": ["When do you open?"] * 3 + ["Where is the shop?"] * 2 + ["Do you ship?"],
             "T2": ["A secret question of another workspace?"] * 5}
    for team, questions in asked.items():
        for question in questions:
            engine.chat.answer(Caller.for_slack(team, "U7", channel="D7"), None, question)
    rig.send.event(thread_started("8.000200"), event_id="Ev2")
    call = rig.fake.wait_for("assistant.threads.setSuggestedPrompts")[0].params
    assert [p["message"] for p in call["prompts"]] == [
        "When do you open?", "Where is the shop?", "Do you ship?"]


def test_the_first_question_titles_the_thread_and_is_streamed_with_buttons(rig: SlackRig,
                                                                            engine) -> None:
    rig.send.event(thread_started("8.000300"), event_id="Ev3")
    rig.send.event(dm("When do you open on Sundays?", ts="8.000301", thread_ts="8.000300"),
                   event_id="Ev4")
    title = rig.fake.wait_for("assistant.threads.setTitle", timeout=TIMEOUT)[0].params
    assert title == {**title, "channel_id": "D1", "thread_ts": "8.000300",
                     "title": "When do you open on Sundays?"}
    stop = rig.fake.wait_for("chat.stopStream", timeout=TIMEOUT)[0].params
    start = rig.fake.calls("chat.startStream")[0].params
    assert start["channel"] == "D1" and start["thread_ts"] == "8.000300"
    assert any(b["type"] == "context_actions" for b in stop["blocks"])
    status = rig.fake.calls("assistant.threads.setStatus")[0].params
    assert status["channel_id"] == "D1" and status["thread_ts"] == "8.000300"
    # A second question in the same thread is answered too, and keeps the title.
    rig.send.event(dm("And on Mondays?", ts="8.000302", thread_ts="8.000300"), event_id="Ev5")
    rig.fake.wait_for("chat.stopStream", count=2, timeout=TIMEOUT)
    rig.drain()
    assert len(rig.fake.calls("assistant.threads.setTitle")) == 1
    history = engine.chat.history_for(Caller.for_slack("T1", "U1", channel="D1",
                                                       thread="8.000300"))
    assert [m["content"] for m in history if m["role"] == "user"] == [
        "When do you open on Sundays?", "And on Mondays?"]
