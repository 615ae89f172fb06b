"""Plain Discord messages as chat turns, answers streamed by edits, and 👍/👎 as feedback.

A message is a chat turn when it mentions the bot, is a DM, or is posted in a channel (or a
thread of a channel) with a deployed model; the thread, or else the reply chain, is the
conversation. Generation runs in the executor; its tokens cross to the loop with
call_soon_threadsafe and show up by edits at most every `edit_interval_s`, split into
messages of 2,000 characters.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import discord

from bot.core.command import Attachment
from bot.core.dispatch import Context, error_reply
from bot.core.reply import Reply
from bot.core.streaming import GrowingAnswer
from bot.core.text import footer_lines
from bot.discord.commands import download, upload_refusal
from bot.discord.context import (
    DiscordDeps,
    first_time,
    make_caller,
    message_caller,
    origin_of,
)
from bot.discord.progress import DiscordJobSink
from bot.discord.render import render, split_text
from engine.errors import InvalidInput

HISTORY_LIMIT = 20  # earlier messages of a thread or reply chain given as context
FEEDBACK = {"\U0001F44D": "up", "\U0001F44E": "down"}  # 👍 👎 (any skin tone)
COMMAND_PREFIXES = ("/store", "store")


class DiscordChat:
    def __init__(self, deps: DiscordDeps) -> None:
        self.deps = deps

    # -- messages -------------------------------------------------------------------------
    async def on_message(self, message: discord.Message, me: discord.ClientUser) -> None:
        if message.author.bot or message.author.id == me.id:
            return
        mentioned = any(u.id == me.id for u in message.mentions)
        text = strip_mentions(message.content, me.id)
        caller = message_caller(message, self.deps.settings.discord_admin_role)
        if _is_command(text) and (mentioned or message.guild is None):
            if await first_time(self.deps, f"discord:message:{message.id}"):
                await self._command(message, caller, text)
            return
        if not (mentioned or message.guild is None):
            deployed = await self.deps.off_loop(self.deps.engine.catalog.deployed, caller)
            if deployed is None:
                return
        if not text.strip() or not await first_time(self.deps, f"discord:message:{message.id}"):
            return
        history = await self.history(message, me)
        ctx = Context(caller=caller, reply_ref=_reference_id(message),
                      origin=origin_of(caller, message=str(message.id)))
        await self.stream_answer(message, ctx, text, history)

    async def _command(self, message: discord.Message, caller: Any, text: str) -> None:
        try:
            files = tuple([Attachment(a.filename, await download(self.deps, a))
                           for a in _checked(self.deps, message.attachments)])
        except InvalidInput as exc:
            reply = error_reply(exc)
        else:
            ctx = Context(caller=caller, reply_ref=_reference_id(message), attachments=files,
                          origin=origin_of(caller, message=str(message.id)))
            reply = await self.deps.off_loop(self.deps.dispatcher.handle_text, text, ctx)
        shown = render(reply)
        await message.reply(**shown.kwargs())
        for piece in shown.more:
            await message.channel.send(piece)
        if reply.job_id is not None:
            sink = DiscordJobSink(self.deps, asyncio.get_running_loop(), channel=message.channel)
            self.deps.watcher().follow(reply.job_id, sink)

    async def stream_answer(self, message: discord.Message, ctx: Context, text: str,
                            history: list[dict]) -> list[discord.Message]:
        """Ask the deployed model, showing the answer as it grows; returns the posted messages."""
        loop = asyncio.get_running_loop()
        tokens: asyncio.Queue[str | None] = asyncio.Queue()
        stream = _Stream(self.deps, message)

        def on_token(piece: str) -> None:  # called in the generation thread
            loop.call_soon_threadsafe(tokens.put_nowait, piece)

        async def pump() -> None:
            while (piece := await tokens.get()) is not None:
                while not tokens.empty():
                    more = tokens.get_nowait()
                    if more is None:
                        stream.answer.append(piece)
                        return
                    piece += more
                stream.answer.append(piece)
                try:
                    await stream.show(final=False)
                except discord.HTTPException as exc:  # the final show tries again
                    self.deps.log.info("could not show a growing answer (%s)", exc.status)

        try:
            await message.channel.typing()
        except discord.HTTPException:
            pass
        pumping = asyncio.ensure_future(pump())
        reply: Reply = await self.deps.off_loop(
            lambda: self.deps.dispatcher.chat_turn(ctx, text, history=history, on_token=on_token))
        tokens.put_nowait(None)  # after every token: they were queued before the reply
        await pumping
        if reply.text:
            footer = "".join(f"\n-# {line}" for line in footer_lines(reply))
            stream.answer.replace(reply.text + footer)
        posted = await stream.show(final=True)
        if reply.message_id is not None and posted:
            await self.deps.off_loop(self.deps.dispatcher.answer_posted, reply.message_id,
                                     str(posted[0].id))
        return posted

    async def history(self, message: discord.Message, me: discord.ClientUser) -> list[dict]:
        """The conversation so far, oldest first: the thread, or else the reply chain."""
        earlier: list[discord.Message] = []
        if isinstance(message.channel, discord.Thread):
            async for m in message.channel.history(limit=HISTORY_LIMIT, before=message):
                earlier.append(m)
        else:
            ref = message.reference
            while ref is not None and ref.message_id and len(earlier) < HISTORY_LIMIT:
                found = ref.resolved if isinstance(ref.resolved, discord.Message) else None
                if found is None:
                    try:
                        found = await message.channel.fetch_message(ref.message_id)
                    except discord.HTTPException:
                        break
                earlier.append(found)
                ref = found.reference
        turns = []
        for m in reversed(earlier):
            role = "assistant" if m.author.id == me.id else "user"
            content = strip_mentions(m.content, me.id).strip()
            if content:
                turns.append({"role": role, "content": content})
        return turns

    # -- reactions ------------------------------------------------------------------------
    async def on_reaction(self, payload: discord.RawReactionActionEvent,
                          client: discord.Client) -> None:
        kind = FEEDBACK.get(_base_emoji(str(payload.emoji)))
        if kind is None or client.user is None or payload.user_id == client.user.id:
            return
        user = payload.member or client.get_user(payload.user_id) or _Anonymous(payload.user_id)
        channel = client.get_channel(payload.channel_id) or discord.Object(payload.channel_id)
        caller = make_caller(user, channel, payload.guild_id, permissions=None,
                             admin_role=self.deps.settings.discord_admin_role)
        ctx = Context(caller=caller, reply_ref=str(payload.message_id),
                      origin=origin_of(caller, message=str(payload.message_id)))
        reply = await self.deps.off_loop(self.deps.dispatcher.feedback, ctx,
                                         str(payload.message_id), kind)
        if reply is not None and reply.is_error:
            self.deps.log.info("feedback on %s not stored: %s", payload.message_id, reply.text)


class _Stream:
    """The answer's messages: the first replies to the question, the rest follow it."""

    def __init__(self, deps: DiscordDeps, question: discord.Message) -> None:
        self.deps = deps
        self.question = question
        self.answer = GrowingAnswer(min_interval_s=deps.edit_interval_s, clock=deps.clock)
        self.posted: list[discord.Message] = []
        self.shown: list[str] = []

    async def show(self, *, final: bool) -> list[discord.Message]:
        if not final and not self.answer.due():
            return self.posted
        text = self.answer.text
        pieces = split_text(text) if text.strip() else []
        if not pieces:
            return self.posted
        for i, piece in enumerate(pieces):
            if i < len(self.posted):
                if self.shown[i] != piece:
                    await self.posted[i].edit(content=piece)
                    self.shown[i] = piece
            elif i == 0:
                self.posted.append(await self.question.reply(piece, mention_author=False))
                self.shown.append(piece)
            else:
                self.posted.append(await self.question.channel.send(piece))
                self.shown.append(piece)
        self.answer.shown()
        return self.posted


class _Anonymous:
    """A reacting user discord.py has not cached (a DM reaction): only the id is known."""

    def __init__(self, user_id: int) -> None:
        self.id = user_id
        self.name = str(user_id)
        self.display_name = self.name


def strip_mentions(text: str, bot_id: int) -> str:
    return re.sub(rf"<@!?{bot_id}>", "", text or "").strip()


def _is_command(text: str) -> bool:
    lowered = text.strip().lower()
    return any(lowered == p or lowered.startswith(p + " ") for p in COMMAND_PREFIXES)


def _reference_id(message: discord.Message) -> str:
    ref = message.reference
    return str(ref.message_id) if ref is not None and ref.message_id else ""


def _base_emoji(emoji: str) -> str:
    return emoji[:1] if emoji else emoji  # drops skin-tone modifiers and variation selectors


def _checked(deps: DiscordDeps, attachments: list[discord.Attachment]) -> list[discord.Attachment]:
    refused = upload_refusal(deps, attachments)
    if refused is not None:
        raise InvalidInput(refused.text)
    return attachments
