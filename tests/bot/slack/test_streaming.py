"""Answers as Slack users see them today: a thinking status, native streaming, the footer and
👍/👎 feedback buttons when the stream stops, and the fall-back to edits where Slack refuses
native streaming. The real Bolt app over HTTP against the fake Slack Web API."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.core.reply import Reply
from bot.core.text import footer_lines
from bot.slack.post import Poster
from bot.slack.render import FEEDBACK_ACTION, MESSAGE_LIMIT
from bot.slack.stream import NativeAnswer
from bot.slack.testing import FakeSlack, validate_blocks
from engine.identity import Caller
from engine.settings import Settings
from engine.views import Source
from tests.helpers.slack import SlackRig, start_rig

TIMEOUT = 240.0  # a deadline for waits, not a speed assertion


@pytest.fixture
def settings(home) -> Settings:
    return Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        default_base="tiny", max_new_tokens=24, slack_bot_token="xoxb-test")


@pytest.fixture
def rig(engine, settings) -> SlackRig:
    rig = start_rig(engine, settings)
    yield rig
    rig.close()


def mention(text: str, *, ts: str, channel: str = "C5", user: str = "U1") -> dict[str, Any]:
    return {"type": "app_mention", "channel": channel, "user": user, "text": f"<@UBOT> {text}",
            "ts": ts, "event_ts": ts, "team": "T1"}


def feedback_buttons(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    found = [e for b in blocks if b["type"] == "context_actions" for e in b["elements"]
             if e["type"] == "feedback_buttons"]
    assert len(found) == 1, blocks
    return found[0]


def context_text(blocks: list[dict[str, Any]]) -> str:
    return " ".join(e["text"] for b in blocks if b["type"] == "context" for e in b["elements"])


def click(rig: SlackRig, button: dict[str, Any], *, user: str, channel: str,
          message_ts: str, thread_ts: str) -> None:
    rig.send.interaction({
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": user, "team_id": "T1"},
        "api_app_id": "A1", "trigger_id": "T9", "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel, "message_ts": message_ts},
        "message": {"ts": message_ts, "thread_ts": thread_ts, "text": "answer"},
        "actions": [{"action_id": FEEDBACK_ACTION, "block_id": "store_feedback",
                     "type": "feedback_buttons", "value": button["value"], "action_ts": "9.1"}]})


def rating(engine, user: str = "U9") -> tuple[int, int]:
    card = engine.catalog.card(Caller("slack", "slack:T1", f"slack:T1:{user}", channel="C5"),
                               "tiny")
    return card.rating_up, card.rating_down


def test_a_mention_with_nothing_deployed_streams_an_answer_with_footer_and_buttons(
        rig: SlackRig, engine) -> None:
    rig.send.event(mention("hello there", ts="6.000100"), event_id="Ev1")
    stop = rig.fake.wait_for("chat.stopStream", timeout=TIMEOUT)[0]
    rig.drain()
    calls = [c.method for c in rig.fake.calls()]
    # The status comes first, then the stream; nothing is posted or edited the old way.
    assert calls.index("assistant.threads.setStatus") < calls.index("chat.startStream")
    assert "chat.update" not in calls and "chat.postMessage" not in calls
    blocks = stop.params["blocks"]
    assert validate_blocks(blocks) == ""
    # Who answered and how to pick another, although no model is deployed in C5.
    assert "Answered by tiny" in context_text(blocks)
    assert "/store deploy MODEL" in context_text(blocks)
    buttons = feedback_buttons(blocks)
    # They vote on the logged answer (its id in the store), whatever message they sit on.
    kind, _, ref = buttons["positive_button"]["value"].partition("|")
    assert kind == "up" and ref.isdigit()
    assert buttons["negative_button"]["value"] == f"down|{ref}"


@pytest.mark.parametrize("side, expected, hint", [
    ("positive_button", (1, 0), False), ("negative_button", (0, 1), True)])
def test_a_feedback_button_records_a_vote_as_a_reaction_does(rig: SlackRig, engine, side: str,
                                                            expected: tuple[int, int],
                                                            hint: bool) -> None:
    rig.send.event(mention("hello there", ts="6.000200"), event_id="Ev2")
    stop = rig.fake.wait_for("chat.stopStream", timeout=TIMEOUT)[0]
    answer_ts = stop.params["ts"]
    button = feedback_buttons(stop.params["blocks"])[side]
    click(rig, button, user="U9", channel="C5", message_ts=answer_ts, thread_ts="6.000200")
    thanks = rig.fake.wait_for("chat.postEphemeral", timeout=TIMEOUT)[0].params
    assert thanks["user"] == "U9" and "Thanks" in thanks["text"]
    assert ("/store correct" in thanks["text"]) is hint
    assert thanks["thread_ts"] == "6.000200"
    assert rating(engine) == expected
    # Clicking again keeps one vote per person.
    click(rig, button, user="U9", channel="C5", message_ts=answer_ts, thread_ts="6.000200")
    rig.fake.wait_for("chat.postEphemeral", count=2, timeout=TIMEOUT)
    rig.drain()
    assert rating(engine) == expected


@pytest.mark.parametrize("refusal", ["not_allowed", "missing_scope", "unknown_method"])
def test_where_native_streaming_is_refused_the_answer_streams_by_edits(
        engine, settings, refusal: str) -> None:
    rig = start_rig(engine, settings)
    try:
        rig.fake.fail("chat.startStream", refusal)
        rig.fake.fail("assistant.threads.setStatus", "missing_scope")
        rig.send.event(mention("hello there", ts="6.000300"), event_id="Ev3")
        final = rig.fake.wait_for("chat.update", lambda p: "blocks" in p and any(
            b["type"] == "context_actions" for b in p["blocks"]), timeout=TIMEOUT)[0]
        posted = [c for c in rig.fake.calls("chat.postMessage")
                  if c.params.get("thread_ts") == "6.000300"]
        assert len(posted) == 1, "one message, edited"
        assert final.params["ts"] == posted[0].result["ts"]
        assert validate_blocks(final.params["blocks"]) == ""
        assert "Answered by tiny" in context_text(final.params["blocks"])
        assert rig.fake.wait_answer("C5", "6.000300") == final.params["text"]
        button = feedback_buttons(final.params["blocks"])["positive_button"]
        click(rig, button, user="U9", channel="C5", message_ts=final.params["ts"],
              thread_ts="6.000300")
        rig.fake.wait_for("chat.postEphemeral", timeout=TIMEOUT)
        rig.drain()
        assert rating(engine) == (1, 0)
    finally:
        rig.close()


def test_when_the_streamed_message_cannot_be_edited_the_answer_is_posted_anew(
        engine, settings) -> None:
    rig = start_rig(engine, settings)
    try:
        rig.fake.fail("chat.startStream", "not_allowed")
        rig.fake.fail("chat.update", "cant_update_message")
        rig.send.event(mention("hello there", ts="6.000400"), event_id="Ev4")
        rig.fake.wait_for("chat.postMessage", lambda p: any(
            b["type"] == "context_actions" for b in p.get("blocks") or []), timeout=TIMEOUT)
        final = [c for c in rig.fake.calls("chat.postMessage") if c.params.get("blocks")][-1]
        button = feedback_buttons(final.params["blocks"])["positive_button"]
        click(rig, button, user="U9", channel="C5", message_ts=final.result["ts"],
              thread_ts="6.000400")
        rig.fake.wait_for("chat.postEphemeral", timeout=TIMEOUT)
        rig.drain()
        assert rating(engine) == (1, 0)
        assert not any("Something went wrong" in c.params.get("text", "")
                       for c in rig.fake.calls("chat.postEphemeral"))
    finally:
        rig.close()


def test_native_streaming_can_be_switched_off(engine, settings) -> None:
    from bot.core.progress import JobWatcher
    from bot.slack.app import SlackHTTPServer, build_slack_app
    from bot.slack.testing import SignedSender

    with FakeSlack(token="xoxb-test") as fake:
        executor = ThreadPoolExecutor(max_workers=4)
        app = build_slack_app(engine, settings.with_(slack_signing_secret="s"),
                              WebClient(token="xoxb-test", base_url=fake.api_url),
                              watcher=JobWatcher(engine), executor=executor,
                              stream_interval_s=0.0, native_streaming=False)
        server = SlackHTTPServer(app, host="127.0.0.1", port=0)
        server.start()
        try:
            SignedSender(server.url, "s").event(mention("hello", ts="6.000500"), event_id="E5")
            assert fake.wait_answer("C5", "6.000500", timeout=TIMEOUT)
            executor.shutdown(wait=True)
            assert fake.calls("chat.startStream") == []
        finally:
            server.stop()


# -- the streamed message itself, over real HTTP but without Bolt -----------------------------
@pytest.fixture
def fake() -> FakeSlack:
    with FakeSlack(token="xoxb-test") as fake:
        yield fake


def stream_answer(fake: FakeSlack, pieces: list[str], final: str, footer: list[str],
                  channel: str = "C1") -> tuple[NativeAnswer, str]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = NativeAnswer(Poster(WebClient(token="xoxb-test", base_url=fake.api_url)), pool,
                              channel=channel, thread_ts="7.000100", user="U1", team="T1",
                              min_interval_s=0.0)
        for piece in pieces:
            answer.on_token(piece)
        ts = answer.finish(final, footer)
    return answer, ts


def test_a_long_answer_is_split_and_its_last_part_carries_sources_and_buttons(
        fake: FakeSlack) -> None:
    words = [f"word{i} " for i in range(2000)]  # about 17,000 characters
    text = "".join(words).strip()
    reply = Reply(text=text, note="Answered by acme v2 (this channel's model).",
                  sources=(Source(ref="faq#3", question="When do you open?", text="At 9.",
                                  score=0.9),))
    answer, ts = stream_answer(fake, words, text, footer_lines(reply))
    assert answer.mode == "native"
    streamed = fake.message("C1", ts)
    assert len(streamed["text"]) <= MESSAGE_LIMIT and not streamed["streaming"]
    rest = fake.calls("chat.postMessage")
    assert len(rest) >= 4
    shown = streamed["text"] + "".join(" " + c.params["text"] for c in rest)
    assert shown.split() == text.split(), "every word once, in order, none cut"
    assert all(c.params["blocks"][0]["type"] == "markdown" for c in rest)
    last = rest[-1].params["blocks"]
    assert "from faq#3: When do you open?" in context_text(last)
    assert feedback_buttons(last)["positive_button"]["value"] == f"up|{ts}"
    assert all(validate_blocks(c.params["blocks"]) == "" for c in rest)


def test_a_final_text_that_differs_from_what_streamed_replaces_it(fake: FakeSlack) -> None:
    answer, ts = stream_answer(fake, ["I think ", "the shop"],
                               "I don't know that; ask the front desk.", ["Answered by acme."])
    assert answer.mode == "native"
    edit = fake.calls("chat.update")[-1].params
    assert edit["ts"] == ts and edit["text"] == "I don't know that; ask the front desk."
    assert fake.message("C1", ts)["text"] == "I don't know that; ask the front desk."
    assert feedback_buttons(edit["blocks"])


def test_model_output_cannot_ping_the_channel_through_a_stream(fake: FakeSlack) -> None:
    answer, ts = stream_answer(fake, ["Hi <!channel> ", "and <@U2>"], "Hi <!channel> and <@U2>",
                               [])
    shown = json.dumps(fake.message("C1", ts))
    assert "<!channel>" not in shown and "<@U2>" not in shown
    assert "&lt;!channel&gt;" in fake.message("C1", ts)["text"]
