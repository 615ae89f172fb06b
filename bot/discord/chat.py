"""Plain Discord messages as chat turns, answers streamed by edits, and 👍/👎 as feedback.

A message is a chat turn when it mentions the bot, is a DM, is posted in a thread the bot
opened, or is posted in a channel (or a thread of a channel) with a deployed model. A turn in
a server channel opens a thread on the question and the conversation goes on there (where
threads cannot be opened, the answer replies in the channel); the thread, or else the reply
chain, is the conversation the model sees. Generation runs in the executor; its tokens cross
to the loop with call_soon_threadsafe and show up by edits at most every `edit_interval_s`
(paced per channel, bot/discord/pacing.py), split into messages of 2,000 characters, the last
one carrying 👍/👎 buttons (bot/discord/rating.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import discord

from bot.core.command import Attachment
from bot.core.dispatch import Context, error_reply
from bot.core.reply import Reply
from bot.core.streaming import GrowingAnswer
from bot.discord.commands import download, upload_refusal
from bot.discord.context import (
    DiscordDeps,
    first_time,
    make_caller,
    message_caller,
    origin_of,
)
from bot.discord.limits import THREAD_NAME_LIMIT
from bot.discord.progress import DiscordJobSink
from bot.discord.rating import rating_view
from bot.discord.render import answer_text, render, split_text
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
        if not (mentioned or message.guild is None or _ours(message.channel, me)):
            deployed = await self.deps.off_loop(self.deps.engine.catalog.deployed, caller)
            if deployed is None:
                return
        if not text.strip() or not await first_time(self.deps, f"discord:message:{message.id}"):
            return
        history = await self.history(message, me)  # a reply chain it continues, if any
        thread = await self.open_thread(message, text)
        if thread is not None:  # the answer, and the conversation, belong to the thread
            caller = dataclasses.replace(caller, thread=str(thread.id))
        ctx = Context(caller=caller, reply_ref=_reference_id(message),
                      origin=origin_of(caller, message=str(message.id)))
        await self.stream_answer(message, ctx, text, history, place=thread)

    async def open_thread(self, message: discord.Message, text: str) -> discord.Thread | None:
        """The thread this conversation goes on in, opened on the question; None where the
        answer stays in place (a DM, a thread already, or no right to open threads)."""
        if message.guild is None or not isinstance(message.channel, discord.TextChannel):
            return None
        try:
            return await message.create_thread(name=thread_name(text),
                                               auto_archive_duration=1440)
        except discord.HTTPException as exc:
            self.deps.log.info("could not open a thread for an answer (%s); replying in the "
                               "channel", exc.status)
            return None

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
                            history: list[dict], *, place: Any = None) -> list[discord.Message]:
        """Ask the deployed model, showing the answer as it grows in `place` (a thread), or
        as a reply to the question; returns the posted messages."""
        loop = asyncio.get_running_loop()
        tokens: asyncio.Queue[str | None] = asyncio.Queue()
        stream = _Stream(self.deps, message, place)

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
            await (place or message.channel).typing()
        except discord.HTTPException:
            pass
        pumping = asyncio.ensure_future(pump())
        reply: Reply = await self.deps.off_loop(
            lambda: self.deps.dispatcher.chat_turn(ctx, text, history=history, on_token=on_token))
        tokens.put_nowait(None)  # after every token: they were queued before the reply
        await pumping
        if reply.text:
            stream.answer.replace(answer_text(reply))
        posted = await stream.show(final=True, rated=reply.message_id is not None)
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
            starter = await _starter(message.channel)  # the question the thread was opened on
            if starter is not None and len(earlier) < HISTORY_LIMIT:
                earlier.append(starter)
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
            content = _without_footer(strip_mentions(m.content, me.id)).strip()
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
    """The answer's messages: the first replies to the question (or opens its thread's
    talk), the rest follow it; the last carries the rating buttons once the answer is done."""

    def __init__(self, deps: DiscordDeps, question: discord.Message, place: Any = None) -> None:
        self.deps = deps
        self.question = question
        self.place = place  # the thread opened for the answer, or None: reply in place
        self.channel_key = str(getattr(place or question.channel, "id", ""))
        self.answer = GrowingAnswer(min_interval_s=deps.edit_interval_s, clock=deps.clock)
        self.posted: list[discord.Message] = []
        self.shown: list[str] = []

    async def show(self, *, final: bool, rated: bool = False) -> list[discord.Message]:
        if not final:
            if not self.answer.due() or not self.deps.pacer.claim(self.channel_key):
                return self.posted
            try:
                return await self._write(final=False, rated=False)
            finally:
                self.deps.pacer.release(self.channel_key)
        return await self._write(final=True, rated=rated)

    async def _write(self, *, final: bool, rated: bool) -> list[discord.Message]:
        text = self.answer.text
        pieces = split_text(text) if text.strip() else []
        if not pieces:
            return self.posted
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            view = None
            if rated and i == last:  # the id of the logged (first) message rides along
                view = rating_view(self.posted[0].id if i > 0 else None)
            if i < len(self.posted):
                if self.shown[i] != piece or view is not None:
                    await self._edit(i, piece, view, final=final)
            else:
                self.posted.append(await self._post(piece, view, first=i == 0))
                self.shown.append(piece)
        self.answer.shown()
        return self.posted

    async def _edit(self, i: int, piece: str, view: Any, *, final: bool) -> None:
        extra = {"view": view} if view is not None else {}
        try:
            await self.posted[i].edit(content=piece, **extra)
        except discord.HTTPException as exc:
            if not final:
                raise
            # the final text must arrive: a message that cannot be edited is posted anew
            self.deps.log.info("could not edit an answer (%s); posting it anew", exc.status)
            self.posted[i] = await self._post(piece, view, first=i == 0 and self.place is None)
        self.shown[i] = piece

    async def _post(self, piece: str, view: Any, *, first: bool) -> discord.Message:
        extra = {"view": view} if view is not None else {}
        if first and self.place is None:
            return await self.question.reply(piece, mention_author=False, **extra)
        return await (self.place or self.question.channel).send(piece, **extra)


class _Anonymous:
    """A reacting user discord.py has not cached (a DM reaction): only the id is known."""

    def __init__(self, user_id: int) -> None:
        self.id = user_id
        self.name = str(user_id)
        self.display_name = self.name


def thread_name(text: str) -> str:
    """A thread's name from the question that opened it (Discord takes 1 to 100 characters)."""
    line = " ".join((text or "").split())
    if len(line) > THREAD_NAME_LIMIT:
        line = line[:THREAD_NAME_LIMIT - 1].rsplit(" ", 1)[0] + "\u2026"
    return line or "Conversation"


def _without_footer(text: str) -> str:
    """An answer as the model wrote it: its `-#` footer (sources, who answered) dropped."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("-# "))


def _ours(channel: Any, me: discord.ClientUser) -> bool:
    """A thread the bot opened: every message in it continues the conversation."""
    return isinstance(channel, discord.Thread) and channel.owner_id == me.id


async def _starter(thread: discord.Thread) -> discord.Message | None:
    if thread.starter_message is not None:
        return thread.starter_message
    parent = thread.parent
    if parent is None or not hasattr(parent, "fetch_message"):
        return None
    try:
        return await parent.fetch_message(thread.id)
    except discord.HTTPException:
        return None  # opened on nothing, or the question was deleted


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
