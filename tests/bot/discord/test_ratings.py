"""👍/👎 buttons under an answer record ratings exactly as the reactions do (one vote per
person, the last one counts), also after a restart, also under a split answer; reactions
still work beside them."""

from __future__ import annotations

import asyncio

from bot.discord.rating import NOT_AN_ANSWER
from bot.discord.testing import FakeDiscord
from engine.identity import Caller
from tests.bot.discord.harness import (
    EPHEMERAL,
    THUMBS_DOWN,
    answer_logged,
    connected,
    response,
    text_of,
    until,
)


def buttons(message: dict) -> list[tuple[str, str]]:
    return [(c["emoji"]["name"], c["custom_id"]) for row in message.get("components") or []
            for c in row["components"]]


async def final_answer(fake: FakeDiscord, prefix: str = "Hello world!\n-# ") -> dict:
    return await fake.until(lambda: next(
        (m for m in fake.messages.values() if m["author"]["id"] == fake.bot["id"]
         and (m.get("content") or "").startswith(prefix) and m.get("components")), None))


def ratings(engine, admin: Caller) -> tuple[int, int]:
    card = engine.catalog.card(admin, "tiny")
    return card.rating_up, card.rating_down


def test_buttons_and_reactions_record_the_same_ratings_even_after_a_restart(
        scripted, admin: Caller) -> None:
    fake = FakeDiscord()

    async def first_run() -> dict:
        async with connected(scripted, fake):
            await response(fake, await fake.slash(fake.admin, "deploy", {"model": "tiny"}))
            await fake.post_message(fake.member, "Hi there")
            answer = await final_answer(fake)
            assert buttons(answer) == [("\U0001F44D", "gptstore-rate:up"),
                                       ("\U0001F44E", "gptstore-rate:down")]
            await until(lambda: answer_logged(scripted, fake, answer["id"]))
            clicked = await fake.click(fake.member, "gptstore-rate:up", answer)
            thanks = await response(fake, clicked)
            assert thanks["flags"] & EPHEMERAL and thanks["content"] == "Thanks, noted."
            await fake.react(fake.admin, answer["id"], THUMBS_DOWN)  # a reaction still counts
            await until(lambda: ratings(scripted, admin) == (1, 1))
            return answer

    async def after_restart(answer: dict) -> None:
        async with connected(scripted, fake):  # a new client: no view of the old one is kept
            clicked = await fake.click(fake.member, "gptstore-rate:down", answer)
            shown = await response(fake, clicked)
            assert "correct" in shown["content"]  # a 👎 says how to teach the right answer
            await until(lambda: ratings(scripted, admin) == (0, 2))  # bob's last vote counts
            stray = dict(answer, id=fake.new_id())  # buttons on a message the store never logged
            fake.messages[stray["id"]] = stray
            refused = await response(fake, await fake.click(fake.member, "gptstore-rate:up",
                                                            stray))
            assert refused["flags"] & EPHEMERAL and refused["content"] == NOT_AN_ANSWER
            assert ratings(scripted, admin) == (0, 2)

    answer = asyncio.run(first_run())
    asyncio.run(after_restart(answer))


def test_a_split_answer_carries_the_buttons_on_its_last_message(scripted, admin: Caller) -> None:
    words = " ".join(f"word{i}" for i in range(600))  # about 4,300 characters: 3 messages
    scripted.test_runner.script = [words]

    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            await response(fake, await fake.slash(fake.admin, "deploy", {"model": "tiny"}))
            await fake.post_message(fake.member, "Tell me everything")
            last = await final_answer(fake, prefix="")
            posted = sorted((m for m in fake.messages.values()
                             if m["author"]["id"] == fake.bot["id"]
                             and m["channel_id"] == last["channel_id"]),
                            key=lambda m: int(m["id"]))
            assert len(posted) >= 3 and last is posted[-1]
            assert all(not m.get("components") for m in posted[:-1])
            first = posted[0]["id"]
            assert [b[1] for b in buttons(last)] == [f"gptstore-rate:up:{first}",
                                                     f"gptstore-rate:down:{first}"]
            await until(lambda: answer_logged(scripted, fake, first))
            await response(fake, await fake.click(fake.member, f"gptstore-rate:up:{first}", last))
            await until(lambda: ratings(scripted, admin) == (1, 0))
            assert "Thanks" in text_of(await response(fake, await fake.click(
                fake.admin, f"gptstore-rate:up:{first}", last)))
            await until(lambda: ratings(scripted, admin) == (2, 0))
    asyncio.run(scenario())


def test_an_answer_to_slash_chat_carries_the_buttons_too(scripted, admin: Caller) -> None:
    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            asked = await fake.slash(fake.member, "chat", {"model": "tiny", "message": "Hi"})
            shown = await response(fake, asked)
            assert shown["content"].startswith("Hello world!")
            assert [b[1] for b in buttons(shown)] == ["gptstore-rate:up", "gptstore-rate:down"]
            original = fake.messages[f"{asked['token']}/@original"]
            await until(lambda: answer_logged(scripted, fake, original["id"]))
            await response(fake, await fake.click(fake.member, "gptstore-rate:up", original))
            await until(lambda: ratings(scripted, admin) == (1, 0))
    asyncio.run(scenario())
