"""Points discord.py's REST and interaction-webhook calls at DISCORD_API_URL, per client.

discord.py builds every URL from the class attribute `Route.BASE`. Changing that attribute
would move every client in the process; instead each of our clients rewrites the prefix of
its own requests: REST calls through its HTTPClient, interaction responses and followups
through a webhook adapter installed in the client's task context. The gateway address then
comes from that API (`GET /gateway/bot`), as `AutoShardedClient` asks for it.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from discord.http import HTTPClient, Route
from discord.utils import MISSING
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

DEFAULT_API_URL = "https://discord.com/api/v10"


def rebase(route: Route, api_base: str) -> Route:
    """Move a route built on discord.py's default base onto `api_base` (once)."""
    if api_base and route.url.startswith(Route.BASE) and not route.url.startswith(api_base):
        route.url = api_base + route.url[len(Route.BASE):]
    return route


class RebasedHTTPClient(HTTPClient):
    """discord.py's REST client, sending to `api_base` instead of discord.com."""

    def __init__(self, *args: Any, api_base: str = DEFAULT_API_URL, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_base = api_base.rstrip("/")

    @classmethod
    def replacing(cls, http: HTTPClient, api_base: str) -> "RebasedHTTPClient":
        """A rebased client with the settings of `http` (built by discord.Client)."""
        return cls(http.loop, None if http.connector is MISSING else http.connector,
                   proxy=http.proxy, proxy_auth=http.proxy_auth, unsync_clock=not http.use_clock,
                   http_trace=http.http_trace, max_ratelimit_timeout=http.max_ratelimit_timeout,
                   api_base=api_base)

    async def request(self, route: Route, **kwargs: Any) -> Any:
        return await super().request(rebase(route, self.api_base), **kwargs)


class RebasedWebhookAdapter(AsyncWebhookAdapter):
    """Interaction callbacks and followups (webhook routes), sent to `api_base`."""

    def __init__(self, api_base: str) -> None:
        super().__init__()
        self.api_base = api_base.rstrip("/")

    async def request(self, route: Route, session: aiohttp.ClientSession, **kwargs: Any) -> Any:
        return await super().request(rebase(route, self.api_base), session, **kwargs)


def use_webhook_base(api_base: str) -> None:
    """Install the rebased webhook adapter for the current task and the tasks it starts."""
    if api_base.rstrip("/") != Route.BASE:
        async_context.set(RebasedWebhookAdapter(api_base))
