"""The harness of the Discord tests: the real discord.py client started against a local
fake Discord (bot/discord/testing.py), a scripted chat runner, and readers of what the fake
recorded. Waits are bounded waits on recorded requests or on the store; nothing sleeps on the
clock for a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import SimpleNamespace
from typing import Any, AsyncIterator

from bot.discord.app import build_discord_client
from bot.discord.testing import FakeDiscord, Recorded
from storage import jobs as job_store

FAILED = "The file has no test split."  # why the held jobs of these tests fail

TOKEN = "test-token-do-not-log"
EPHEMERAL = 64
THUMBS_UP, THUMBS_DOWN = "\U0001F44D", "\U0001F44E"


def qa_csv(n: int) -> bytes:
    lines = ["question,answer"] + [f"How do I do task {i}?,Open menu {i} and press Go {i}."
                                   for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


class ScriptedRunner:
    """A chat runner that streams `script`; when gated, waits for the test after each piece."""

    def __init__(self) -> None:
        self.script: list[str] = ["Hello", " world", "!"]
        self.gated = False
        self.gate = threading.Semaphore(0)
        self.calls: list[list[dict]] = []

    def answer(self, target: Any, messages: list[dict], *, on_token: Any = None, **_: Any) -> Any:
        self.calls.append(messages)
        for piece in self.script:
            if on_token is not None:
                on_token(piece)
            if self.gated and not self.gate.acquire(timeout=60):
                raise TimeoutError("the test never released the runner")
        return SimpleNamespace(text="".join(self.script), tokens=len(self.script), latency_ms=1)

    def close(self) -> None:
        pass


@contextlib.asynccontextmanager
async def connected(engine: Any, fake: FakeDiscord | None = None,
                    **options: Any) -> AsyncIterator[tuple[FakeDiscord, Any]]:
    """The real client, started against a fake Discord, until the block ends."""
    fake = await (fake or FakeDiscord()).start()
    settings = engine.settings.with_(discord_api_url=fake.api_url, discord_token=TOKEN,
                                     **options.pop("settings", {}))
    options.setdefault("edit_interval_s", 0.0)
    options.setdefault("guild_ready_timeout", 0.05)
    client = build_discord_client(engine, settings, **options)
    task = asyncio.create_task(client.start(TOKEN))
    try:
        await asyncio.wait_for(client.wait_until_ready(), 60)
        await fake.wait_for(lambda r: r.method == "PUT" and r.path.endswith("/commands"))
        yield fake, client
        # whatever a test did, Discord would have accepted every payload
        assert not fake.rules.refused, fake.rules.refused
    except BaseException:
        for r in fake.requests:  # shown by pytest when the test fails
            print(r.method, r.path, str(r.json)[:300], [f for f, _ in r.files])
        raise
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await fake.stop()


async def response(fake: FakeDiscord, payload: dict, timeout: float = 60.0) -> dict:
    """The interaction's answer: the callback's message, or the followup after a deferral."""
    def answered() -> dict | None:
        calls = [r for r in fake.requests if r.path.startswith(f"/interactions/{payload['id']}/")]
        if not calls:
            return None
        if calls[0].json["type"] == 4:
            return dict(calls[0].json["data"], files=calls[0].files)
        for r in fake.requests:
            if (payload["token"] in r.path and r.method in ("PATCH", "POST")
                    and "/interactions/" not in r.path):
                return dict(r.json or {}, files=r.files)
        return None
    return await fake.until(answered, timeout=timeout)


def text_of(message: dict) -> str:
    """What a user reads: the content, the embeds and the text displays of a V2 card."""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields") or []]
    parts += [c.get("content") or "" for c in components(message) if c.get("type") == 10]
    return "\n".join(p for p in parts if p)


def components(message: dict) -> list[dict]:
    """Every component of a message, nested ones included, in order."""
    def walk(items: list[dict]) -> list[dict]:
        out = []
        for c in items:
            out.append(c)
            out += walk(c.get("components") or [])
            if c.get("accessory"):
                out += walk([c["accessory"]])
        return out
    return walk(message.get("components") or [])


def labels(message: dict) -> list[str]:
    return [c.get("label") or c.get("emoji", {}).get("name", "") for c in components(message)
            if c.get("type") == 2]


def content(r: Recorded) -> str:
    return str(r.json.get("content") or "") if isinstance(r.json, dict) else ""


def channel_posts(fake: FakeDiscord) -> list[Recorded]:
    return [r for r in fake.requests if r.method == "POST"
            and r.path == f"/channels/{fake.channel_id}/messages"]


def answer_logged(engine: Any, fake: FakeDiscord, message_id: str) -> bool:
    from storage.conversations import find_answer

    with engine.db.session() as session:
        return find_answer(session, message_id, "discord", f"discord:{fake.guild_id}") is not None


async def until(condition: Any, timeout: float = 30.0) -> None:
    """Bounded wait on the store's state (feedback leaves no request at the fake)."""
    async def check() -> None:
        while not condition():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(check(), timeout)


def run(engine: Any, job_id: int) -> None:
    """A worker elsewhere takes a held job (see the `held` fixture)."""
    now = engine.clock()
    engine.db.retrying(lambda s: job_store.claim(s, job_id, "worker", now, now))


def end(engine: Any, job_id: int) -> None:
    """The job fails in that worker."""
    now = engine.clock()
    engine.db.retrying(lambda s: job_store.finish(s, job_id, "worker", 1, "failed", now,
                                                  error=FAILED))
