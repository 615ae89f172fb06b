"""Conversations in threads: a chat turn in a server channel opens a thread on the question,
the answer streams there by edits, and every later message in that thread goes on with the
thread's history as the conversation; where threads cannot be opened, the answer replies in
the channel and the reply chain is the conversation."""

from __future__ import annotations

import asyncio

from bot.discord.testing import FakeDiscord
from tests.bot.discord.harness import connected, content, response, text_of


def bot_messages(fake: FakeDiscord, channel_id: str) -> list[dict]:
    return sorted((m for m in fake.messages.values() if m["author"]["id"] == fake.bot["id"]
                   and m["channel_id"] == channel_id), key=lambda m: int(m["id"]))


def test_a_conversation_goes_on_in_the_thread_the_bot_opens(scripted) -> None:
    runner = scripted.test_runner

    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            shown = await response(fake, await fake.slash(fake.admin, "deploy", {"model": "tiny"}))
            assert "now answers messages" in text_of(shown)
            runner.gated = True
            question = await fake.post_message(fake.member, "Hi there, how do refunds work?")
            opened = await fake.wait_for(lambda r: r.method == "POST" and r.path ==
                                         f"/channels/{fake.channel_id}/messages/"
                                         f"{question['id']}/threads")
            assert opened[0].json["name"] == "Hi there, how do refunds work?"
            thread = question["id"]  # a thread opened on a message takes its id
            first = await fake.wait_for(lambda r: r.method == "POST" and
                                        r.path == f"/channels/{thread}/messages")
            assert content(first[0]) == "Hello"  # the answer grows inside the thread
            for _ in runner.script:
                runner.gate.release()
            final = await fake.until(lambda: [m for m in bot_messages(fake, thread)
                                              if m["content"].startswith("Hello world!\n-# ")])
            assert "Answered by tiny" in final[0]["content"]
            # the channel itself got nothing but the question: it stays readable
            assert not [r for r in fake.requests if r.method == "POST"
                        and r.path == f"/channels/{fake.channel_id}/messages"]
            runner.gated = False

            # a follow-up in the thread needs no mention; the thread is the conversation
            await fake.post_message(fake.member, "And for a gift card?", channel_id=thread)
            await fake.until(lambda: len(runner.calls) == 2)
            turns = [(m["role"], m["content"]) for m in runner.calls[1] if m["role"] != "system"]
            assert turns == [("user", "Hi there, how do refunds work?"),
                             ("assistant", "Hello world!"), ("user", "And for a gift card?")]
            await fake.until(lambda: len(bot_messages(fake, thread)) == 2)
            assert len(fake.threads) == 1  # no thread inside the thread
    asyncio.run(scenario())


def test_a_mention_in_a_channel_without_a_model_opens_a_thread_and_names_the_model(
        scripted) -> None:
    runner = scripted.test_runner

    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            await fake.post_message(fake.member, "just talking")  # not for the bot: ignored
            question = await fake.post_message(fake.member, "are you there?", mention_bot=True)
            await fake.until(lambda: any("Answered by tiny (the store's default model"
                                         in m["content"]
                                         for m in bot_messages(fake, question["id"])))
            assert len(runner.calls) == 1 and runner.calls[0][-1]["content"] == "are you there?"
            assert fake.threads[question["id"]]["name"] == "are you there?"
    asyncio.run(scenario())


def test_without_the_right_to_open_threads_the_answer_replies_and_follows_the_chain(
        scripted) -> None:
    runner = scripted.test_runner

    async def scenario() -> None:
        async with connected(scripted, FakeDiscord(threads_allowed=False)) as (fake, _):
            await response(fake, await fake.slash(fake.admin, "deploy", {"model": "tiny"}))
            question = await fake.post_message(fake.member, "Hi there")
            answer = await fake.until(lambda: next(
                (m for m in bot_messages(fake, fake.channel_id)
                 if m["content"].startswith("Hello world!\n-# ")), None))
            assert answer["message_reference"]["message_id"] == question["id"]
            assert any(r.status == 403 and r.path.endswith("/threads") for r in fake.requests)
            await fake.post_message(fake.member, "And then?", reference=answer)
            await fake.until(lambda: len(runner.calls) == 2)
            turns = [(m["role"], m["content"]) for m in runner.calls[1] if m["role"] != "system"]
            assert turns == [("user", "Hi there"), ("assistant", "Hello world!"),
                             ("user", "And then?")]
    asyncio.run(scenario())


def test_a_mention_elsewhere_is_answered_by_the_servers_default_model(scripted) -> None:
    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            made = await response(fake, await fake.slash(fake.admin, "deploy",
                                                         {"model": "tiny", "where": "default"}))
            assert "wherever no model is deployed" in text_of(made)
            other = await fake.add_channel()  # another channel, with nothing deployed
            question = await fake.post_message(fake.member, "hello?", mention_bot=True,
                                               channel_id=other)
            [answer] = await fake.until(lambda: [m for m in bot_messages(fake, question["id"])
                                                 if "-# " in m["content"]])
            assert "-# Answered by tiny (this workspace's default model" in answer["content"]
            assert "`/store deploy MODEL` picks one for this channel" in answer["content"]
    asyncio.run(scenario())
