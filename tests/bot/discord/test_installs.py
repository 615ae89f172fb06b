"""User installs: the app installed by a user (no server needed) gives that user a private
`/store` of their own in DMs, with the bot and between users."""

from __future__ import annotations

import asyncio

from engine.identity import Caller
from tests.bot.discord.harness import EPHEMERAL, connected, response, text_of


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
