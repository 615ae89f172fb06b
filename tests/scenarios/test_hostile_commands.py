"""Hostile command text through the command core: each gets a clear error or a safe reply, the
store keeps serving, nothing partial is stored, and echoed text cannot ping a whole channel on
Slack (escaped) or Discord (no mentions allowed)."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlmodel import select

from bot.core.dispatch import MAX_COMMAND_CHARS, Dispatcher
from bot.core.reply import Reply
from bot.slack.render import plain, render
from storage.tables import DatasetRecord, JobRecord, ModelRecord
from tests.helpers.tenants import A_ADMIN, A_X, FAQ, open_engine, say

BIG = "a" * 100_000


@pytest.fixture
def store(settings, tiny_base_dir):
    engine = open_engine(settings, tiny_base_dir)
    yield engine, Dispatcher(engine)
    engine.close()


def counts(engine) -> tuple[int, int, int]:
    with engine.db.session() as s:
        return tuple(len(s.exec(select(t)).all())  # type: ignore[return-value]
                     for t in (ModelRecord, DatasetRecord, JobRecord))


def still_serving(dispatcher: Dispatcher) -> None:
    reply = say(dispatcher, A_X, "search tiny")
    assert reply.kind != "error" and any(name == "tiny" for name, _ in reply.fields)


@pytest.mark.parametrize("text, expected", [
    ('info "tiny', "never closed"),
    ("tune 'acme epochs=1", "never closed"),
    ('search "support', "never closed"),
    ("search " + BIG, "commands take at most 20,000"),
    ("info " + BIG, "commands take at most 20,000"),
    ("help " + BIG, "commands take at most 20,000"),
    ("chat tiny " + "hello " * 17_000, "commands take at most 20,000"),
    ("tune x " + " ".join(f"k{i}=v" for i in range(10_000)), "commands take at most 20,000"),
    ("tune x " + " ".join(f"k{i}=v" for i in range(500)), "has no option 'k0'"),
    ("search " + " ".join(f"a{i}=b" for i in range(500)), "has no option 'a0'"),
    ("tune x epochs=3 epochs=1e999", "whole number"),
    ("tune x lr=nan", "finite number"),
    ("info ti\x00ny", "control character (U+0000)"),
    ("tune bad\x00name", "control character (U+0000)"),
    ("search \x1b[31mred\x1b[0m", "control character (U+001B)"),
    ("\x00", "control character (U+0000)"),
    ("store \x07help", "control character (U+0007)"),
    ("info \u202etiny", "control character (U+202E)"),
    ("chat tiny hello \u2066world", "control character (U+2066)"),
    ("info t\u0456ny", "No model named"),  # Cyrillic i: a different name, not 'tiny'
    ("info ti\u200bny", "No model named"),  # zero-width space
    ("info \uff54\uff49\uff4e\uff59", "No model named"),  # fullwidth letters
    ("tune \u0430cme", "not a valid model name"),  # Cyrillic a
    ("tune <!channel>", "not a valid model name"),
    ("tune @everyone", "not a valid model name"),
    ("publish tiny everyone", "visibility must be"),
])
def test_hostile_text_gets_a_clear_error_and_stores_nothing(store, text: str,
                                                          expected: str) -> None:
    engine, dispatcher = store
    before = counts(engine)
    reply = say(dispatcher, A_ADMIN, text, file=FAQ)
    assert reply.kind == "error" and reply.ephemeral, reply.text[:200]
    assert expected.lower() in reply.text.lower(), reply.text[:300]
    assert "Something went wrong" not in reply.text  # understood, not a crash
    assert len(reply.text) < 1_000  # never the hostile text echoed back whole
    assert counts(engine) == before
    still_serving(dispatcher)


@pytest.mark.parametrize("words", [
    "' OR 1=1 --", '"; DROP TABLE modelrecord; --"', "tiny) OR (1=1", "NEAR(a b)",
    '"a" AND *', "tiny*", "-tiny", "^tiny", "tiny:*", "{a b}:c", "a OR", "%", "_", "\\",
    "tiny' UNION SELECT name FROM sqlite_master --", "\n" * 500, "\t  \t",
])
def test_query_syntax_in_search_words_is_just_words(store, words: str) -> None:
    engine, dispatcher = store
    before = counts(engine)
    reply = say(dispatcher, A_X, "search " + (repr(words) if "'" in words and '"' not in words
                                              else words))
    assert reply.kind in ("info", "error"), reply.text
    assert "Something went wrong" not in reply.text
    assert all(name in ("tiny", "smollm2-135m-instruct") for name, _ in reply.fields)
    assert counts(engine) == before
    still_serving(dispatcher)


def test_just_under_the_length_limit_is_still_understood(store) -> None:
    engine, dispatcher = store
    words = ("support " * (MAX_COMMAND_CHARS // 8))[: MAX_COMMAND_CHARS - 10]
    reply = say(dispatcher, A_X, "search " + words)
    assert reply.kind == "info" and "No models found" in reply.text


MENTIONS = ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<#C123>", "<!subteam^S1>")


def slack_mrkdwn(reply: Reply) -> str:
    """Every string Slack parses for mentions: the messages' `text` and mrkdwn objects
    (plain_text headers and button labels are shown literally)."""
    found: list[str] = [plain(reply)]

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node.get("text", ""))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for message in render(reply):
        found.append(message["text"])
        walk(message["blocks"])
    return "\n".join(found)


def test_echoed_mentions_are_escaped_for_slack(store) -> None:
    engine, dispatcher = store
    echoes = [say(dispatcher, A_X, f"info {m}") for m in MENTIONS]
    echoes.append(say(dispatcher, A_X, "search " + " ".join(MENTIONS)))
    assert all("No model named" in r.text for r in echoes[:-1])
    assert "&lt;!channel&gt;" in slack_mrkdwn(echoes[0])  # shown, escaped
    # what other replies may carry: links, NULs, a title and fields without text
    echoes.append(Reply(title="<!channel> job", text="[x](https://a|<!channel>) a\x000\x00b",
                        fields=(("<!here>", "<!channel>"),)))
    echoes.append(Reply(title="<!channel> job", text="", fields=(("<!here>", "<!everyone>"),)))
    for reply in echoes:
        text = slack_mrkdwn(reply)
        for mention in MENTIONS:
            assert mention not in text, (mention, text[:300])
    assert say(dispatcher, A_X, "tune <!channel>", file=FAQ).kind == "error"


def test_chat_text_with_mentions_and_markup_gets_a_safe_answer(store) -> None:
    engine, dispatcher = store
    reply = say(dispatcher, A_X, "chat tiny <!channel> @everyone **bold** `code` [x](http://e)")
    assert reply.kind == "chat"
    for message in render(reply):
        assert "<!channel>" not in json.dumps(message)
    still_serving(dispatcher)


def test_discord_replies_never_allow_mentions(engine) -> None:
    """The real discord.py client against the fake Discord: a slash reply echoing
    "@everyone" goes out with allowed_mentions parse=[] (Discord then pings nobody)."""
    from tests.bot.discord.harness import connected, response, text_of

    async def scenario() -> None:
        async with connected(engine) as (fake, client):
            assert client.allowed_mentions.to_dict() == {"parse": []}
            asked = await fake.slash(fake.member, "info", {"model": "@everyone"})
            answer = await response(fake, asked)
            assert "@everyone" in text_of(answer)
            sent = [r.json for r in fake.requests
                    if r.method in ("POST", "PATCH") and isinstance(r.json, dict)
                    and "@everyone" in json.dumps(r.json)]
            assert sent, "the echo was sent"
            for body in sent:
                mentions = body.get("data", body).get("allowed_mentions")
                assert mentions == {"parse": []}, body
    asyncio.run(scenario())
