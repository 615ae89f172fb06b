"""A local fake of Slack's Socket Mode WebSocket, for tests and benchmarks (aiohttp).

    with FakeSlack(token="xoxb-test") as fake, FakeSocketMode(fake) as socket:
        # apps.connections.open (with fake.app_token) now hands out socket.url
        envelope = socket.push("events_api", event_body)
        socket.wait_ack(envelope)
        socket.drop()            # the connection closes; the client must reconnect
        socket.wait_connected(2)

Like Slack, it greets each connection with `hello`, wraps each payload in an envelope
(`envelope_id`, `type`, `payload`, `accepts_response_payload`, `retry_attempt`), records the
acks, and can end a connection abruptly (`drop`) or politely (`refresh`: a `disconnect`
message asking the client to reconnect).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from typing import Any

from aiohttp import WSMsgType, web

from bot.slack.testing import FakeSlack

__all__ = ["FakeSocketMode"]


class FakeSocketMode:
    """Socket Mode for one FakeSlack, on 127.0.0.1 in a thread with its own event loop."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.connects = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="fake-socket-mode")
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "FakeSocketMode":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> "FakeSocketMode":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        self.fake.socket_url = self.url
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/link", self._connect)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/link"

    def close(self) -> None:
        async def stop() -> None:
            for ws in list(self._sockets):
                await ws.close()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # -- the connection --------------------------------------------------------------------
    async def _connect(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._changed:
            self.connects += 1
            self._sockets.append(ws)
            self._changed.notify_all()
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"},
            "debug_info": {"host": "fake-socket-mode", "build_number": 1,
                           "approximate_connection_time": 18060}}))
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data.get("envelope_id"):
                with self._changed:
                    self._acks[str(data["envelope_id"])] = data
                    self._changed.notify_all()
        with self._changed:
            if ws in self._sockets:
                self._sockets.remove(ws)
            self._changed.notify_all()
        return ws

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    # -- what a test does ------------------------------------------------------------------
    def push(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> str:
        """Send one envelope ("events_api", "slash_commands", "interactive") on the newest
        connection; returns its envelope_id."""
        envelope_id = f"env-{next(self._ids)}"
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api",
                    "retry_attempt": retry_attempt,
                    "retry_reason": "timeout" if retry_attempt else ""}

        async def send() -> None:
            if not self._sockets:
                raise AssertionError("no Socket Mode connection is open")
            await self._sockets[-1].send_str(json.dumps(envelope))

        self._run(send())
        return envelope_id

    def wait_ack(self, envelope_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """The client's acknowledgement of an envelope (with its response payload, if any)."""
        return self._wait(lambda: self._acks.get(envelope_id), timeout,
                          f"no ack for {envelope_id}")

    def acked(self, envelope_id: str) -> bool:
        with self._changed:
            return envelope_id in self._acks

    def wait_connected(self, count: int = 1, *, timeout: float = 60.0) -> None:
        """Until `count` connections were made in all and one is open."""
        self._wait(lambda: self.connects >= count and bool(self._sockets), timeout,
                   f"fewer than {count} Socket Mode connections")

    def drop(self) -> None:
        """Close every connection at once, as a network failure would."""
        async def close() -> None:
            for ws in list(self._sockets):
                await ws.close(code=1011, message=b"gone")

        self._run(close())

    def refresh(self) -> None:
        """Ask the client to reconnect, as Slack does before it retires a connection."""
        async def say() -> None:
            for ws in list(self._sockets):
                await ws.send_str(json.dumps({"type": "disconnect", "reason": "refresh_requested",
                                              "debug_info": {"host": "fake-socket-mode"}}))

        self._run(say())

    def _wait(self, check: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = check()
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{what} within {timeout}s")
                self._changed.wait(left)
