"""Durable notifications through the fake Slack: a `gptstore serve` killed with SIGKILL while
its job runs is replaced by another serve process (another host's home), which edits the
same status message and posts the final metrics, plot and buttons once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.slack.testing import FakeSlack, SignedSender
from engine.app import Engine
from engine.identity import Caller
from engine.jobs.plan import WorkerPlan
from tests.helpers.jobs import BLOCK_MARKER, RELEASE
from tests.helpers.redis_server import RedisServer
from tests.helpers.s3 import free_port
from tests.helpers.slack import SECRET, TOKEN, blocks_text
from tests.scenarios.test_two_hosts import FAQ

ROOT = Path(__file__).resolve().parents[2]
PLAN = WorkerPlan(kinds={"tune": "tests.helpers.jobs:tune_blocking"},
                  heartbeat_s=0.5, stale_after_s=10.0, sweep_s=0.5)
ADMIN = Caller("slack", "slack:T1", "slack:T1:U1", channel="D1", is_admin=True)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]


def wait_until(condition, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


class World:
    def __init__(self, pg_url: str, tmp: Path, redis: RedisServer, fake: FakeSlack) -> None:
        self.tmp, self.fake = tmp, fake
        self.marker, self.release = tmp / "blocked", tmp / "release"
        self.env = {"DATABASE_URL": pg_url, "GPTSTORE_JOBS": "celery", "GPTSTORE_DEVICE": "cpu",
                    "CELERY_BROKER_URL": redis.url, "GPTSTORE_DEFAULT_BASE": "tiny",
                    "GPTSTORE_MAX_NEW_TOKENS": "16", "SLACK_BOT_TOKEN": TOKEN,
                    "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.api_url,
                    "PYTHONPATH": str(ROOT), BLOCK_MARKER: str(tmp / "blocked"),
                    RELEASE: str(tmp / "release")}
        self.processes: list[subprocess.Popen] = []

    def spawn(self, name: str, home: str, *argv: str) -> subprocess.Popen:
        env = {**os.environ, **self.env, "GPTSTORE_HOME": str(self.tmp / home)}
        log = open(self.tmp / f"{name}.log", "ab")
        process = subprocess.Popen([sys.executable, *argv], env=env, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def serve(self, home: str) -> tuple[subprocess.Popen, SignedSender]:
        port = free_port()
        process = self.spawn(f"serve-{home}", home, "-m", "bot.cli.main", "serve", "--slack",
                             f"--port={port}", "--host=127.0.0.1")
        sender = SignedSender(f"http://127.0.0.1:{port}/slack/events", SECRET)

        def up() -> bool:
            assert process.poll() is None, (self.tmp / f"serve-{home}.log").read_text()
            try:
                return sender.post(b"{}", "application/json")[0] > 0
            except OSError:
                return False

        wait_until(up, 120, "serve to listen")
        return process, sender

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.fixture
def world(pg_url: str, tmp_path: Path, tiny_base_dir: Path, settings):
    redis = RedisServer(tmp_path / "redis").start()
    fake = FakeSlack(token=TOKEN).start()
    engine = Engine.open(settings.with_(database_url=pg_url))
    engine.catalog.add_base(ADMIN, "tiny", str(tiny_base_dir))
    engine.catalog.publish(ADMIN, "tiny", "public")
    engine.close()
    out = World(pg_url, tmp_path, redis, fake)
    out.engine = Engine.open(settings.with_(database_url=pg_url), migrate=False)
    yield out
    out.close()
    out.engine.close()
    fake.close()
    redis.stop()


def finals(fake: FakeSlack) -> list[dict]:
    return [c.params for c in fake.calls("chat.postMessage")
            if "finished: gated" in blocks_text(c.params)]


def test_a_serve_killed_mid_job_is_replaced_and_the_result_still_arrives_once(
        world: World) -> None:
    world.spawn("worker", "worker-host", "-m", "engine.jobs", "serve", "--pool=solo",
                *PLAN.args())
    first, sender = world.serve("a")
    file = world.fake.add_file("Doors.csv", FAQ.encode())
    event = {"type": "message", "channel": "D1", "user": "U1", "ts": "1.000100",
             "event_ts": "1.000100", "channel_type": "im", "team": "T1", "files": [file],
             "subtype": "file_share", "text": "tune gated epochs=2 batch_size=4"}
    assert sender.event(event, event_id="Ev1")[0] == 200
    status = world.fake.wait_for("chat.postMessage", lambda p: "Job " in p.get("text", ""),
                                 timeout=120)[0]
    status_ts = status.result["ts"]
    wait_until(world.marker.exists, 300, "the job to reach its first checkpoint")
    world.fake.wait_for("chat.update", lambda p: p.get("ts") == status_ts, timeout=120)
    os.killpg(first.pid, signal.SIGKILL)  # serve dies; the job goes on in the worker
    first.wait(timeout=30)
    job = world.engine.jobs.list(ADMIN)[0]
    assert world.engine.watches.of_job(job.id)[0].state == "following"
    world.serve("b")  # another serve process, another home
    world.release.write_text("go")
    wait_until(lambda: finals(world.fake), 400, "the final reply")
    wait_until(lambda: world.engine.watches.of_job(job.id)[0].state == "delivered", 60,
               "the watch to be delivered")
    final = finals(world.fake)
    assert len(final) == 1  # once, although two processes followed the job
    text = blocks_text(final[0])
    assert final[0]["thread_ts"] == "1.000100" and "Token F1" in text
    assert "Deploy" in text and "Publish to workspace" in text  # the buttons
    assert world.engine.jobs.view(job.id).state == "succeeded"
    edits = [c.params for c in world.fake.calls("chat.update") if c.params.get("ts") == status_ts]
    assert "succeeded" in edits[-1]["text"]
    assert any(data[:4] == b"\x89PNG" for data in world.fake.uploads().values())
