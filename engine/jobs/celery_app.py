"""The Celery app for GPTSTORE_JOBS=celery: tasks tune, retrain and evaluate run runner.run_job.

Job state lives in the database; Celery only carries "run job N". Delivery is at least once
and the atomic claim makes it exactly once in effect:
- task_acks_late + task_reject_on_worker_lost: a message is acknowledged only after the job
  body returned, so a worker that dies mid-job leaves its message to be delivered again;
- Redis visibility_timeout (1 h): an unacknowledged message returns to the queue after it.
  A job running longer is then delivered a second time; the second worker sees the fresh
  heartbeat, leaves the job alone and acknowledges the duplicate;
- a sweeper thread in every worker re-sends jobs whose heartbeat went stale (worker killed,
  machine lost), so recovery never waits on the broker;
- worker_prefetch_multiplier=1 and max_tasks_per_child=1: one job per worker process at a
  time, and each job gets a fresh process (GPU memory is returned after every job).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from engine.jobs.outbox import OutboxRelay
from engine.jobs.plan import WorkerPlan, worker_name
from engine.jobs.runner import run_job
from engine.settings import Settings
from storage import jobs as store
from storage.db import Database

log = logging.getLogger("gptstore.celery")
KINDS = ("tune", "retrain", "evaluate")
VISIBILITY_TIMEOUT_S = 3600
HARD_TIME_LIMIT_S = 48 * 3600  # a fine-tune that runs two days is stuck: free the worker
SEND_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def make_celery(settings: Settings, *, plan: WorkerPlan | None = None,
                queue: str = "gptstore") -> Any:
    """A Celery app on settings.celery_broker_url whose tasks run jobs from the database."""
    from celery import Celery, bootsteps

    plan = plan or WorkerPlan()
    app = Celery("gptstore", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,
        task_default_queue=queue,
        task_ignore_result=True,
        task_time_limit=HARD_TIME_LIMIT_S,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )

    def run(task, job_id: int) -> str:
        return run_job(settings, int(job_id), f"{task.request.hostname}:{worker_name()}",
                       plan=plan)

    for kind in sorted({*KINDS, *plan.kinds}):
        app.task(name=f"gptstore.{kind}", bind=True, acks_late=True, shared=False)(run)

    class Sweeper(bootsteps.StartStopStep):
        """Re-sends jobs whose worker stopped beating (killed, machine lost)."""

        def __init__(self, parent, **kwargs) -> None:
            super().__init__(parent, **kwargs)
            self.stop_event = threading.Event()
            self.thread: threading.Thread | None = None

        def start(self, parent) -> None:
            self.thread = threading.Thread(
                target=sweep_loop, args=(app, settings, plan, queue, self.stop_event),
                name="gptstore-sweeper", daemon=True)
            self.thread.start()

        def stop(self, parent) -> None:
            self.stop_event.set()

    app.steps["worker"].add(Sweeper)
    return app


def send(app: Any, job_id: int, kind: str, queue: str) -> None:
    """One "run job N" message; raises within about a second when the broker is away (the
    job outbox tries again), instead of kombu's default of retrying for a long while."""
    app.send_task(f"gptstore.{kind}", args=[job_id], queue=queue, retry=True,
                  retry_policy=SEND_RETRY)


def sweep_loop(app: Any, settings: Settings, plan: WorkerPlan, queue: str,
               stop_event: threading.Event) -> None:
    """Every plan.sweep_s: send the due job outbox (jobs whose message never reached the
    broker, or vanished from it), and send each job with a stale heartbeat again (once per
    stale period)."""
    db = Database(settings.database_url)
    sent: dict[int, datetime] = {}
    relay = OutboxRelay(db, lambda job_id, kind: send(app, job_id, kind, queue),
                        lambda: datetime.now(timezone.utc),
                        requeue_after_s=plan.requeue_after_s)
    try:
        while not stop_event.wait(plan.sweep_s):
            try:
                relay.send_due()
            except Exception:
                log.exception("sweeper: cannot send the job outbox")
            now = datetime.now(timezone.utc)
            stale = now - timedelta(seconds=plan.stale_after_s)
            try:
                found = db.retrying(lambda s: store.stale_running(s, stale))
            except Exception:
                log.exception("sweeper: cannot read jobs")
                continue
            for job_id, kind in found:
                if job_id in sent and sent[job_id] > stale:
                    continue
                sent[job_id] = now
                log.info("sweeper: job %s lost its worker; sending it again", job_id)
                try:
                    send(app, job_id, kind, queue)
                except Exception:  # the broker is away: the next sweep tries again
                    log.exception("sweeper: cannot send job %s", job_id)
                    del sent[job_id]
    finally:
        db.close()


def run_celery_worker(settings: Settings, stop_event: threading.Event, *,
                      plan: WorkerPlan | None = None, queue: str = "gptstore",
                      pool: str = "prefork") -> None:
    """Consume `queue` until stop_event is set or the process is signalled (warm shutdown)."""
    app = make_celery(settings, plan=plan, queue=queue)
    worker = app.Worker(pool_cls=pool, concurrency=1, queues=[queue], loglevel="INFO",
                        without_mingle=True, without_gossip=True, without_heartbeat=True,
                        redirect_stdouts=False)
    watcher = threading.Thread(target=lambda: (stop_event.wait(), worker.stop(in_sighandler=False)),
                               name="gptstore-worker-stop", daemon=True)
    watcher.start()
    worker.start()


def __getattr__(name: str) -> Any:
    """`celery -A engine.jobs.celery_app worker` builds the app from the environment on demand
    (nothing happens at import time)."""
    if name in ("app", "celery"):
        return make_celery(Settings.from_env())
    raise AttributeError(name)
