"""Reply -> Block Kit: Slack's size limits hold however long the reply is."""

from __future__ import annotations

from bot.core.reply import Button, Reply
from bot.slack.render import MESSAGE_LIMIT, SECTION_LIMIT, mrkdwn, render, split_text


def test_long_text_is_split_at_word_boundaries_under_the_limit() -> None:
    words = [f"word{i}" for i in range(3000)]
    pieces = split_text(" ".join(words), 1000)
    assert all(len(p) <= 1000 for p in pieces) and len(pieces) > 10
    assert " ".join(pieces).split() == words  # nothing lost, no word cut in two


def test_a_long_reply_becomes_several_messages_with_the_buttons_on_the_last() -> None:
    text = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 60 for i in range(30))
    reply = Reply(text=text, title="A very long card", fields=(("Base", "tiny"),),
                  buttons=(Button("Deploy", "deploy acme", "primary"),))
    messages = render(reply)
    assert len(messages) > 1
    for message in messages:
        assert len(message["text"]) <= MESSAGE_LIMIT
        for block in message["blocks"]:
            if block["type"] == "section" and "text" in block:
                assert len(block["text"]["text"]) <= SECTION_LIMIT
    assert messages[0]["blocks"][0]["type"] == "header"
    actions = [b for b in messages[-1]["blocks"] if b["type"] == "actions"]
    assert actions[0]["elements"][0]["value"] == "deploy acme"
    assert actions[0]["elements"][0]["style"] == "primary"
    assert not any(b["type"] == "actions" for m in messages[:-1] for b in m["blocks"])


def test_model_output_cannot_ping_the_channel_or_fake_a_link() -> None:
    assert mrkdwn("hi <!channel> <http://evil|click>") == \
        "hi &lt;!channel&gt; &lt;http://evil|click&gt;"
    assert mrkdwn("see **this** [docs](https://example.com)") == \
        "see *this* <https://example.com|docs>"


def test_feedback_buttons_name_the_answer_and_pass_slack_s_checks() -> None:
    from bot.slack.render import feedback_block, read_feedback
    from bot.slack.testing import validate_blocks

    block = feedback_block("42")
    assert validate_blocks([block]) == ""
    buttons = block["elements"][0]
    assert read_feedback(buttons["positive_button"]["value"], "1.2") == ("up", "42")
    assert read_feedback(buttons["negative_button"]["value"], "1.2") == ("down", "42")
    assert read_feedback("up|", "1.2") == ("up", "1.2")  # names the message it sits on
    assert validate_blocks([{"type": "context_actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "x"}}]}]) != ""
