"""`gptstore bench slack`: how fast Slack is acknowledged under a burst, and how soon an
answer's first characters show.

1. Commands: 50 concurrent signed `/store search support` requests hit the real Bolt app's
   HTTP endpoint (POST /slack/events on 127.0.0.1) backed by a temporary store with some
   models and the fake Slack Web API. Ours acknowledges at once and searches in a lazy
   listener; the baseline is the same app answering synchronously (search and
   chat.postMessage before the ack), which is what a plain Bolt listener does. Goal: p99
   under 300 ms. `ratio` = baseline p99 / ours.
2. Mentions: a burst of 50 `app_mention` events answered by a tiny model (built from a
   config), ours (ack, then stream natively) against the same synchronous baseline (answer,
   then ack). `mentions.ratio` = baseline ack p99 / ours.
3. First characters: mentions one at a time, the time from sending the event until the
   answer's first characters reach Slack, native streaming (chat.startStream) against the
   edits it falls back to (chat.postMessage, then chat.update), with the calls and bytes
   each answer cost. `first_characters.ratio` = edits p50 / native p50.
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
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from bench.common import percentile
from bot.core.text import footer_lines
from bot.core.dispatch import Context, Dispatcher
from bot.slack.app import SlackHTTPServer, build_slack_app
from bot.slack.context import AdminCache, make_caller
from bot.slack.post import Poster
from bot.slack.testing import FakeSlack, SignedSender
from engine.identity import Caller
from engine.settings import Settings
from engine.testing import tiny_model

QUESTIONS = ("What are your opening hours?", "How do I reset my password?",
             "Can I return an item after 30 days?", "Do you ship abroad?")
STREAM_INTERVAL_S = 0.2  # edits (and appends) at most this often while an answer streams
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


def mention_event(i: int, prefix: str) -> tuple[dict[str, Any], str]:
    ts = f"{prefix}.{i:06d}"
    return {"type": "app_mention", "channel": f"C{i % 5}", "user": f"U{i % 7}", "ts": ts,
            "event_ts": ts, "team": "T1", "text": f"<@UBOT> {QUESTIONS[i % len(QUESTIONS)]}"}, ts


def burst(send: SignedSender, text: str, n: int, *, mentions: str = "") -> list[float]:
    """Seconds from sending to the acknowledgement, for n requests released together
    (`/store TEXT`, or with `mentions` a prefix, app_mention events)."""
    gate = threading.Barrier(n)

    def one(i: int) -> float:
        gate.wait()
        start = time.perf_counter()
        if mentions:  # a synchronous baseline may take long: Slack would have retried at 3 s
            event, ts = mention_event(i, mentions)
            status, _ = send.event(event, event_id=f"Ev{ts}", timeout=300)
        else:
            status, _ = send.command(text, user=f"U{i % 7}", channel=f"C{i % 5}")
        if status != 200:
            raise RuntimeError(f"status {status}")
        return time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def client_bursts(url: str, n: int, rounds: int, mentions: str = "") -> list[float]:
    """Runs in its own process, as Slack does: its threads must not share our GIL."""
    send = SignedSender(url, SECRET)
    latencies: list[float] = []
    for round_ in range(rounds):
        latencies += burst(send, "search support", n,
                           mentions=f"{mentions}{round_}" if mentions else "")
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

    def wait_posts(self, count: int, timeout: float = 300.0,
                   method: str = "chat.postMessage") -> bool:
        """Whether `count` answers were posted within `timeout` (a loaded machine may time a
        model out: that answer is then an error note, not a post)."""
        self._conn.send((method, count, timeout))
        return bool(self._conn.recv())

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


def measure(build: Callable[[str], Any], *, n: int, rounds: int, mentions: str = "",
            answered: str = "chat.postMessage") -> dict[str, Any]:
    fake = RemoteSlack()
    server = SlackHTTPServer(build(fake.api_url), host="127.0.0.1", port=0)
    server.start()
    send = SignedSender(server.url, SECRET)
    spawn = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as slack_side:
            slack_side.submit(time.sleep, 0).result()  # the client process is up before timing
            burst(send, "search support", 5,
                  mentions=f"{mentions}9" if mentions else "")  # warm: auth.test, the model
            fake.wait_posts(5, method=answered)
            start = time.perf_counter()
            latencies = slack_side.submit(client_bursts, server.url, n, rounds,
                                          mentions).result()
            all_answered = fake.wait_posts(5 + n * rounds, method=answered)
            answered_s = time.perf_counter() - start
            alone = slack_side.submit(client_one_by_one, server.url, 20).result() \
                if not mentions else []
    finally:
        server.stop()
        fake.close()
    ms = [x * 1000 for x in latencies]
    return {"requests": len(ms), "ack_p50_ms": round(statistics.median(ms), 1),
            "acks_over_3s": sum(x > 3000 for x in ms),  # Slack retries those
            "ack_p99_ms": round(percentile(ms, 99), 1), "ack_max_ms": round(max(ms), 1),
            "all_answered_s": round(answered_s, 2) if all_answered else None,
            **({"one_at_a_time_ack_p50_ms": round(statistics.median(alone) * 1000, 1)}
               if alone else {})}


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

    def mention(ack: Any, body: dict[str, Any], event: dict[str, Any]) -> None:
        caller = make_caller(admins, team=body["team_id"], user=event["user"],
                             channel=event["channel"], thread=event["ts"])
        reply = dispatcher.chat_turn(Context(caller), event.get("text") or "")
        reply = replace(reply, text=reply.text + "\n" + "\n".join(footer_lines(reply)))
        poster.post(reply, channel=event["channel"], thread_ts=event["ts"])
        ack()

    app.command("/store")(store)
    app.event("app_mention")(mention)
    return app


def first_characters(engine: Any, settings: Settings, *, native: bool,
                     answers: int = 10) -> dict[str, Any]:
    """Mentions one at a time; the time until each answer's first characters reach Slack."""
    from slack_sdk import WebClient

    with FakeSlack(token=TOKEN) as fake:
        executor = ThreadPoolExecutor(max_workers=8)
        app = build_slack_app(engine, settings, WebClient(token=TOKEN, base_url=fake.api_url),
                              executor=executor, native_streaming=native,
                              stream_interval_s=STREAM_INTERVAL_S)
        server = SlackHTTPServer(app, host="127.0.0.1", port=0)
        server.start()
        send = SignedSender(server.url, SECRET)
        prefix = "7" if native else "8"
        waits, calls, sent = [], [], []
        try:
            for i in range(answers + 1):  # the first one warms the model
                event, ts = mention_event(i, prefix)
                start = time.monotonic()
                send.event(event, event_id=f"Ev{ts}")
                fake.wait_answer(event["channel"], ts, timeout=120)
                mine = [c for c in fake.calls() if c.method.startswith("chat.") and (
                    c.params.get("thread_ts") == ts or c.params.get("ts") in _answer_ts(
                        fake, ts))]
                shown = [c for c in mine if c.method in ("chat.startStream", "chat.postMessage")]
                if i:
                    waits.append((shown[0].at - start) * 1000)
                    calls.append(len(mine))
                    sent.append(sum(len(json.dumps(c.params)) for c in mine))
        finally:
            server.stop()
            executor.shutdown(wait=True)
    return {"first_characters_p50_ms": round(statistics.median(waits), 1),
            "first_characters_p90_ms": round(percentile(waits, 90), 1),
            "calls_per_answer": round(statistics.mean(calls), 1),
            "bytes_sent_per_answer": round(statistics.mean(sent))}


def _answer_ts(fake: FakeSlack, thread_ts: str) -> set[str]:
    return {str(c.result.get("ts")) for c in fake.calls()
            if c.params.get("thread_ts") == thread_ts and c.result.get("ts")}


def run(args: list[str]) -> dict[str, Any]:
    from slack_sdk import WebClient

    from engine.app import Engine

    n = int(args[0]) if args else 50
    rounds = 3
    with tempfile.TemporaryDirectory(prefix="gptstore-bench-slack-") as tmp:
        home = Path(tmp)
        settings = Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}
                                     ).with_(slack_signing_secret=SECRET, slack_bot_token=TOKEN,
                                             default_base="tiny", max_new_tokens=48,
                                             chat_rate_per_minute=100_000)
        engine = Engine.open(settings)
        try:
            fill_store(engine, home)
            admin = Caller.console("bench")
            engine.catalog.add_base(admin, "tiny", str(tiny_model(home / "tiny")),
                                    description="bench model")
            engine.catalog.publish(admin, "tiny", "public")

            def ours(url: str) -> Any:
                return build_slack_app(engine, settings, WebClient(token=TOKEN, base_url=url))

            def baseline(url: str) -> Any:
                return synchronous_app(engine, settings, url)

            commands = measure(ours, n=n, rounds=rounds)
            commands_base = measure(baseline, n=n, rounds=rounds)
            mentions = measure(ours, n=n, rounds=1, mentions="5", answered="chat.stopStream")
            mentions_base = measure(baseline, n=n, rounds=1, mentions="6")
            native = first_characters(engine, settings, native=True)
            edits = first_characters(engine, settings, native=False)
        finally:
            engine.close()
    return {
        "concurrent": n, "rounds": rounds,
        "load_average_1m": round(os.getloadavg()[0], 1),  # other work on the machine
        "ack_p50_ms": commands["ack_p50_ms"], "ack_p99_ms": commands["ack_p99_ms"],
        "goal_p99_under_300ms": commands["ack_p99_ms"] < 300,
        "ours": commands, "baseline_synchronous": commands_base,
        "ratio": round(commands_base["ack_p99_ms"] / max(commands["ack_p99_ms"], 0.1), 2),
        "mentions": {
            "ours": mentions, "baseline_synchronous": mentions_base,
            "ratio": round(mentions_base["ack_p99_ms"] / max(mentions["ack_p99_ms"], 0.1), 2)},
        "first_characters": {
            "stream_interval_s": STREAM_INTERVAL_S, "native": native, "edits": edits,
            "ratio": round(edits["first_characters_p50_ms"]
                           / max(native["first_characters_p50_ms"], 0.1), 2)},
    }
