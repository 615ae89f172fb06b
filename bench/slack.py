"""`gptstore bench slack`: how fast `/store search` is acknowledged under a burst.

50 concurrent signed `/store search support` requests hit the real Bolt app's HTTP endpoint
(POST /slack/events on 127.0.0.1) backed by a temporary store with some models and the fake
Slack Web API. Ours acknowledges at once and searches in a lazy listener; the baseline is the
same app answering synchronously (search and chat.postMessage before the ack), which is
what a plain Bolt listener does. Goal: p99 under 300 ms. `ratio` = baseline p99 / ours.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from bench.common import percentile
from bot.core.dispatch import Context, Dispatcher
from bot.slack.app import SlackHTTPServer, build_slack_app
from bot.slack.context import AdminCache, make_caller
from bot.slack.post import Poster
from bot.slack.testing import FakeSlack, SignedSender
from engine.identity import Caller
from engine.settings import Settings

SECRET = "bench-secret"
TOKEN = "xoxb-bench"
TOPICS = ("support", "billing", "returns", "shipping", "onboarding", "hr", "legal", "sales")


def fill_store(engine: Any, home: Path, count: int = 24) -> None:
    """`count` public base models with descriptions to search through."""
    admin = Caller.console("bench")
    folder = home / "fake-hf"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(b"")  # searched, never loaded
    (folder / "tokenizer.json").write_text("{}")
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        name = f"{topic}-bot-{i}"
        engine.catalog.add_base(admin, name, str(folder), tags=topic,
                                description=f"Answers {topic} questions for team {i}.")
        engine.catalog.publish(admin, name, "public")


def burst(send: SignedSender, text: str, n: int) -> list[float]:
    """Seconds from sending to the acknowledgement, for n requests released together."""
    gate = threading.Barrier(n)

    def one(i: int) -> float:
        gate.wait()
        start = time.perf_counter()
        status, _ = send.command(text, user=f"U{i % 7}", channel=f"C{i % 5}")
        if status != 200:
            raise RuntimeError(f"status {status}")
        return time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def client_bursts(url: str, n: int, rounds: int) -> list[float]:
    """Runs in its own process, as Slack does: its threads must not share our GIL."""
    send = SignedSender(url, SECRET)
    latencies: list[float] = []
    for _ in range(rounds):
        latencies += burst(send, "search support", n)
    return latencies


def client_one_by_one(url: str, n: int) -> list[float]:
    """n requests one after another: the cost of one acknowledgement without a crowd."""
    send = SignedSender(url, SECRET)
    latencies = []
    for i in range(n):
        start = time.perf_counter()
        send.command("search support", user=f"U{i % 7}")
        latencies.append(time.perf_counter() - start)
    return latencies


class RemoteSlack:
    """The fake Slack Web API in its own process (Slack's work must not share our GIL)."""

    def __init__(self) -> None:
        spawn = multiprocessing.get_context("spawn")
        self._conn, child = spawn.Pipe()
        self._process = spawn.Process(target=_serve_fake, args=(child,), daemon=True)
        self._process.start()
        self.api_url: str = self._conn.recv()

    def wait_posts(self, count: int, timeout: float = 300.0) -> None:
        self._conn.send(("chat.postMessage", count, timeout))
        if not self._conn.recv():
            raise RuntimeError(f"fewer than {count} answers were posted within {timeout}s")

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(timeout=10)


def _serve_fake(conn: Any) -> None:
    with FakeSlack(token=TOKEN) as fake:
        conn.send(fake.api_url)
        while (request := conn.recv()) is not None:
            method, count, timeout = request
            try:
                fake.wait_for(method, count=count, timeout=timeout)
                conn.send(True)
            except AssertionError:
                conn.send(False)


def measure(build: Callable[[str], Any], *, n: int, rounds: int) -> dict[str, Any]:
    fake = RemoteSlack()
    server = SlackHTTPServer(build(fake.api_url), host="127.0.0.1", port=0)
    server.start()
    send = SignedSender(server.url, SECRET)
    spawn = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as slack_side:
            slack_side.submit(time.sleep, 0).result()  # the client process is up before timing
            burst(send, "search support", 5)  # warm: auth.test, first queries
            fake.wait_posts(5)
            start = time.perf_counter()
            latencies = slack_side.submit(client_bursts, server.url, n, rounds).result()
            fake.wait_posts(5 + n * rounds)
            answered_s = time.perf_counter() - start
            alone = slack_side.submit(client_one_by_one, server.url, 20).result()
    finally:
        server.stop()
        fake.close()
    ms = [x * 1000 for x in latencies]
    return {"requests": len(ms), "ack_p50_ms": round(statistics.median(ms), 1),
            "ack_p99_ms": round(percentile(ms, 99), 1), "ack_max_ms": round(max(ms), 1),
            "all_answered_s": round(answered_s, 2),
            "one_at_a_time_ack_p50_ms": round(statistics.median(alone) * 1000, 1)}


def synchronous_app(engine: Any, settings: Settings, api_url: str) -> Any:
    """The baseline: a plain Bolt listener that searches and posts, then acknowledges."""
    from slack_bolt import App
    from slack_sdk import WebClient

    client = WebClient(token=TOKEN, base_url=api_url)
    app = App(client=client, signing_secret=SECRET, process_before_response=True)
    dispatcher, poster, admins = Dispatcher(engine), Poster(client), AdminCache(client)

    def store(ack: Any, body: dict[str, Any]) -> None:
        caller = make_caller(admins, team=body["team_id"], user=body["user_id"],
                             channel=body["channel_id"])
        reply = dispatcher.handle_text(body.get("text") or "", Context(caller))
        poster.post(reply, channel=body["channel_id"], user=body["user_id"])
        ack()

    app.command("/store")(store)
    return app


def run(args: list[str]) -> dict[str, Any]:
    from engine.app import Engine

    n = int(args[0]) if args else 50
    rounds = 3
    with tempfile.TemporaryDirectory(prefix="gptstore-bench-slack-") as tmp:
        home = Path(tmp)
        settings = Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}
                                     ).with_(slack_signing_secret=SECRET, slack_bot_token=TOKEN)
        engine = Engine.open(settings)
        try:
            fill_store(engine, home)
            from slack_sdk import WebClient

            ours = measure(lambda url: build_slack_app(
                engine, settings, WebClient(token=TOKEN, base_url=url)), n=n, rounds=rounds)
            baseline = measure(lambda url: synchronous_app(engine, settings, url), n=n,
                               rounds=rounds)
        finally:
            engine.close()
    return {
        "concurrent": n, "rounds": rounds,
        "load_average_1m": round(os.getloadavg()[0], 1),  # other work on the machine
        "ack_p50_ms": ours["ack_p50_ms"], "ack_p99_ms": ours["ack_p99_ms"],
        "goal_p99_under_300ms": ours["ack_p99_ms"] < 300,
        "ours": ours, "baseline_synchronous": baseline,
        "ratio": round(baseline["ack_p99_ms"] / max(ours["ack_p99_ms"], 0.1), 2),
    }
