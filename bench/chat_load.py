"""Chat under load (`gptstore bench load`, its chat half): concurrent users over loopback
through the Slack HTTP endpoint, answered by a tiny model built from a config.

Each simulated user posts a signed `message` event to POST /slack/events in a channel with
a deployment, waits until the streamed answer is final on the fake Slack Web API, and sends
the next one. Reported: requests per second held, error rate (goal 0) and latency p50/p99.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import percentile
from bot.slack.app import SlackHTTPServer, build_slack_app
from bot.slack.testing import FakeSlack, SignedSender
from engine.identity import Caller
from engine.settings import Settings
from engine.testing import tiny_model

SECRET = "bench-secret"
TOKEN = "xoxb-bench"
QUESTIONS = ("What are your opening hours?", "How do I reset my password?",
             "Can I return an item after 30 days?", "Do you ship abroad?")


def chat_load(users: int = 8, turns_per_user: int = 6, max_new_tokens: int = 32) -> dict[str, Any]:
    from slack_sdk import WebClient

    from engine.app import Engine

    with tempfile.TemporaryDirectory(prefix="gptstore-bench-chat-") as tmp:
        home = Path(tmp)
        settings = Settings.from_env({"GPTSTORE_HOME": str(home / "home"),
                                      "GPTSTORE_DEVICE": "cpu"}).with_(
            slack_signing_secret=SECRET, slack_bot_token=TOKEN, chat_rate_per_minute=100_000,
            max_new_tokens=max_new_tokens)
        engine = Engine.open(settings)
        model_dir = tiny_model(home / "tiny")
        admin = Caller("slack", "slack:T1", "slack:T1:UADMIN", channel="C1", is_admin=True)
        engine.catalog.add_base(admin, "tiny", str(model_dir), description="bench model")
        engine.catalog.publish(admin, "tiny", "public")
        engine.catalog.deploy(admin, "tiny")
        fake = FakeSlack(token=TOKEN).start()
        app = build_slack_app(engine, settings, WebClient(token=TOKEN, base_url=fake.api_url))
        server = SlackHTTPServer(app, host="127.0.0.1", port=0)
        server.start()
        send = SignedSender(server.url, SECRET)
        counter = iter(range(1, 1_000_000))
        lock = threading.Lock()

        def turn(user: int) -> float | None:
            with lock:
                ts = f"9.{next(counter):06d}"
            start = time.perf_counter()
            event = {"type": "message", "channel": "C1", "channel_type": "channel", "ts": ts,
                     "user": f"U{user}", "text": QUESTIONS[user % len(QUESTIONS)], "team": "T1"}
            status, _ = send.event(event, event_id=f"Ev{ts}")
            if status != 200:
                return None
            try:
                fake.wait_answer("C1", ts, timeout=120)
            except AssertionError:
                return None
            return time.perf_counter() - start

        def user_loop(user: int) -> list[float | None]:
            return [turn(user) for _ in range(turns_per_user)]

        try:
            turn(0)  # warm: loads the model, auth.test
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=users) as pool:
                results = [r for rs in pool.map(user_loop, range(users)) for r in rs]
            wall = time.perf_counter() - start
            errors = sum(r is None for r in results) + len(fake.calls("chat.postEphemeral"))
        finally:
            server.stop()
            fake.close()
            engine.close()
    ok = [r * 1000 for r in results if r is not None]
    return {
        "users": users, "turns": len(results), "max_new_tokens": max_new_tokens,
        "requests_per_s": round(len(ok) / wall, 2),
        "error_rate": round(errors / len(results), 4),
        "latency_p50_ms": round(statistics.median(ok), 1) if ok else None,
        "latency_p99_ms": round(percentile(ok, 99), 1) if ok else None,
        "wall_s": round(wall, 2),
    }


def run(args: list[str]) -> dict[str, Any]:
    """Stand-alone entry (`python -m` or the load benchmark calls chat_load())."""
    users = int(args[0]) if args else 8
    return chat_load(users=users)
