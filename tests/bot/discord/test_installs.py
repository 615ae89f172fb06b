"""User installs: the app installed by a user (no server needed) gives that user a private
`/store` of their own in DMs, with the bot and between users."""

from __future__ import annotations

import asyncio

from bot.core.progress import JobWatcher
from engine.identity import Caller
from tests.bot.discord.harness import (
    EPHEMERAL,
    FAILED,
    connected,
    end,
    qa_csv,
    response,
    run,
    text_of,
)


def test_store_is_offered_for_server_and_user_installs_in_every_context(engine) -> None:
    async def scenario() -> None:
        async with connected(engine) as (fake, _):
            synced = fake.find("PUT", f"/applications/{fake.app_id}/commands")[0].json
            store = next(c for c in synced if c["name"] == "store")
            assert store["integration_types"] == [0, 1]  # server install, user install
            assert store["contexts"] == [0, 1, 2]  # servers, the bot's DM, private channels
    asyncio.run(scenario())


def test_a_user_install_is_the_users_own_private_store(scripted) -> None:
    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            carol = fake.user("carol")  # shares no server with the bot
            fake.outsiders.append(carol)
            own = Caller.for_discord(None, carol["id"], channel=fake.dm_of(carol))

            # in her DM with the bot: her own default model, answered as in any DM
            shown = await response(fake, await fake.slash(carol, "deploy", {"model": "tiny"},
                                                          where="dm"))
            assert "now answers messages" in text_of(shown)
            assert not shown.get("flags", 0) & EPHEMERAL
            assert scripted.catalog.deployed(own).name == "tiny"

            # in a DM with a friend, where the bot is no member: only she sees the answers
            friend_dm = fake.new_id()
            searched = await fake.slash(carol, "search", {"words": "tiny"}, where="private",
                                        channel_id=friend_dm)
            shown = await response(fake, searched)
            assert shown["flags"] & EPHEMERAL and "tiny" in text_of(shown)
            info = await response(fake, await fake.slash(carol, "info", {"model": "tiny"},
                                                         where="private", channel_id=friend_dm))
            assert info["flags"] & EPHEMERAL and "## tiny" in text_of(info)
            # no admin is needed to set the default of one's own store
            made = await response(fake, await fake.slash(carol, "deploy",
                                                         {"model": "tiny", "where": "default"},
                                                         where="private", channel_id=friend_dm))
            assert made["flags"] & EPHEMERAL, text_of(made)
            assert "wherever no model is deployed" in text_of(made) and not any(
                r.method == "POST" and r.path == f"/channels/{friend_dm}/messages"
                for r in fake.requests)  # nothing was posted into the friends' DM
    asyncio.run(scenario())


def test_a_tune_from_a_private_place_reports_in_the_users_dm_once_the_token_expired(
        held) -> None:
    ticks = iter(range(10**6))

    def clock() -> float:  # the interaction's start is fresh; then 15 minutes pass
        return 0.0 if next(ticks) < 2 else 15 * 60.0

    async def scenario() -> None:
        watcher = lambda: JobWatcher(held, poll_s=0.05, min_interval_s=0.0)  # noqa: E731
        async with connected(held, watcher_factory=watcher, clock=clock) as (fake, _):
            carol = fake.user("carol")
            fake.outsiders.append(carol)
            friends = fake.new_id()
            upload = fake.add_file("faq.csv", qa_csv(12))
            started = await response(fake, await fake.slash(
                carol, "tune", {"name": "faq-bot"}, attachment=upload, where="private",
                channel_id=friends))
            assert started["flags"] & EPHEMERAL and "tuning faq-bot" in text_of(started)
            [opened] = await fake.wait_for(lambda r: r.path == "/users/@me/channels")
            assert str(opened.json["recipient_id"]) == carol["id"]
            job_id = int(text_of(started).split("Job ", 1)[1].split(":")[0])
            await asyncio.to_thread(run, held, job_id)
            await asyncio.to_thread(end, held, job_id)
            dm = fake.dm_of(carol)
            [result] = await fake.wait_for(lambda r: r.path == f"/channels/{dm}/messages"
                                           and FAILED in text_of(r.json or {}))
            assert not [r for r in fake.requests if r.path.startswith(f"/channels/{friends}")]
    asyncio.run(scenario())
