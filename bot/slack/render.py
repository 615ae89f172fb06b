"""Reply -> Slack messages: Block Kit blocks within Slack's size limits.

A message is safest under about 4,000 characters and a section's text must stay under
3,000, so long text is split on paragraph, line or word boundaries, never mid-word when a
boundary exists. Buttons carry the command text they run as their value.
"""

from __future__ import annotations

import re
from typing import Any

from bot.core.reply import Reply
from bot.core.text import split_text as split_pieces

MESSAGE_LIMIT = 3900  # characters of text per message
SECTION_LIMIT = 2900  # characters of one section block's text
HEADER_LIMIT = 150
FIELD_LIMIT = 1900
BUTTON_LABEL_LIMIT = 75
ACTION_PREFIX = "store:"  # action_id of every command button: "store:0", "store:1", ...
FEEDBACK_ACTION = "store_feedback"  # action_id of an answer's 👍/👎 feedback_buttons
MARKDOWN_LIMIT = 12000  # characters of all markdown blocks in one message

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s<>|]+)\)")  # no <>| : they would end the link


def escape(text: str) -> str:
    """Slack's three control characters, so model output cannot ping @channel or fake links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> str:
    """Markdown-ish reply text in Slack's mrkdwn (bold and links), escaped."""
    links: list[str] = []
    text = text.replace("\x00", "")  # NUL marks the kept links below; text must not fake one

    def keep(match: re.Match[str]) -> str:
        links.append(f"<{escape(match.group(2))}|{escape(match.group(1))}>")
        return f"\x00{len(links) - 1}\x00"

    text = _LINK.sub(keep, text)
    text = _BOLD.sub(r"*\1*", escape(text))
    return re.sub("\x00(\\d+)\x00", lambda m: links[int(m.group(1))], text)


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters (Slack's safe message size by default)."""
    return split_pieces(text, limit)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def context_block(lines: list[str]) -> dict[str, Any]:
    """Small grey text under a message: an answer's sources and attribution."""
    return {"type": "context", "elements": [
        {"type": "mrkdwn", "text": _truncate(mrkdwn(line), SECTION_LIMIT)} for line in lines[:10]]}


def feedback_block(answer_ref: str) -> dict[str, Any]:
    """👍/👎 under an answer (Block Kit feedback_buttons); each value names the answer (the
    store's id of it, else its first message's ts), so a vote on the last part of a split
    answer, or one clicked at once, still finds it; "" names the message it sits on."""
    def button(text: str, kind: str, label: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": text, "emoji": True},
                "value": f"{kind}|{answer_ref}", "accessibility_label": label}

    return {"type": "context_actions", "block_id": "store_feedback", "elements": [{
        "type": "feedback_buttons", "action_id": FEEDBACK_ACTION,
        "positive_button": button("👍", "up", "Good answer"),
        "negative_button": button("👎", "down", "Bad answer")}]}


def read_feedback(value: str, message_ts: str) -> tuple[str, str]:
    """(kind, answer ref) from a feedback button's value ("up|42", "up|1700.0001", "up|")."""
    kind, _, ts = (value or "").partition("|")
    return kind, ts or message_ts


def markdown(text: str) -> dict[str, Any]:
    """A markdown block: the model's answer as it wrote it (escaped for Slack's controls)."""
    return {"type": "markdown", "text": text or " "}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text or " "}}


def field_blocks(fields: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """Fields as sections of at most 10 two-column fields each (Slack's limit)."""
    blocks = []
    items = [{"type": "mrkdwn", "text": _truncate(f"*{escape(name)}*\n{mrkdwn(str(value))}",
                                                    FIELD_LIMIT)} for name, value in fields]
    for start in range(0, len(items), 10):
        blocks.append({"type": "section", "fields": items[start:start + 10]})
    return blocks


def button_block(reply: Reply) -> dict[str, Any]:
    elements = []
    for index, button in enumerate(reply.buttons[:25]):
        element: dict[str, Any] = {
            "type": "button", "action_id": f"{ACTION_PREFIX}{index}",
            "text": {"type": "plain_text", "text": _truncate(button.label, BUTTON_LABEL_LIMIT)},
            "value": button.command[:2000],
        }
        if button.style in ("primary", "danger"):
            element["style"] = button.style
        elements.append(element)
    return {"type": "actions", "block_id": "store_buttons", "elements": elements}


def render(reply: Reply) -> list[dict[str, Any]]:
    """Message payloads ({"text", "blocks"}) for chat.postMessage, in order.

    The title heads the first message; fields and buttons close the last one.
    """
    chunks = split_text(mrkdwn(reply.text), MESSAGE_LIMIT) if reply.text else []
    messages: list[dict[str, Any]] = []
    for index, chunk in enumerate(chunks or [""]):
        blocks: list[dict[str, Any]] = []
        if index == 0 and reply.title:
            blocks.append({"type": "header", "text": {
                "type": "plain_text", "text": _truncate(reply.title, HEADER_LIMIT)}})
        blocks += [section(piece) for piece in split_text(chunk, SECTION_LIMIT) if piece]
        fallback = chunk or escape(reply.title)
        messages.append({"text": _truncate(fallback, MESSAGE_LIMIT) or " ", "blocks": blocks})
    last = messages[-1]["blocks"]
    if reply.fields:
        last += field_blocks(reply.fields)
    if reply.buttons:
        last.append(button_block(reply))
    if not messages[-1]["text"].strip() and reply.fields:
        messages[-1]["text"] = _truncate(
            escape("\n".join(f"{name}: {value}" for name, value in reply.fields)), MESSAGE_LIMIT)
    for message in messages:
        if not message["blocks"]:
            message["blocks"] = [section(message["text"])]
    return messages


def plain(reply: Reply) -> str:
    """One plain-text rendering (ephemeral messages and response_url fall-backs)."""
    parts = [f"*{escape(reply.title)}*"] if reply.title else []
    if reply.text:
        parts.append(mrkdwn(reply.text))
    parts += [f"*{escape(name)}*: {mrkdwn(str(value))}" for name, value in reply.fields]
    return _truncate("\n".join(parts) or " ", MESSAGE_LIMIT)
