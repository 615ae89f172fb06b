"""Two hosts that share only PostgreSQL and Redis, simulated on one machine: processes with
different GPTSTORE_HOME folders. A tune asked for through host A's Slack adapter runs on host
B's Celery worker and host A answers with the new version; a worker killed with SIGKILL in the
middle of an epoch of a real tune is resumed by the worker of the other host from its last
checkpoint, no step trained twice, with the adapter an uninterrupted run makes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.app import Engine
from engine.identity import Caller
from engine.jobs.plan import WorkerPlan
from engine.settings import Settings
from storage.db import Database
from tests.helpers.jobs import BLOCK_MARKER
from tests.helpers.redis_server import RedisServer
from tests.helpers.slack import blocks_text, start_rig

ROOT = Path(__file__).resolve().parents[2]
PLAN = WorkerPlan(kinds={"tune": "tests.helpers.jobs:tune_blocking"},
                  heartbeat_s=0.3, stale_after_s=4.0, sweep_s=0.3, requeue_after_s=30.0)
CODES = ["K7", "Q2", "Z9", "M4", "B8", "T3", "W6", "R1", "P5", "H0", "C4", "D2"]
FAQ = "question,answer\n" + "".join(f"What is the door code of room {i}?,Room {i} opens with "
                                    f"code {c}.\n" for i, c in enumerate(CODES))
OPTIONS = {"epochs": "2", "batch_size": "2", "lr": "1e-2", "lora_dropout": "0.1", "seed": "5"}
ADMIN = Caller("slack", "slack:T1", "slack:T1:U1", channel="D1", is_admin=True)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]


class Hosts:
    """Host A (an Engine in this process, with its own home) and the Celery workers of any
    host, each a `python -m engine.jobs serve` process with that host's home."""

    def __init__(self, pg_url: str, tmp: Path, redis: RedisServer) -> None:
        self.tmp, self.redis = tmp, redis
        base = {"DATABASE_URL": pg_url, "GPTSTORE_JOBS": "celery", "GPTSTORE_DEVICE": "cpu",
                "CELERY_BROKER_URL": redis.url, "GPTSTORE_CHECKPOINT_STEPS": "1"}
        self.env = {name: {**base, "GPTSTORE_HOME": str(tmp / name)} for name in ("a", "b")}
        self.workers: dict[str, subprocess.Popen] = {}
        self.marker = tmp / "blocked"

    def settings(self, host: str) -> Settings:
        return Settings.from_env(self.env[host]).with_(default_base="tiny", max_new_tokens=16)

    def start_worker(self, host: str) -> subprocess.Popen:
        env = {**os.environ, **self.env[host], "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
               BLOCK_MARKER: str(self.marker)}
        log = open(self.tmp / f"worker-{host}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.jobs", "serve", "--pool=solo", *PLAN.args()],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers[host] = process
        return process

    def kill(self, pid: int) -> str:
        host = next(h for h, p in self.workers.items() if p.pid == pid)
        os.killpg(pid, signal.SIGKILL)
        self.workers[host].wait(timeout=30)
        return host

    def close(self) -> None:
        for process in self.workers.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.fixture
def hosts(pg_url: str, tmp_path: Path, tiny_base_dir: Path):
    Database(pg_url).migrate()
    redis = RedisServer(tmp_path / "redis").start()
    world = Hosts(pg_url, tmp_path, redis)
    engine = Engine.open(world.settings("a"))
    engine.catalog.add_base(ADMIN, "tiny", str(tiny_base_dir))  # into the artifact store
    engine.catalog.publish(ADMIN, "tiny", "public")
    world.engine = engine
    yield world
    world.close()
    engine.close()
    redis.stop()


def running_on(engine: Engine, job_id: int) -> list[str]:
    return [e.data["worker"] for e in engine.jobs.get(ADMIN, job_id).events
            if e.data.get("state") == "running"]


def adapter_tensors(engine: Engine, model: str) -> dict:
    from safetensors.torch import load_file

    folder = engine.hub.local(engine.catalog.live_target(engine.catalog.resolve(ADMIN, model)).adapter_path)
    return load_file(str(folder / "adapter_model.safetensors"))


def test_a_tune_asked_on_host_a_runs_on_host_b_and_host_a_answers_with_it(hosts: Hosts) -> None:
    engine = hosts.engine
    worker_b = hosts.start_worker("b")  # the only worker: host A has none
    rig = start_rig(engine, hosts.settings("a"))
    try:
        file = rig.fake.add_file("Doors.csv", FAQ.encode())
        event = {"type": "message", "channel": "D1", "user": "U1", "ts": "1.000100",
                 "event_ts": "1.000100", "channel_type": "im", "team": "T1",
                 "text": "tune doors epochs=2 batch_size=4", "files": [file],
                 "subtype": "file_share"}
        assert rig.send.event(event, event_id="Ev1")[0] == 200
        ended = rig.fake.wait_for("chat.postMessage", lambda p: "finished" in blocks_text(p)
                                  or "failed" in blocks_text(p), timeout=400)[0].params
        assert "doors version 1 is live" in blocks_text(ended), blocks_text(ended)
        job = engine.jobs.list(ADMIN)[0]
        assert [w.split(":")[-2] for w in running_on(engine, job.id)] == [str(worker_b.pid)]
        plot = rig.fake.wait_for("files.completeUploadExternal", timeout=60)
        assert plot and any(data[:4] == b"\x89PNG" for data in rig.fake.uploads().values())
        target = engine.catalog.live_target(engine.catalog.resolve(ADMIN, "doors"))
        assert target.adapter_path.startswith("artifact:")  # no path of host B's disk
        posted = len(rig.fake.calls("chat.postMessage"))
        rig.send.command("chat doors What is the door code of room 1?", channel="D1")
        rig.fake.wait_for("chat.postMessage", count=posted + 1, timeout=120)
        rig.drain()
        assert engine.runner.loaded_adapters(target.base_path) == [target.adapter_path]
        cached = engine.hub.local(target.adapter_path)
        assert str(cached).startswith(str(hosts.tmp / "a"))  # host A's own copy
    finally:
        rig.close()


def test_a_worker_killed_mid_epoch_is_resumed_on_the_other_host(hosts: Hosts) -> None:
    engine = hosts.engine
    workers = {hosts.start_worker("a").pid, hosts.start_worker("b").pid}
    killed = engine.jobs.submit_tune(ADMIN, "killed", "doors.csv", FAQ.encode(), dict(OPTIONS))
    stop_at = time.monotonic() + 300
    while not hosts.marker.exists():
        assert time.monotonic() < stop_at, "the tune never reached its checkpoint"
        assert not engine.jobs.view(killed.id).finished, engine.jobs.view(killed.id).error
        time.sleep(0.1)
    pid, stage, step = hosts.marker.read_text().split()
    dead_host = hosts.kill(int(pid))
    done = engine.jobs.wait(killed.id, timeout=400, poll=0.2)
    assert done.state == "succeeded", done.error
    attempts = running_on(engine, killed.id)
    assert len(attempts) == 2 and attempts[0].split(":")[-2] == pid
    assert attempts[1].split(":")[-2] in {str(p) for p in workers - {int(pid)}}  # other host
    events = engine.jobs.get(ADMIN, killed.id).events
    checkpoints = [e.data for e in events if e.kind == "checkpoint"]
    for name in ("select", "final"):
        notes = [n for n in checkpoints if n["stage"] == name]
        covered = [s for n in notes for s in range(n["from_step"], n["to_step"] + 1)]
        assert covered == list(range(1, notes[-1]["total_steps"] + 1)), (name, covered)
    first = [n for n in checkpoints if n["attempt"] == 1]
    assert first[-1]["stage"] == stage and first[-1]["to_step"] == int(step)
    second = [n for n in checkpoints if n["attempt"] == 2]
    assert second[0]["stage"] == stage and second[0]["from_step"] == int(step) + 1
    phases = [e.data.get("phase") for e in events if e.kind == "progress"]
    assert phases.count("evaluating base") == 1  # not evaluated again after the kill
    hosts.start_worker(dead_host)  # that host comes back; either may run the reference
    whole = engine.jobs.submit_tune(ADMIN, "whole", "doors.csv", FAQ.encode(), dict(OPTIONS))
    assert engine.jobs.wait(whole.id, timeout=400, poll=0.2).state == "succeeded"
    resumed, uninterrupted = adapter_tensors(engine, "killed"), adapter_tensors(engine, "whole")
    assert resumed.keys() == uninterrupted.keys() and resumed
    assert all((resumed[k] == uninterrupted[k]).all() for k in resumed)
