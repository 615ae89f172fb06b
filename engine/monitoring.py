"""Health check and Prometheus metrics for `gptstore serve` and `gptstore worker`, on
GPTSTORE_METRICS_PORT: GET /healthz (200 when the database, and the broker in Celery mode,
answer; 503 naming what does not) and GET /metrics (prometheus_client's text format).

Metrics live in a registry per process (no module-level state). What this process does is
counted here (chat requests by outcome, their latency, decode batch sizes, the chat queue's
depth); what the whole store holds is read from the database when scraped (jobs by state,
job messages the broker has not taken, retrain verdicts), so every process reports the same.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from engine.errors import Busy
from storage import jobs as job_store
from storage import outbox
from storage.db import Database

log = logging.getLogger("gptstore.monitoring")
Check = Callable[[], None]  # raises when the thing it checks is not well


class Metrics:
    """This process's counters plus the store-wide figures read at scrape time."""

    def __init__(self, db: Database | None = None) -> None:
        self.registry = CollectorRegistry()
        self.chat_requests = Counter("gptstore_chat_requests", "Chat answers asked for, by "
                                     "outcome (ok, busy, error)", ["outcome"],
                                     registry=self.registry)
        self.chat_latency = Histogram("gptstore_chat_latency_seconds", "Time to a whole answer",
                                      buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 120),
                                      registry=self.registry)
        self.batch_size = Histogram("gptstore_decode_batch_size", "Requests decoded together "
                                    "per step", buckets=(1, 2, 4, 8, 16, 32, 64),
                                    registry=self.registry)
        self.queue_depth = Gauge("gptstore_chat_queue_depth", "Chat requests waiting for the "
                                 "model", registry=self.registry)
        if db is not None:
            self.registry.register(_StoreCollector(db))

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def measured(self, runner: Any) -> "MeasuredRunner":
        return MeasuredRunner(runner, self)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class MeasuredRunner:
    """A Runner (engine.chat.Runner) that counts each answer and its latency."""

    def __init__(self, runner: Any, metrics: Metrics) -> None:
        self.runner, self.metrics = runner, metrics

    def answer(self, target: Any, messages: list[dict[str, str]], **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            generated = self.runner.answer(target, messages, **kwargs)
        except Busy:
            self.metrics.chat_requests.labels("busy").inc()
            raise
        except Exception:
            self.metrics.chat_requests.labels("error").inc()
            raise
        self.metrics.chat_requests.labels("ok").inc()
        self.metrics.chat_latency.observe(time.perf_counter() - started)
        return generated

    def __getattr__(self, name: str) -> Any:  # submit, answer_async, close ... as they are
        return getattr(self.runner, name)


class _StoreCollector:
    """Figures of the whole store, read when Prometheus scrapes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Any]:
        try:
            states, verdicts, unsent = self.db.retrying(self._read)
        except Exception:  # a scrape must not fail because the database hiccuped
            log.exception("metrics: cannot read the store")
            return
        jobs = GaugeMetricFamily("gptstore_jobs", "Jobs in the store by state", labels=["state"])
        for state, count in sorted(states.items()):
            jobs.add_metric([state], count)
        yield jobs
        outcome = CounterMetricFamily("gptstore_retrain_verdicts", "Finished retrains by "
                                      "verdict", labels=["verdict"])
        for verdict, count in sorted(verdicts.items()):
            outcome.add_metric([verdict], count)
        yield outcome
        yield GaugeMetricFamily("gptstore_job_messages_unsent", "Queued jobs whose broker "
                                "message is not acknowledged yet", value=unsent)

    @staticmethod
    def _read(s: Any) -> tuple[dict[str, int], dict[str, int], int]:
        verdicts = {"promoted": 0, "kept": 0}
        for result in job_store.retrain_results(s):
            verdicts["promoted" if result.get("promoted") else "kept"] += 1
        return job_store.count_by_state(s), verdicts, outbox.pending(s)


def database_check(db: Database) -> Check:
    return db.ping


def broker_check(url: str) -> Check:
    def check() -> None:
        from kombu import Connection

        with Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    return check


class OpsServer:
    """GET /healthz and GET /metrics on a port, in a daemon thread."""

    def __init__(self, metrics: Metrics, checks: dict[str, Check], *, port: int,
                 host: str = "0.0.0.0") -> None:
        self.metrics, self.checks = metrics, checks
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="gptstore-ops",
                                       daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> "OpsServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def health(self) -> tuple[int, dict[str, str]]:
        report: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                check()
                report[name] = "ok"
            except Exception as exc:  # the report says what is wrong; no traceback needed
                report[name] = f"failing: {type(exc).__name__}"
        return (200 if all(v == "ok" for v in report.values()) else 503), report


def _handler(ops: OpsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/healthz":
                status, report = ops.health()
                body = json.dumps({"ok": status == 200, **report}).encode()
                self._send(status, body, "application/json")
            elif path == "/metrics":
                self._send(200, ops.metrics.text(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found: try /healthz or /metrics\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def ops_checks(settings: Any, db: Database) -> dict[str, Check]:
    checks = {"database": database_check(db)}
    if settings.jobs == "celery" and settings.celery_broker_url:
        checks["broker"] = broker_check(settings.celery_broker_url)
    return checks
