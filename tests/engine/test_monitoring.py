"""The health check and Prometheus metrics that `serve` and `worker` expose."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from engine.app import Engine
from engine.errors import Busy
from engine.identity import Caller
from engine.jobs.backends import NullBackend
from engine.monitoring import Metrics, OpsServer, ops_checks
from storage.db import Database
from tests.helpers.s3 import free_port


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class Answer:
    text: str = "Paris."
    tokens: int = 2
    latency_ms: int = 5


class ScriptedRunner:
    def __init__(self) -> None:
        self.busy = False

    def answer(self, target, messages, **kwargs):
        if self.busy:
            raise Busy("The model is busy; try again in a moment.")
        return Answer()


def test_health_and_metrics_report_the_store_and_this_process(settings) -> None:
    runner = ScriptedRunner()
    engine = Engine.open(settings.with_(default_base="smollm2-135m-instruct"),
                         job_backend=NullBackend(), runner=runner)
    ops = OpsServer(engine.metrics, ops_checks(engine.settings, engine.db), port=0,
                    host="127.0.0.1").start()
    try:
        base = f"http://127.0.0.1:{ops.port}"
        status, body = get(base + "/healthz")
        assert status == 200 and json.loads(body) == {"ok": True, "database": "ok"}
        caller = Caller.console("alice")
        engine.jobs.submit("evaluate", "smollm2-135m-instruct", owner=caller.user,
                           workspace=caller.workspace)
        engine.chat.answer(caller, "smollm2-135m-instruct", "What is the capital of France?")
        runner.busy = True
        with pytest.raises(Busy):
            engine.chat.answer(caller, "smollm2-135m-instruct", "And of Spain?")
        engine.metrics.batch_size.observe(3)
        status, body = get(base + "/metrics")
        text = body.decode()
        assert status == 200
        assert 'gptstore_jobs{state="queued"} 1.0' in text
        assert 'gptstore_chat_requests_total{outcome="ok"} 1.0' in text
        assert 'gptstore_chat_requests_total{outcome="busy"} 1.0' in text
        assert "gptstore_chat_latency_seconds_count 1.0" in text
        assert "gptstore_decode_batch_size_count 1.0" in text
        assert 'gptstore_retrain_verdicts_total{verdict="promoted"} 0.0' in text
        assert "gptstore_job_messages_unsent 0.0" in text  # the null backend took it
        assert get(base + "/nothing")[0] == 404
    finally:
        ops.stop()
        engine.close()


def test_health_says_what_is_failing(settings) -> None:
    db = Database(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    checks = ops_checks(settings.with_(jobs="celery",
                                       celery_broker_url=f"redis://127.0.0.1:{free_port()}/0"), db)
    ops = OpsServer(Metrics(), checks, port=0, host="127.0.0.1").start()
    try:
        status, body = get(f"http://127.0.0.1:{ops.port}/healthz")
        report = json.loads(body)
        assert status == 503 and report["ok"] is False
        assert report["database"].startswith("failing") and report["broker"].startswith("failing")
    finally:
        ops.stop()
        db.close()


def test_the_metrics_port_is_read_from_the_environment(home) -> None:
    from engine.errors import InvalidInput
    from engine.settings import Settings

    plain = Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_METRICS_PORT": "9100"})
    assert (plain.metrics_host, plain.metrics_port) == ("0.0.0.0", 9100)
    local = Settings.from_env({"GPTSTORE_HOME": str(home),
                               "GPTSTORE_METRICS_PORT": "127.0.0.1:9101"})
    assert (local.metrics_host, local.metrics_port) == ("127.0.0.1", 9101)
    assert Settings.from_env({"GPTSTORE_HOME": str(home)}).metrics_port is None
    with pytest.raises(InvalidInput, match="GPTSTORE_METRICS_PORT"):
        Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_METRICS_PORT": "99999"})
