"""`gptstore worker`: run jobs until stopped, from the local queue (polling the database) or as
a Celery worker (GPTSTORE_JOBS=celery)."""

from __future__ import annotations

import threading

from engine.jobs.backends import LocalBackend
from engine.jobs.celery_app import run_celery_worker
from engine.jobs.plan import WorkerPlan
from engine.monitoring import Metrics, OpsServer, ops_checks
from engine.settings import Settings
from storage.db import Database


def serve_forever(settings: Settings, stop_event: threading.Event, *,
                  plan: WorkerPlan | None = None, queue: str = "gptstore",
                  pool: str = "prefork") -> None:
    """`gptstore worker`: run jobs until stop_event is set (local: poll the database;
    celery: a Celery worker consuming `queue`, which also re-sends stale jobs)."""
    plan = plan or WorkerPlan()
    ops, db = None, None
    if settings.metrics_port:  # health check and metrics (jobs by state, unsent messages)
        db = Database(settings.database_url)
        ops = OpsServer(Metrics(db), ops_checks(settings, db), port=settings.metrics_port,
                        host=settings.metrics_host).start()
    try:
        if settings.jobs == "celery":
            run_celery_worker(settings, stop_event, plan=plan, queue=queue, pool=pool)
            return
        backend = LocalBackend(settings, plan)
        backend.start()
        try:
            stop_event.wait()
        finally:
            backend.close()
    finally:
        if ops is not None:
            ops.stop()
        if db is not None:
            db.close()
