"""Who is asking on Discord: users, guilds, channels, threads and roles as a Caller, plus the
seams (engine, dispatcher, executor, clock) every Discord handler shares."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import discord

from bot.discord.pacing import EditPacer
from engine.identity import Caller
from engine.settings import Settings
from engine.views import Origin

T = TypeVar("T")


@dataclass
class DiscordDeps:
    """Everything the handlers share; built once by `build_discord_client`."""

    engine: Any  # engine.app.Engine
    dispatcher: Any  # bot.core.dispatch.Dispatcher
    settings: Settings
    executor: Executor | None = None  # None: the loop's default thread pool
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("gptstore.discord"))
    clock: Callable[[], float] = time.monotonic
    watcher_factory: Callable[[], Any] | None = None  # -> bot.core.progress.JobWatcher
    ack_within_s: float = 2.0  # answer directly if done this fast, else defer (Discord allows 3 s)
    edit_interval_s: float = 1.0  # streaming answers: at most one edit per this many seconds
    token_lifetime_s: float = 14 * 60.0  # interaction tokens live 15 minutes; switch before
    announce: bool = False  # announce scheduled retrains where they were set (serve: True)
    durable: bool = False  # job notifications through the store (bot/discord/delivery.py)
    delivery_poll_s: float = 1.0  # how often the store's watches are looked at (durable)
    pacer: EditPacer = None  # type: ignore[assignment]  # None: one pace per channel (below)

    def __post_init__(self) -> None:
        if self.pacer is None:
            self.pacer = EditPacer(self.edit_interval_s, self.clock)

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking engine work in the executor, never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, lambda: fn(*args))

    def watcher(self) -> Any:
        if self.watcher_factory is not None:
            return self.watcher_factory()
        from bot.core.progress import JobWatcher
        return JobWatcher(self.engine)


async def first_time(deps: DiscordDeps, key: str) -> bool:
    """True the first time `key` is acted on by any process sharing the database (several
    `gptstore serve --discord` processes, or one reconnecting, never answer twice)."""
    return bool(await deps.off_loop(deps.engine.first_time, key))


def is_admin(member: discord.abc.User | None, permissions: discord.Permissions | None,
             admin_role: str | None) -> bool:
    """Manage Server, or the configured admin role (GPTSTORE_DISCORD_ADMIN_ROLE)."""
    if permissions is not None and (permissions.manage_guild or permissions.administrator):
        return True
    if isinstance(member, discord.Member):
        if member.guild_permissions.manage_guild or member.guild_permissions.administrator:
            return True
        if admin_role:
            wanted = admin_role.strip().lower()
            return any(role.name.lower() == wanted or str(role.id) == wanted
                       for role in member.roles)
    return False


def make_caller(user: discord.abc.User, channel: Any, guild_id: int | None, *,
                permissions: discord.Permissions | None, admin_role: str | None) -> Caller:
    """The Caller for a user acting in `channel` (a thread counts as its parent channel)."""
    thread = ""
    channel_id = str(getattr(channel, "id", "") or "")
    if isinstance(channel, discord.Thread):
        thread, channel_id = channel_id, str(channel.parent_id or channel_id)
    return Caller.for_discord(guild_id, user.id, channel=channel_id, thread=thread,
                              is_admin=is_admin(user, permissions, admin_role),
                              display_name=getattr(user, "display_name", "") or user.name)


def interaction_caller(interaction: discord.Interaction, admin_role: str | None) -> Caller:
    """The caller of a slash command, button or form; through a user install where the app
    is not installed itself, the user's own store (as in a DM with the bot)."""
    channel = interaction.channel or discord.Object(interaction.channel_id or 0)
    if users_own(interaction):
        return make_caller(interaction.user, discord.Object(interaction.channel_id or 0), None,
                           permissions=None, admin_role=None)
    return make_caller(interaction.user, channel, interaction.guild_id,
                       permissions=interaction.permissions if interaction.guild_id else None,
                       admin_role=admin_role)


def users_own(interaction: discord.Interaction) -> bool:
    """Reached through the user's own install, outside a server that has the app: a DM with
    the bot, a DM or group DM between users, or a server without the bot."""
    return interaction.is_user_integration() and not interaction.is_guild_integration()


def private_place(interaction: discord.Interaction) -> bool:
    """A place others read where the bot is not a member (a DM between users, a server
    without the bot): its answers are ephemeral, and job results go to the user's DM."""
    return users_own(interaction) and not interaction.context.dm_channel


def message_caller(message: discord.Message, admin_role: str | None) -> Caller:
    guild_id = message.guild.id if message.guild else None
    return make_caller(message.author, message.channel, guild_id, permissions=None,
                       admin_role=admin_role)


def origin_of(caller: Caller, *, message: str = "", interaction: str = "") -> Origin:
    """Where a job's progress goes (stored with the job)."""
    return Origin(platform="discord", channel=caller.channel, thread=caller.thread,
                  message=message, interaction=interaction)
