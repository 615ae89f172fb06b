"""Discord's limits and failures: every payload within the limits (the fake refuses any
other, see harness.connected), an edit that fails, a burst of answers in one channel meeting
the channel's rate limit and a 429 with retry_after, and a gateway RESUME after a dropped
connection; no answer is lost and none is given twice."""

from __future__ import annotations

import asyncio

from bot.discord.limits import problems
from bot.discord.pacing import EditPacer
from bot.discord.testing import FakeDiscord
from tests.bot.discord.harness import connected, response

FOOTER = "\n-# Answered by tiny"


def answers(fake: FakeDiscord) -> list[dict]:
    """The bot's finished answers (they end with the footer and carry the rating buttons)."""
    return [m for m in fake.messages.values() if m["author"]["id"] == fake.bot["id"]
            and FOOTER in (m.get("content") or "") and m.get("components")]


def test_an_answer_whose_edits_fail_is_posted_anew_and_rated_there(scripted) -> None:
    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            await response(fake, await fake.slash(fake.admin, "deploy", {"model": "tiny"}))
            fake.rules.fail_edits = 100  # say, a moderator deleted the growing answer
            await fake.post_message(fake.member, "Hi there")
            [answer] = await fake.until(lambda: answers(fake))
            assert answer["content"].startswith("Hello world!" + FOOTER)
            assert [r.status for r in fake.requests if r.method == "PATCH"][-1] == 404
            fake.rules.fail_edits = 0
    asyncio.run(scenario())


def test_a_burst_of_answers_meets_the_rate_limit_and_a_429_without_losing_one(scripted) -> None:
    scripted.test_runner.script = [f" piece{i}" for i in range(12)]
    fake = FakeDiscord(threads_allowed=False)  # every answer in the one channel

    async def scenario() -> None:
        async with connected(scripted, fake):
            await response(fake, await fake.slash(fake.admin, "deploy", {"model": "tiny"}))
            fake.rules.bucket = (5, 0.5)  # per channel, with X-RateLimit headers; 429 past it
            fake.rules.throttle, fake.rules.retry_after = 2, 0.1  # and the next two writes meet a 429
            questions = [await fake.post_message(fake.member, f"Question {i}") for i in range(6)]
            done = await fake.until(lambda: len(answers(fake)) == 6 and answers(fake))
            whole = "".join(scripted.test_runner.script)
            assert sorted(m["message_reference"]["message_id"] for m in done) == \
                sorted(q["id"] for q in questions)  # each question answered once
            assert all(m["content"].startswith(whole + FOOTER) for m in done)
            limited = [r for r in fake.requests if r.status == 429]
            assert len(limited) >= 2
            for r in limited:  # each was sent again after its retry_after, and went through
                assert any(o.path == r.path and o.method == r.method and o.status < 400
                           for o in fake.requests[fake.requests.index(r) + 1:])
            assert len(scripted.test_runner.calls) == 6
    asyncio.run(scenario())


def test_the_pacer_lets_one_intermediate_edit_per_channel_at_a_time() -> None:
    now = [0.0]
    pacer = EditPacer(1.0, clock=lambda: now[0])
    assert pacer.claim("c1") and not pacer.claim("c1")  # one in flight
    assert pacer.claim("c2")  # channels are paced apart
    pacer.release("c1")
    assert not pacer.claim("c1")  # not again within the interval
    now[0] = 1.0
    assert pacer.claim("c1")


def test_a_dropped_gateway_connection_is_resumed_and_missed_messages_are_answered(
        scripted) -> None:
    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            await fake.drop()  # 4000: resumable
            question = await fake.post_message(fake.member, "Still there?", mention_bot=True)
            [resumed] = await fake.until(lambda: fake.resumes)
            assert resumed["session_id"] == "session-1" and resumed["seq"] >= 1
            assert len(fake.identifies) == 1  # resumed, not identified anew
            await fake.until(lambda: answers(fake))
            await fake.dispatch("MESSAGE_CREATE", question)  # Discord may deliver it twice
            await fake.post_message(fake.member, "ping", mention_bot=True)
            await fake.until(lambda: len(scripted.test_runner.calls) == 2)
            await fake.until(lambda: len(answers(fake)) == 2)
            asked = [c[-1]["content"] for c in scripted.test_runner.calls]
            assert asked == ["Still there?", "ping"]
    asyncio.run(scenario())


def test_the_limits_refuse_what_discord_refuses() -> None:
    assert problems({"content": "x" * 2000}) == []
    assert problems({"content": "x" * 2001}) == ["content is 2,001 characters (over 2000)"]
    row = {"type": 1, "components": [{"type": 2, "style": 2, "custom_id": f"b{i}", "label": "b"}
                                     for i in range(6)]}
    assert "6 buttons in a row (over 5)" in problems({"components": [row]})
    v2 = {"flags": 1 << 15, "content": "hi", "components": [{"type": 10, "content": "x"}]}
    assert problems(v2) == ["a Components V2 message cannot have content or embeds"]
    assert problems({"flags": 0, "content": "x"}, was_v2=True) == [
        "the Components V2 flag cannot be removed from a message"]
