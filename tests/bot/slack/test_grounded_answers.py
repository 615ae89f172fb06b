"""A grounded answer in Slack, through the real Bolt app and the fake Slack Web API: the
entry it came from in a context block under the answer; a decline with the handoff text."""

from __future__ import annotations

import pytest

from engine.settings import Settings
from tests.bot.slack.test_app import TIMEOUT, deploy_tiny, message_event
from tests.helpers.knowledge import sample_rows
from tests.helpers.slack import SlackRig, blocks_text, start_rig


@pytest.fixture
def settings(home) -> Settings:
    return Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        default_base="tiny", max_new_tokens=8, slack_bot_token="xoxb-test")


@pytest.fixture
def rig(engine, settings, admin) -> SlackRig:
    tiny = engine.catalog.resolve(admin, "tiny")
    engine.knowledge.index_examples(tiny.id, None, "faq.csv", sample_rows())
    engine.knowledge.set_handoff(tiny.id, "ask @support-team in #help")
    rig = start_rig(engine, settings)
    yield rig
    rig.close()


def final_text(rig: SlackRig, ts: str) -> str:
    """Everything the user reads in the answer to message `ts` once its stream stopped: the
    streamed text and the blocks it stopped with."""
    started = [c for c in rig.fake.calls("chat.startStream") if c.params.get("thread_ts") == ts]
    message = rig.fake.message(started[-1].params["channel"], started[-1].result["ts"])
    return blocks_text(message)


def test_an_answer_shows_its_source_and_an_off_topic_question_is_handed_off(
        rig: SlackRig) -> None:
    deploy_tiny(rig, "C5")
    asked = {"5.000100": "I forgot my login password. What now?",
             "5.000200": "What is the capital of Australia?"}
    for n, (ts, text) in enumerate(asked.items()):
        rig.send.event(message_event(text, ts=ts, channel="C5"), event_id=f"EvG{n}")
    rig.fake.wait_for("chat.stopStream", count=len(asked), timeout=TIMEOUT)
    rig.drain()  # every answer finished streaming
    answered, declined = (final_text(rig, ts) for ts in asked)
    assert "from faq.csv, row 3: How do I reset my password?" in answered
    assert "I can't answer that from my files. ask @support-team in #help" in declined
    assert "from faq.csv" not in declined


def test_a_document_dropped_with_docs_goes_to_the_docs_command(rig: SlackRig) -> None:
    file = rig.fake.add_file("about.md", b"# About\n\nAcme is in Lisbon.\n")
    rig.send.event(message_event("<@UBOT> docs tiny", ts="6.000100", channel="C6",
                                 kind="app_mention", files=[file]), event_id="EvG3")
    reply = rig.fake.wait_for("chat.postEphemeral", timeout=TIMEOUT)[0].params
    # routed to `docs` (not answered as a chat turn): tiny belongs to the console's workspace
    assert "Only the owner of 'tiny' or an admin of its workspace can add documents" in (
        blocks_text(reply))
