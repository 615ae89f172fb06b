"""Durable job notifications on Discord: a job started from a slash command reports to the
channel that asked through the store, so its result arrives once even when the serve process
that started it stopped before the end; a result a dying process had already posted is not
posted again."""

from __future__ import annotations

import asyncio

import pytest

from bot.discord.testing import FakeDiscord
from tests.bot.discord.harness import FAILED, connected, end, qa_csv, response, run, text_of, until


def results(fake: FakeDiscord) -> list[dict]:
    return [m for m in fake.messages.values() if m["author"]["id"] == fake.bot["id"]
            and FAILED in text_of(m)]


async def start_tune(fake: FakeDiscord) -> int:
    upload = fake.add_file("faq.csv", qa_csv(12))
    shown = await response(fake, await fake.slash(fake.admin, "tune", {"name": "faq-bot"},
                                                  attachment=upload))
    assert "tuning faq-bot" in text_of(shown)
    return int(text_of(shown).split("Job ", 1)[1].split(":")[0])


DURABLE = {"durable": True, "delivery_poll_s": 0.05}


def test_a_result_reaches_the_channel_once_after_a_restart(held) -> None:
    fake = FakeDiscord()

    async def before() -> int:
        async with connected(held, fake, **DURABLE):
            job_id = await start_tune(fake)
            [watch] = await asyncio.to_thread(lambda: held.watches.of_job(job_id))
            assert watch.platform == "discord" and watch.place["channel"] == fake.channel_id
            return job_id  # the process stops while the job still runs

    def statuses() -> list[dict]:
        return list({m["id"]: m for m in fake.messages.values()
                     if m["author"]["id"] == fake.bot["id"]
                     and (m.get("content") or "").startswith(f"Job {job_id} (faq-bot): ")
                     }.values())

    async def after(job_id: int) -> None:
        async with connected(held, fake, **DURABLE) as (_, client):
            await asyncio.to_thread(end, held, job_id)
            [result] = await fake.until(lambda: results(fake))
            assert result["channel_id"] == fake.channel_id
            assert f"Tuning faq-bot failed: {FAILED}" in text_of(result)
            await asyncio.to_thread(client.deliveries.stop)  # its loop ends; nothing is pending
            assert await asyncio.to_thread(client.deliveries.poll_once) == 0
            # the status message of before the restart was closed through the channel
            [status] = statuses()
            assert status["content"] == f"Job {job_id} (faq-bot): failed."
            assert fake.find("PATCH", f"/channels/{fake.channel_id}/messages/{status['id']}")
        async with connected(held, fake, **DURABLE) as (_, client):  # and once more
            await asyncio.to_thread(client.deliveries.stop)
            assert await asyncio.to_thread(client.deliveries.poll_once) == 0
        assert len(results(fake)) == 1
        assert held.watches.of_job(job_id)[0].state == "delivered"

    job_id = asyncio.run(before())
    run(held, job_id)  # while no Discord process is up
    asyncio.run(after(job_id))


@pytest.mark.parametrize("posted_before_dying", [True, False])
def test_a_result_left_half_done_is_posted_only_if_it_is_not_there(
        held, posted_before_dying: bool) -> None:
    fake = FakeDiscord()

    async def before() -> int:
        async with connected(held, fake, **DURABLE):
            return await start_tune(fake)

    async def after() -> None:
        async with connected(held, fake, **DURABLE):
            await until(lambda: held.watches.of_job(job_id)[0].state == "delivered")
        assert len(results(fake)) == 1  # exactly once either way

    job_id = asyncio.run(before())
    run(held, job_id)
    end(held, job_id)
    [watch] = held.watches.claim("discord", "serve-dead")
    assert held.watches.begin_finish(watch.id, "serve-dead")  # it was about to post ...
    if posted_before_dying:  # ... and did, then died before recording it
        posted = fake.message(fake.bot, "", guild=True, embeds=[{
            "title": f"Job {job_id} failed", "description": f"Tuning faq-bot failed: {FAILED}"}])
        fake.messages[posted["id"]] = posted
    held.watches.release("serve-dead")
    asyncio.run(after())
