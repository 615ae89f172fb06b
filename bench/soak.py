"""`gptstore bench soak`: two `gptstore serve` and two Celery `gptstore worker` processes on
PostgreSQL and a private Redis, all on 127.0.0.1, under bounded chat traffic from simulated
users over both Slack endpoints plus a stream of tunes on the tiny model, while a worker, a
serve process and Redis are each killed with SIGKILL once (and started again, as a supervisor
would). Reports requests served, errors, p50/p99 latency, jobs submitted against finished,
duplicate answers, lost notifications and peak memory per process. No baseline: the figures
that must hold are jobs finished == submitted, duplicates == 0, lost notifications == 0.

    gptstore bench soak [--seconds 120] [--users 6] [--tune-every 20]
                        [--database postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import options, percentile
from bot.slack.testing import FakeSlack, SignedSender
from engine.app import Engine
from engine.identity import Caller
from engine.settings import Settings
from engine.testing import tiny_model

ROOT = Path(__file__).resolve().parents[1]
SECRET, TOKEN = "soak-secret", "xoxb-soak"
CODES = ["K7", "Q2", "Z9", "M4", "B8", "T3", "W6", "R1", "P5", "H0", "C4", "D2"]
FAQ = "question,answer\n" + "".join(f"What is the door code of room {i}?,Room {i} opens with "
                                    f"code {c}.\n" for i, c in enumerate(CODES))
ADMIN = Caller("slack", "slack:T1", "slack:T1:UADMIN", is_admin=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Fleet:
    """The processes of the soak: each role can be killed and started again."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.processes: dict[str, subprocess.Popen] = {}
        self.argv: dict[str, tuple[str, list[str]]] = {}
        self.peak_mb: dict[str, float] = {}

    def add(self, role: str, home: str, argv: list[str]) -> None:
        self.argv[role] = (home, argv)
        self.start(role)

    def start(self, role: str) -> None:
        home, argv = self.argv[role]
        env = {**os.environ, **self.env, "GPTSTORE_HOME": str(self.tmp / home),
               "PYTHONPATH": str(ROOT)}
        log = open(self.tmp / f"{role}.log", "ab")
        self.processes[role] = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def kill(self, role: str) -> None:
        process = self.processes[role]
        self.sample()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def sample(self) -> None:
        """Peak resident memory (VmHWM) of each role's process and its children."""
        for role, process in self.processes.items():
            total = 0.0
            for pid in _tree(process.pid):
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            total += int(line.split()[1]) / 1024
                except OSError:
                    continue
            self.peak_mb[role] = max(self.peak_mb.get(role, 0.0), round(total, 1))

    def close(self) -> None:
        for role in list(self.processes):
            process = self.processes[role]
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            children = []
        todo += [int(c) for c in children]
    return found


def wait_port(port: int, limit: float = 180.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {limit:.0f} s")


class Traffic:
    """Simulated users, each asking in its own DM, one question at a time, over whichever
    endpoint answers (a refused connection is retried on the other, with the same event id,
    as Slack retries)."""

    def __init__(self, fake: FakeSlack, senders: list[SignedSender]) -> None:
        self.fake, self.senders = fake, senders
        self.latencies: list[float] = []
        self.sent = self.errors = 0
        self.lock = threading.Lock()
        self.asked: list[tuple[str, str]] = []  # (channel, ts) of every question

    def user(self, index: int, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            channel, ts = f"D{index}", f"{1000 + index}.{n:06d}"
            event = {"type": "message", "channel": channel, "user": f"U{index}", "ts": ts,
                     "event_ts": ts, "channel_type": "im", "team": "T1",
                     "text": f"What is the door code of room {n % 12}?"}
            started = time.monotonic()
            if not self._send(event, f"Ev-{index}-{n}", n):
                continue
            with self.lock:
                self.sent += 1
                self.asked.append((channel, ts))
            try:
                self.fake.wait_answer(channel, ts, timeout=60)
                with self.lock:
                    self.latencies.append(time.monotonic() - started)
            except AssertionError:
                with self.lock:
                    self.errors += 1

    def _send(self, event: dict, event_id: str, n: int) -> bool:
        for attempt in range(6):
            sender = self.senders[(n + attempt) % len(self.senders)]
            try:
                status, _ = sender.event(event, event_id=event_id, retry=attempt or None,
                                         timeout=10)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.5)
        with self.lock:
            self.errors += 1
        return False


def run(args: list[str]) -> dict[str, Any]:
    opts = options(args, seconds=120, users=6, tune_every=20.0,
                   database="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    if shutil.which("redis-server") is None:
        raise SystemExit("bench soak needs redis-server (apt-get install redis-server)")
    from sqlalchemy import create_engine, text

    schema = f"soak_{uuid.uuid4().hex[:8]}"
    admin_db = create_engine(opts["database"])
    with admin_db.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{opts['database']}?options=-csearch_path%3D{schema}"
    tmp = Path(tempfile.mkdtemp(prefix="gptstore-soak-"))
    redis_port = free_port()
    fake = FakeSlack(token=TOKEN).start()
    env = {"DATABASE_URL": url, "GPTSTORE_JOBS": "celery", "GPTSTORE_DEVICE": "cpu",
           "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
           "GPTSTORE_DEFAULT_BASE": "tiny", "GPTSTORE_MAX_NEW_TOKENS": "16",
           "GPTSTORE_CHAT_RATE": "10000", "GPTSTORE_TUNE_RATE": "10000",
           "GPTSTORE_MAX_JOBS_PER_WORKSPACE": "1000", "GPTSTORE_CHECKPOINT_STEPS": "2",
           "GPTSTORE_SPECULATION": "off", "SLACK_BOT_TOKEN": TOKEN,
           "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.api_url,
           "OMP_NUM_THREADS": "1"}
    fleet = Fleet(tmp, env)
    redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", str(tmp)]
    try:
        settings = Settings.from_env({**env, "GPTSTORE_HOME": str(tmp / "setup")})
        engine = Engine.open(settings)
        engine.catalog.add_base(ADMIN, "tiny", str(tiny_model(tmp / "tiny")))
        engine.catalog.publish(ADMIN, "tiny", "public")
        fleet.add("redis", "redis", redis_argv)
        wait_port(redis_port)
        plan = ["--heartbeat=1", "--stale-after=15", "--sweep=1", "--requeue-after=30"]
        for i in (1, 2):
            fleet.add(f"worker-{i}", f"worker-{i}",
                      [sys.executable, "-m", "engine.jobs", "serve", "--pool=solo", *plan])
        ports = {}
        for i in (1, 2):
            ports[i] = free_port()
            fleet.add(f"serve-{i}", f"serve-{i}",
                      [sys.executable, "-m", "bot.cli.main", "serve", "--slack",
                       f"--port={ports[i]}", "--host=127.0.0.1"])
        for port in ports.values():
            wait_port(port)
        senders = [SignedSender(f"http://127.0.0.1:{p}/slack/events", SECRET)
                   for p in ports.values()]
        traffic = Traffic(fake, senders)
        stop = threading.Event()
        users = [threading.Thread(target=traffic.user, args=(i, stop), daemon=True)
                 for i in range(opts["users"])]
        for thread in users:
            thread.start()
        faults = [(0.25, "worker-1", 10), (0.5, "serve-1", 5), (0.75, "redis", 5)]
        started, tunes, file_ids = time.monotonic(), 0, []
        next_tune = started
        log: list[str] = []
        while time.monotonic() - started < opts["seconds"]:
            elapsed = (time.monotonic() - started) / opts["seconds"]
            while faults and elapsed >= faults[0][0]:
                _, role, down = faults.pop(0)
                fleet.kill(role)
                log.append(f"{time.monotonic() - started:.0f}s: killed {role}")
                threading.Timer(down, fleet.start, args=(role,)).start()
            if time.monotonic() >= next_tune:
                tunes += 1
                file = fake.add_file(f"Doors {tunes}.csv", FAQ.encode())
                file_ids.append(file["id"])
                event = {"type": "message", "channel": "DADMIN", "user": "UADMIN",
                         "ts": f"9.{tunes:06d}", "event_ts": f"9.{tunes:06d}",
                         "channel_type": "im", "team": "T1", "files": [file],
                         "subtype": "file_share",
                         "text": f"tune soak-{tunes} epochs=1 batch_size=4"}
                traffic._send(event, f"EvTune-{tunes}", tunes)
                next_tune += opts["tune_every"]
            fleet.sample()
            time.sleep(1.0)
        stop.set()
        for thread in users:
            thread.join(timeout=100)
        drain_until = time.monotonic() + 600
        jobs = []
        while time.monotonic() < drain_until:
            jobs = engine.jobs.list(ADMIN, limit=1000)
            if len(jobs) >= tunes and all(j.finished for j in jobs):
                break
            fleet.sample()
            time.sleep(2.0)
        delivered_until = time.monotonic() + 60
        finals: dict[int, int] = {}
        while time.monotonic() < delivered_until:
            finals = {j.id: sum(1 for c in fake.calls("chat.postMessage")
                                if f"Job {j.id} finished" in json.dumps(c.params)
                                or f"Job {j.id} failed" in json.dumps(c.params))
                      for j in jobs}
            if all(finals.values()):
                break
            time.sleep(1.0)
        answers: dict[tuple[str, str], int] = {}
        for call in fake.calls("chat.postMessage"):
            key = (call.params.get("channel", ""), call.params.get("thread_ts", ""))
            if key[0].startswith("D") and key[0] != "DADMIN":
                answers[key] = answers.get(key, 0) + 1
        latencies = sorted(traffic.latencies)
        figures = {
            "seconds": opts["seconds"], "users": opts["users"],
            "requests_sent": traffic.sent, "requests_served": len(latencies),
            "errors": traffic.errors,
            "latency_p50_s": round(percentile(latencies, 50), 2) if latencies else None,
            "latency_p99_s": round(percentile(latencies, 99), 2) if latencies else None,
            "jobs_submitted": tunes, "jobs_recorded": len(jobs),
            "jobs_finished": sum(1 for j in jobs if j.state == "succeeded"),
            "jobs_failed": sum(1 for j in jobs if j.state == "failed"),
            "duplicate_answers": sum(n - 1 for n in answers.values() if n > 1),
            "lost_notifications": sum(1 for n in finals.values() if n == 0),
            "duplicate_notifications": sum(n - 1 for n in finals.values() if n > 1),
            "peak_rss_mb": dict(sorted(fleet.peak_mb.items())),
            "faults": log,
        }
        engine.close()
        return figures
    finally:
        fleet.close()
        fake.close()
        with admin_db.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin_db.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
