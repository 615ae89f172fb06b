"""A job's status message on Discord: edited while the job runs, replaced by a fresh channel
message once the interaction can no longer be edited, and the result posted at the end.

Interaction tokens live 15 minutes, so after `token_lifetime_s` (14 minutes) on the injected
clock, or as soon as an edit fails, updates go to a normal channel message instead.
The JobWatcher calls this sink from its own thread; each call runs on the client's loop.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Coroutine

import discord

from bot.core.reply import Reply
from bot.discord.context import DiscordDeps
from bot.discord.render import MESSAGE_LIMIT, render
from bot.discord.transport import use_webhook_base
from engine.views import JobView

CALL_TIMEOUT_S = 120.0  # a Discord call stuck longer than this is given up (and logged)


class DiscordJobSink:
    """ProgressSink for a job started by a slash command or a button (`interaction`), or by
    a text command in a message (no interaction: the status is a channel message)."""

    def __init__(self, deps: DiscordDeps, loop: asyncio.AbstractEventLoop, *, channel: Any,
                 interaction: discord.Interaction | None = None, started_at: float = 0.0,
                 private: bool = False, status_id: int | None = None) -> None:
        self.deps = deps
        self.status_id = status_id  # the status message (the interaction's own), once known
        self.private = private  # a place others read without the bot: followups are ephemeral
        self.key = uuid.uuid4().hex[:12]  # names this sink's place among the live ones
        self.loop = loop
        self.interaction = interaction
        self.started_at = started_at  # on deps.clock: when the interaction was created
        self._channel = channel
        self.fresh: discord.Message | None = None  # the channel message used after that

    # -- ProgressSink (called from the watcher's thread) ---------------------------------
    def update(self, job: JobView, text: str) -> None:
        self._run(self._edit_status(content=text[:MESSAGE_LIMIT]))

    def finish(self, job: JobView, reply: Reply) -> None:
        self._run(self._finish(job, reply))

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        async def in_client_context() -> None:
            # a task started from this thread does not inherit the client's context, where
            # interaction replies are pointed at DISCORD_API_URL: point this one there too
            use_webhook_base(self.deps.settings.discord_api_url)
            await coro

        future = asyncio.run_coroutine_threadsafe(in_client_context(), self.loop)
        try:
            future.result(timeout=CALL_TIMEOUT_S)
        except Exception:  # progress is best effort: the job itself goes on
            self.deps.log.exception("could not show the progress of a job on Discord")

    # -- on the loop ----------------------------------------------------------------------
    def token_fresh(self) -> bool:
        return (self.interaction is not None
                and self.deps.clock() - self.started_at < self.deps.token_lifetime_s)

    async def _edit_status(self, **changes: Any) -> None:
        if self.fresh is None and self.interaction is not None and self.token_fresh():
            try:
                await self.interaction.edit_original_response(**changes)
                return
            except discord.HTTPException as exc:
                self.deps.log.info("the job's status message can no longer be edited (%s); "
                                   "posting a fresh one", exc.status)
        if self.fresh is not None:
            try:
                await self.fresh.edit(**changes)
                return
            except discord.HTTPException:
                self.deps.log.info("the fresh status message could not be edited; posting another")
        changes = {k: v for k, v in changes.items() if v is not None}
        self.fresh = await self.channel().send(**changes)

    async def _finish(self, job: JobView, reply: Reply) -> None:
        try:  # the status line says it is over, and its Cancel button goes
            if self.interaction is not None or self.fresh is not None:
                await self._edit_status(content=f"Job {job.id} ({job.model_name}): "
                                                f"{job.state}.", view=None)
        except discord.HTTPException:
            self.deps.log.info("could not close the status message of job %s", job.id)
        shown = render(reply)
        message: Any = None
        if self.fresh is None and self.interaction is not None and self.token_fresh():
            try:
                message = await self.interaction.followup.send(wait=True, ephemeral=self.private,
                                                               **shown.kwargs())
            except discord.HTTPException:
                message = None
        if message is None:
            message = await self.channel().send(**shown.kwargs())
        for piece in shown.more:
            await self.channel().send(piece)

    def channel(self) -> Any:
        return self._channel

    # -- durable delivery (bot/core/delivery.py) -------------------------------------------
    def place(self) -> dict[str, Any]:
        """Where this sink reports, as JSON (no token): another serve process, or this one
        after a restart, rebuilds a sink for the same channel from it."""
        started = self.interaction.id if self.interaction is not None else 0
        status = self.status_id or (self.fresh.id if self.fresh is not None else None)
        return {"channel": str(getattr(self._channel, "id", "")), "message": str(started),
                "private": self.private, "sink": self.key, "status": str(status or "")}

    def delivered(self, job: JobView, reply: Reply) -> bool:
        """Whether the result is already among the channel's latest messages (posted by a
        process that died before it could record so)."""
        future = asyncio.run_coroutine_threadsafe(self._find(reply), self.loop)
        try:
            return bool(future.result(timeout=CALL_TIMEOUT_S))
        except Exception:  # cannot tell: post it (a duplicate is better than nothing)
            return False

    async def _find(self, reply: Reply) -> bool:
        use_webhook_base(self.deps.settings.discord_api_url)
        wanted = reply.title or reply.text
        async for message in self.channel().history(limit=50):
            if message.author.bot:
                if wanted and wanted in shown_text(message):
                    return True
        return False


def shown_text(message: discord.Message) -> str:
    """The text a message shows: content, embed titles and texts, V2 text displays."""
    parts = [message.content or ""]
    for embed in message.embeds:
        parts += [embed.title or "", embed.description or ""]

    def walk(items: Any) -> None:
        for item in items or []:
            parts.append(getattr(item, "content", "") or "")
            walk(getattr(item, "children", None) or getattr(item, "components", None))
    walk(message.components)
    return "\n".join(p for p in parts if p)
