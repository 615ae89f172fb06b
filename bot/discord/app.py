"""The Discord adapter's composition: the discord.py client built from an Engine, and serve().

    client = build_discord_client(engine, settings)      # an AutoShardedClient
    await client.start(settings.discord_token)

REST goes to DISCORD_API_URL; the gateway address is asked from it (`GET /gateway/bot`), which
also tells the client how many shards to run. The Message Content intent is requested; when
the application does not have it, a warning at start says how to grant it, and if Discord
refuses the connection for it (close code 4014) the bot reconnects without it, so slash
commands, mentions and DMs keep working.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from typing import Any, Callable

import discord
from discord import app_commands

from bot.core.text import unexpected_reply
from bot.discord.chat import DiscordChat
from bot.discord.commands import build_store_group, run_text
from bot.discord.context import DiscordDeps
from bot.discord.delivery import start_deliveries
from bot.discord.rating import RatingButton
from bot.discord.render import button_command
from bot.discord.transport import RebasedHTTPClient, use_webhook_base
from engine.errors import InvalidInput
from engine.settings import Settings

NO_MESSAGE_CONTENT = (
    "Discord has not granted this application the Message Content intent, so the bot cannot "
    "read plain channel messages (it still answers slash commands, mentions and DMs). Turn on "
    "'Message Content Intent' under Bot > Privileged Gateway Intents in the Discord Developer "
    "Portal and restart `gptstore serve --discord`.")


class StoreClient(discord.AutoShardedClient):
    """discord.py's sharded client with the store's slash commands, chat and feedback."""

    def __init__(self, deps: DiscordDeps, *, intents: discord.Intents, api_base: str,
                 **options: Any) -> None:
        self._api_base = api_base  # read by _get_state, which the base __init__ calls
        super().__init__(intents=intents, **options)
        self.deps = deps
        self.chat = DiscordChat(deps)
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(build_store_group(deps))
        self.tree.on_error = self._on_tree_error  # type: ignore[method-assign]
        self.message_content_granted: bool | None = None
        self.deliveries: Any = None  # bot.core.delivery.Deliveries when deps.durable

    def _get_state(self, **options: Any) -> Any:
        self.http = RebasedHTTPClient.replacing(self.http, self._api_base)
        return super()._get_state(**options)

    async def start(self, token: str, *, reconnect: bool = True) -> None:
        use_webhook_base(self._api_base)  # interaction replies of this task and its children
        await super().start(token, reconnect=reconnect)

    async def setup_hook(self) -> None:
        flags = self.application.flags if self.application else None
        self.message_content_granted = bool(flags and (flags.gateway_message_content or
                                                       flags.gateway_message_content_limited))
        if self.intents.message_content and not self.message_content_granted:
            self.deps.log.warning(NO_MESSAGE_CONTENT)
        self.add_dynamic_items(RatingButton)  # answers' 👍/👎, from before a restart too
        if self.deps.durable and self.deliveries is None:
            # job progress and results come from the store, so a restart loses none
            self.deliveries, follower = start_deliveries(self.deps, self,
                                                         poll_s=self.deps.delivery_poll_s)
            self.deps.watcher_factory = lambda: follower
        await self.tree.sync()

    async def close(self) -> None:
        if self.deliveries is not None:  # hand the watches over to another process at once
            await asyncio.to_thread(self.deliveries.stop)
            self.deliveries = None
        await super().close()

    def announcer(self, poll_s: float = 10.0) -> Any:
        """Announces scheduled retrains in the channel where their schedule was set (call
        on the client's loop; the announcer's sinks post back onto it)."""
        from bot.core.announcer import JobAnnouncer
        from bot.discord.progress import DiscordJobSink

        loop = asyncio.get_running_loop()

        def start_sink(job: Any) -> Any:
            channel_id = job.origin.thread or job.origin.channel
            if not channel_id.isdigit():
                return None
            return DiscordJobSink(self.deps, loop,
                                  channel=self.get_partial_messageable(int(channel_id)))

        return JobAnnouncer(self.deps.engine, "discord", start_sink, watcher=self.deps.watcher(),
                            poll_s=poll_s, log=self.deps.log)

    async def on_ready(self) -> None:
        if getattr(self, "_announcer", None) is None and self.deps.announce:
            self._announcer = self.announcer()
            self._announcer.start()
        self.deps.log.info("Discord: connected as %s to %d server(s), %s shard(s)", self.user,
                           len(self.guilds), self.shard_count)

    async def on_message(self, message: discord.Message) -> None:
        if self.user is not None:
            await self._guard(self.chat.on_message(message, self.user), "message")

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self._guard(self.chat.on_reaction(payload, self), "reaction")

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.component:
            return
        text = button_command(str((interaction.data or {}).get("custom_id", "")))
        if text is not None:
            await self._guard(run_text(self.deps, interaction, text), "button")

    async def _guard(self, work: Any, what: str) -> None:
        try:
            await work
        except Exception:  # one bad event must not stop the others
            self.deps.log.exception("Discord %s handler failed", what)

    async def _on_tree_error(self, interaction: discord.Interaction,
                             error: app_commands.AppCommandError) -> None:
        reply = unexpected_reply(self.deps.log, "a slash command", error)
        if not interaction.response.is_done():
            await interaction.response.send_message(reply.text, ephemeral=True)


def default_intents(message_content: bool = True) -> discord.Intents:
    """Guild and DM messages and reactions; message content (privileged) when asked."""
    intents = discord.Intents.default()
    intents.message_content = message_content
    return intents


def build_discord_client(engine: Any, settings: Settings, *, dispatcher: Any = None,
                         executor: Executor | None = None,
                         watcher_factory: Callable[[], Any] | None = None,
                         intents: discord.Intents | None = None,
                         log: logging.Logger | None = None,
                         clock: Callable[[], float] = time.monotonic,
                         ack_within_s: float = 2.0, edit_interval_s: float = 1.0,
                         guild_ready_timeout: float = 2.0, announce: bool = False,
                         durable: bool = False, delivery_poll_s: float = 1.0) -> StoreClient:
    """The Discord client for `engine`; not connected (call `start(token)`).

    The keyword arguments are seams: the core's dispatcher, the executor for blocking engine
    work, the job watcher, the clock, how soon to defer, how often to edit a growing answer,
    and how long to wait for servers at start. `durable` (serve) follows jobs through the
    store instead (bot/discord/delivery.py), looking every `delivery_poll_s`.
    """
    if dispatcher is None:
        from bot.core.dispatch import Dispatcher
        dispatcher = Dispatcher(engine)
    deps = DiscordDeps(engine=engine, dispatcher=dispatcher, settings=settings,
                       executor=executor, clock=clock, watcher_factory=watcher_factory,
                       ack_within_s=ack_within_s, edit_interval_s=edit_interval_s,
                       announce=announce, durable=durable, delivery_poll_s=delivery_poll_s,
                       log=log or logging.getLogger("gptstore.discord"))
    # Replies echo user text and model output: neither may ping @everyone, roles or users.
    return StoreClient(deps, intents=intents or default_intents(),
                       api_base=settings.discord_api_url, guild_ready_timeout=guild_ready_timeout,
                       allowed_mentions=discord.AllowedMentions.none())


async def run(engine: Any, settings: Settings, **options: Any) -> None:
    """Connect and serve until stopped; retries once without Message Content if refused."""
    if not settings.discord_token:
        raise InvalidInput("The Discord adapter needs DISCORD_TOKEN (the bot token from the "
                           "Developer Portal) in the environment.")
    intents = options.pop("intents", None) or default_intents()
    while True:
        client = build_discord_client(engine, settings, intents=intents, **options)
        try:
            async with client:
                await client.start(settings.discord_token)
            return
        except discord.PrivilegedIntentsRequired:
            if not intents.message_content:
                raise
            client.deps.log.warning(NO_MESSAGE_CONTENT + " Reconnecting without it.")
            intents = default_intents(message_content=False)
        except discord.LoginFailure:
            raise InvalidInput("Discord refused DISCORD_TOKEN: copy the bot token again from the "
                               "Developer Portal (Bot > Reset Token).") from None


def serve(engine: Any, settings: Settings) -> None:
    """`gptstore serve --discord`: run the client until interrupted."""
    asyncio.run(run(engine, settings, announce=True, durable=True))
