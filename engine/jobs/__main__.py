"""`python -m engine.jobs run JOB_ID | serve`: one job in a child process (the local backend
starts these), or a worker that serves jobs until stopped (`gptstore worker`).

    python -m engine.jobs run JOB_ID [--settings -] [plan options]
    python -m engine.jobs serve [--queue Q] [--pool solo] [plan options]
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import Sequence

from engine.jobs.plan import WorkerPlan, settings_from_json, worker_name
from engine.jobs.runner import run_job
from engine.jobs.worker import serve_forever
from engine.settings import MaskingFormatter, Settings

log = logging.getLogger("gptstore.worker")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.jobs")
    parser.add_argument("command", choices=("run", "serve"))
    parser.add_argument("job_id", nargs="?", type=int)
    parser.add_argument("--settings", help="'-' reads the settings as JSON from stdin")
    parser.add_argument("--kind", action="append", help="KIND=module:function")
    parser.add_argument("--engine-factory", default=WorkerPlan.engine_factory)
    parser.add_argument("--heartbeat", type=float, default=WorkerPlan.heartbeat_s)
    parser.add_argument("--stale-after", type=float, default=WorkerPlan.stale_after_s)
    parser.add_argument("--sweep", type=float, default=WorkerPlan.sweep_s)
    parser.add_argument("--requeue-after", type=float, default=WorkerPlan.requeue_after_s)
    parser.add_argument("--queue", default="gptstore")
    parser.add_argument("--pool", default="prefork")
    ns = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(MaskingFormatter("%(asctime)s %(name)s %(message)s"))  # no URL passwords
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    settings = settings_from_json(sys.stdin.read()) if ns.settings == "-" else Settings.from_env()
    plan = WorkerPlan.from_args(ns)
    if ns.command == "run":
        if ns.job_id is None:
            parser.error("run needs a JOB_ID")
        state = run_job(settings, ns.job_id, worker_name(), plan=plan)
        log.info("job %s: %s", ns.job_id, state)
        return 0
    serve_forever(settings, threading.Event(), plan=plan, queue=ns.queue, pool=ns.pool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
