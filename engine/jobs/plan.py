"""How workers run jobs: which body runs each kind, how the services are built, how often a
heartbeat beats, and how Settings travel to a child process. Torch-free and import-light:
both the submitting process and every worker read it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from engine.jobs.context import JobContext
from engine.settings import SECRET_FIELDS, Settings

DEFAULT_KINDS = {
    "tune": "engine.workflows.tune:run_tune",
    "retrain": "engine.workflows.retrain:run_retrain",
    "evaluate": "engine.workflows.evaluate:run_evaluation",
}
ENGINE_FACTORY = "engine.app:open_engine"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class WorkerPlan:
    """How workers run jobs; the same plan reaches child processes and Celery workers."""

    kinds: dict[str, str] = field(default_factory=dict)
    """Extra or replaced job bodies, kind -> "module:function" (tests register fakes here)."""
    engine_factory: str = ENGINE_FACTORY
    """"module:function" building the services a job body gets, from Settings."""
    heartbeat_s: float = 10.0
    """Seconds between heartbeats (each also picks up a cancel request)."""
    stale_after_s: float = 90.0
    """A running job whose heartbeat is older than this lost its worker and runs again."""
    sweep_s: float = 30.0
    """How often idle workers look for queued jobs and jobs with a stale heartbeat (and send
    the job outbox)."""
    requeue_after_s: float = 600.0
    """A job still queued this long after the broker took its message lost it (a flushed or
    failed broker) and is sent again."""

    def body(self, kind: str) -> Callable[[JobContext], dict]:
        path = {**DEFAULT_KINDS, **self.kinds}.get(kind)
        if path is None:
            raise LookupError(f"no job body is registered for kind {kind!r}")
        return resolve(path)

    def args(self) -> list[str]:
        out = [f"--engine-factory={self.engine_factory}", f"--heartbeat={self.heartbeat_s}",
               f"--stale-after={self.stale_after_s}", f"--sweep={self.sweep_s}",
               f"--requeue-after={self.requeue_after_s}"]
        return out + [f"--kind={k}={v}" for k, v in sorted(self.kinds.items())]

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> "WorkerPlan":
        kinds = dict(item.split("=", 1) for item in ns.kind or [])
        return cls(kinds=kinds, engine_factory=ns.engine_factory, heartbeat_s=ns.heartbeat,
                   stale_after_s=ns.stale_after, sweep_s=ns.sweep,
                   requeue_after_s=ns.requeue_after)


def resolve(path: str) -> Callable:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:4]}"


def settings_to_json(settings: Settings) -> str:
    """Settings for a child process, without platform tokens (workers never need them)."""
    values = {f.name: getattr(settings, f.name) for f in fields(settings) 
              if f.name not in SECRET_FIELDS}
    values["home"] = str(settings.home)
    return json.dumps(values)


def settings_from_json(text: str) -> Settings:
    values = json.loads(text)
    known = {f.name for f in fields(Settings)}
    values = {k: v for k, v in values.items() if k in known}
    values["home"] = Path(values["home"])
    return Settings(**values)
