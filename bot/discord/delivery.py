"""Durable job notifications on Discord: a job's progress, result or retrain verdict reaches
the channel that asked once, also when the serve process that started it stopped meanwhile.

Following a job records its place (channel, interaction, private) as a watch in the store
(bot/core/delivery.py: Deliveries); whichever `gptstore serve --discord` process is alive
reports it. The sinks this process made itself are reused while it runs (they can still
edit the interaction's own message for its 15 minutes); a place from another process or from
before a restart becomes a sink that edits the recorded status message through the channel
(or posts a fresh one when that fails) and posts the result to the channel (a DM for a user
install's private places, as the watch recorded it). No interaction token is stored.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from bot.core.delivery import Deliveries
from bot.discord.context import DiscordDeps
from bot.discord.progress import DiscordJobSink

LIVE_SINKS = 1000  # sinks of this process kept for reuse (a job's end drops its own)


class DiscordPlaces:
    """Sinks by place: the live one of this process, else one rebuilt for the channel."""

    def __init__(self, deps: DiscordDeps, loop: asyncio.AbstractEventLoop, client: Any) -> None:
        self.deps, self.loop, self.client = deps, loop, client
        self._live: OrderedDict[str, DiscordJobSink] = OrderedDict()

    def remember(self, sink: DiscordJobSink, key: str | None = None) -> None:
        self._live[key or _key(sink.place())] = sink
        while len(self._live) > LIVE_SINKS:
            self._live.popitem(last=False)

    def rebuild(self, place: dict[str, Any]) -> DiscordJobSink:
        key = _key(place)
        sink = self._live.get(key)
        if sink is None:
            channel = self.client.get_partial_messageable(int(place["channel"]))
            sink = DiscordJobSink(self.deps, self.loop, channel=channel,
                                  private=bool(place.get("private")))
            sink.key = str(place.get("sink", ""))
            if str(place.get("status", "")).isdigit():  # edit the status message there is
                sink.fresh = channel.get_partial_message(int(place["status"]))
            self.remember(sink, key)
        return sink


class DurableFollower:
    """What `deps.watcher()` returns in serve: follow() records the watch in the store."""

    def __init__(self, deliveries: Deliveries, places: DiscordPlaces) -> None:
        self.deliveries, self.places = deliveries, places

    def follow(self, job_id: int, sink: DiscordJobSink) -> None:
        self.places.remember(sink)
        self.deliveries.follow(job_id, sink)


def start_deliveries(deps: DiscordDeps, client: Any, *, poll_s: float = 1.0,
                     min_interval_s: float = 3.0) -> tuple[Deliveries, DurableFollower]:
    """Start reporting this platform's watches (call on the client's loop)."""
    places = DiscordPlaces(deps, asyncio.get_running_loop(), client)
    deliveries = Deliveries(deps.engine, "discord", places.rebuild, poll_s=poll_s,
                            min_interval_s=min_interval_s, log=deps.log).start()
    return deliveries, DurableFollower(deliveries, places)


def _key(place: dict[str, Any]) -> str:
    return f"{place.get('channel', '')}:{place.get('message', '')}:{place.get('sink', '')}"
