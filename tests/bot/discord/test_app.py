"""The Discord adapter: the real discord.py client against a local fake Discord (bot/discord/testing.py).

Every test connects through DISCORD_API_URL (GET /gateway/bot, then the gateway), pushes
events as Discord would, and checks what the bot sent back. Waits are bounded waits on the
requests the fake recorded; nothing sleeps on the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import pytest

from bot.core.progress import JobWatcher
from bot.discord.app import run
from bot.discord.render import MESSAGE_LIMIT, split_text
from bot.discord.testing import MESSAGE_CONTENT_INTENT, FakeDiscord
from engine.identity import Caller
from engine.views import Origin
from tests.bot.discord.harness import (
    EPHEMERAL,
    THUMBS_DOWN,
    THUMBS_UP,
    TOKEN,
    answer_logged,
    channel_posts,
    connected,
    content,
    labels,
    qa_csv,
    response,
    text_of,
    until,
)


def test_slash_commands_are_typed_and_search_answers(engine, caplog) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with connected(engine) as (fake, client):
            synced = fake.find("PUT", f"/applications/{fake.app_id}/commands")[0].json
            store = next(c for c in synced if c["name"] == "store")
            subs = {s["name"]: s for s in store["options"]}
            assert {"search", "info", "tune", "deploy", "chat", "forget-me", "help"} <= set(subs)
            tune = {o["name"]: o for o in subs["tune"]["options"]}
            assert tune["file"]["type"] == 11 and not tune["file"].get("required")  # or the form
            assert tune["epochs"]["type"] == 4 and tune["lr"]["type"] == 10  # integer, number
            assert [c["value"] for c in tune["optimizer"]["choices"]] == ["adamw", "sgd"]
            assert {o["name"]: o for o in subs["info"]["options"]}["model"]["autocomplete"]

            asked = await fake.slash(fake.member, "search", {"words": "tiny"})
            shown = await response(fake, asked)
            assert "tiny" in text_of(shown) and not shown.get("flags", 0) & EPHEMERAL

            typing = await fake.slash(fake.member, "info", {"model": "ti"}, focused="model")
            offered = await fake.wait_for(
                lambda r: r.path.startswith(f"/interactions/{typing['id']}/"))
            assert offered[0].json["type"] == 8
            assert "tiny" in [c["value"] for c in offered[0].json["data"]["choices"]]

            # every call reached the fake with the bot token; the gateway came from the API
            assert all(r.authorization == f"Bot {TOKEN}" for r in fake.find("GET", "/gateway/bot"))
            assert not any(TOKEN in json.dumps(r.json) for r in fake.requests)
    asyncio.run(scenario())
    assert TOKEN not in caplog.text


def test_slow_commands_are_deferred_then_followed_up(engine) -> None:
    async def scenario() -> None:  # ack_within_s=0: every command counts as slow
        async with connected(engine, ack_within_s=0.0) as (fake, _):
            asked = await fake.slash(fake.member, "search", {"words": "tiny"})
            shown = await response(fake, asked)
            callback = fake.find("POST", f"/interactions/{asked['id']}/")[0].json
            assert callback["type"] == 5  # "thinking...", then the answer replaces it
            assert "tiny" in text_of(shown) and fake.find("PATCH", f"{asked['token']}/messages/@original")

            wrong = await fake.slash(fake.member, "info", {"model": "nosuch"})
            shown = await response(fake, wrong)
            assert shown["flags"] & EPHEMERAL and "nosuch" in text_of(shown)
            assert fake.find("DELETE", f"{wrong['token']}/messages/@original")  # public stub gone
    asyncio.run(scenario())


def test_tune_from_an_attachment_posts_progress_and_the_loss_plot(engine) -> None:
    ticks = iter(range(10**6))
    first_calls = 2  # the interaction's start and the first status update: token still fresh

    def clock() -> float:  # then 15 minutes pass: the interaction can no longer be edited
        n = next(ticks)
        return 0.0 if n < first_calls else 15 * 60.0

    async def scenario() -> None:
        watcher = lambda: JobWatcher(engine, poll_s=0.05, min_interval_s=0.0)  # noqa: E731
        async with connected(engine, watcher_factory=watcher, clock=clock) as (fake, _):
            upload = fake.add_file("faq.csv", qa_csv(12))
            asked = await fake.slash(fake.admin, "tune", {"name": "faq-bot", "epochs": 1,
                                                          "batch_size": 4}, attachment=upload)
            started = text_of(await response(fake, asked))
            assert "tuning faq-bot" in started and "faq.csv" in started
            assert upload["id"] in fake.downloads  # fetched at once: Discord's URLs expire

            edited = await fake.wait_for(lambda r: r.method == "PATCH" and
                                         r.path.endswith(f"{asked['token']}/messages/@original")
                                         and content(r).startswith("Job "))
            assert "faq-bot" in edited[0].json["content"]
            final = await fake.wait_for(lambda r: r in channel_posts(fake) and bool(r.files),
                                        timeout=600)
            shown = text_of(final[0].json)
            assert "finished: faq-bot v1" in shown and "Token F1" in shown
            assert final[0].files[0][0].endswith(".png") and final[0].files[0][1][:4] == b"\x89PNG"
            assert labels(final[0].json) == ["Deploy", "Publish to workspace"]
            # the token had expired by then, so the status went on in a fresh channel message
            original = fake.messages[f"{asked['token']}/@original"]
            statuses = [m for m in fake.messages.values() if m["id"] != original["id"]
                        and m["author"]["id"] == fake.bot["id"]
                        and (m.get("content") or "").startswith("Job ")]
            assert [m["content"] for m in statuses] == ["Job 1 (faq-bot): succeeded."]
            finished = next(m for m in fake.messages.values() if m.get("attachments"))
            pressed = await fake.click(fake.admin, "gptstore:deploy faq-bot", finished)
            assert "faq-bot deployed" in text_of(await response(fake, pressed))
            owner = Caller(platform="discord", workspace=f"discord:{fake.guild_id}",
                           user=f"discord:{fake.admin['id']}", channel=fake.channel_id)
            assert engine.catalog.card(owner, "faq-bot").live_version == 1
    asyncio.run(scenario())


def test_direct_messages_take_commands_and_chat_with_the_users_own_default(scripted) -> None:
    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            dm = fake.new_id()
            await fake.post_message(fake.member, "store deploy tiny", channel_id=dm, guild=False)
            await fake.wait_for(lambda r: r.path == f"/channels/{dm}/messages"
                                and "now answers messages" in text_of(r.json))
            await fake.post_message(fake.member, "Hi there", channel_id=dm, guild=False)
            await fake.wait_for(lambda r: r.path.startswith(f"/channels/{dm}/messages")
                                and content(r) == "Hello world!")
            big = fake.add_file("faq.csv", qa_csv(12), size=20 * 1024 * 1024)
            await fake.post_message(fake.member, "store tune faq-bot", channel_id=dm,
                                    guild=False, attachments=[big])
            await fake.wait_for(lambda r: "faq.csv is 20 MB; the limit is 10 MB" in content(r))
            assert big["id"] not in fake.downloads
    asyncio.run(scenario())


def test_a_long_answer_is_split_at_2000_characters(scripted) -> None:
    words = " ".join(f"word{i}" for i in range(900))  # about 6,300 characters
    scripted.test_runner.script = [words[:3000], words[3000:]]

    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            await response(fake, await fake.slash(fake.admin, "deploy", {"model": "tiny"}))
            await fake.post_message(fake.member, "Tell me everything")
            pieces = split_text(words)
            await fake.until(lambda: [m for m in fake.messages.values()
                                      if m.get("content") == pieces[-1]])
            posted = [m["content"] for m in sorted(fake.messages.values(), key=lambda m: int(m["id"]))
                      if m["author"]["id"] == fake.bot["id"] and m.get("content")]
            assert len(posted) == len(pieces) >= 4
            assert all(len(p) <= MESSAGE_LIMIT for p in posted)
            assert " ".join(posted).split() == words.split()
    asyncio.run(scenario())


def test_reactions_on_an_answer_are_stored_as_feedback(scripted, admin: Caller) -> None:
    async def scenario() -> None:
        async with connected(scripted) as (fake, _):
            await response(fake, await fake.slash(fake.admin, "deploy", {"model": "tiny"}))
            await fake.post_message(fake.member, "Hi there")
            answer = await fake.until(lambda: next(
                (m for m in fake.messages.values() if m["author"]["id"] == fake.bot["id"]
                 and m.get("content") == "Hello world!"), None))
            await until(lambda: answer_logged(scripted, fake, answer["id"]))  # ref stored
            await fake.react(fake.member, answer["id"], THUMBS_UP)
            await fake.react(fake.admin, answer["id"], THUMBS_DOWN + "\U0001F3FD")  # skin tone
            await fake.react(fake.admin, fake.new_id(), THUMBS_UP)  # not an answer: ignored
            await until(lambda: (scripted.catalog.card(admin, "tiny").rating_up,
                                 scripted.catalog.card(admin, "tiny").rating_down) == (1, 1))
    asyncio.run(scenario())


def test_deploy_by_a_member_without_manage_server_is_refused(engine, admin: Caller) -> None:
    async def scenario() -> None:
        async with connected(engine) as (fake, _):
            asked = await fake.slash(fake.member, "deploy", {"model": "tiny"})
            shown = await response(fake, asked)
            assert shown["flags"] & EPHEMERAL and "admin" in text_of(shown).lower()
            caller = Caller(platform="discord", workspace=f"discord:{fake.guild_id}",
                            user=f"discord:{fake.member['id']}", channel=fake.channel_id)
            assert engine.catalog.deployed(caller) is None
    asyncio.run(scenario())


def test_the_configured_admin_role_counts_as_admin(engine) -> None:
    fake = FakeDiscord()
    fake.role_name, fake.role_permissions = "Store admins", 0  # the role grants nothing itself
    fake.role_members.add(fake.member["id"])

    async def scenario() -> None:
        async with connected(engine, fake, settings={"discord_admin_role": "store admins"}):
            shown = await response(fake, await fake.slash(fake.member, "deploy", {"model": "tiny"}))
            assert not shown.get("flags", 0) & EPHEMERAL, text_of(shown)
            assert "now answers messages" in text_of(shown)
    asyncio.run(scenario())


@pytest.mark.parametrize("sub, options, upload, expected", [
    ("info", {"model": "nosuch"}, None, "nosuch"),
    ("tune", {"name": "faq-bot"}, ("faq.csv", b"colour,shape\nred,round\n", None), "faq.csv"),
    ("tune", {"name": "faq-bot"}, ("big.csv", qa_csv(12), 5 * 1024 * 1024), "the limit is 1 MB"),
])
def test_user_errors_get_an_ephemeral_reply(engine, sub, options, upload, expected) -> None:
    async def scenario() -> None:
        async with connected(engine, settings={"max_upload_bytes": 1024 * 1024}) as (fake, _):
            attachment = fake.add_file(upload[0], upload[1], size=upload[2]) if upload else None
            shown = await response(fake, await fake.slash(fake.admin, sub, options,
                                                          attachment=attachment))
            assert shown["flags"] & EPHEMERAL
            assert expected in text_of(shown), text_of(shown)
            if upload and upload[2]:
                assert attachment["id"] not in fake.downloads  # refused before downloading
            assert engine.jobs.list(Caller.console("admin")) == []
    asyncio.run(scenario())


def test_missing_message_content_intent_is_warned_and_the_bot_still_connects(engine, caplog) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        fake = await FakeDiscord(message_content_granted=False).start()
        settings = engine.settings.with_(discord_api_url=fake.api_url, discord_token=TOKEN)
        serving = asyncio.create_task(run(engine, settings, guild_ready_timeout=0.05))
        try:
            await fake.until(lambda: len(fake.identifies) >= 2)
            assert fake.identifies[0]["intents"] & MESSAGE_CONTENT_INTENT
            assert not fake.identifies[1]["intents"] & MESSAGE_CONTENT_INTENT
            shown = await response(fake, await fake.slash(fake.member, "search", {}))
            assert "tiny" in text_of(shown)
        finally:
            serving.cancel()
            with contextlib.suppress(BaseException):
                await serving
            await fake.stop()
    asyncio.run(scenario())
    assert "Message Content Intent" in caplog.text
    assert TOKEN not in caplog.text


def test_a_scheduled_retrain_is_announced_in_the_channel_where_it_was_set(engine) -> None:
    from bot.core.progress import JobWatcher

    async def scenario() -> None:
        async with connected(engine, watcher_factory=lambda: JobWatcher(
                engine, poll_s=0.05, min_interval_s=0.0)) as (fake, client):
            announcer = client.announcer(poll_s=0.05)
            origin = Origin(platform="discord", channel=str(fake.channel_id), scheduled=True)
            # A retrain of a model without a live version fails at once: enough to report.
            job = engine.jobs.submit("retrain", "tiny", owner="discord:1",
                                     workspace=f"discord:{fake.guild_id}", origin=origin)
            assert await asyncio.to_thread(announcer.poll_once) == [job.id]
            assert await asyncio.to_thread(announcer.poll_once) == []
            final = await fake.until(lambda: next(
                (r for r in channel_posts(fake) if "failed" in text_of(r.json or {})), None))
            assert "Retraining tiny failed" in text_of(final.json)
    asyncio.run(scenario())
