"""APScheduler glue: loads the database's schedules into a background scheduler.

The database stays the source of truth. Each active schedule becomes an APScheduler cron
job; a sync job re-reads the table every minute so schedules set by another process are
picked up. Every firing goes through Retrainer.run_due, whose run-slot claim makes sure two
processes never start the same retrain twice.
"""

from __future__ import annotations

import logging
from datetime import timezone
from typing import TYPE_CHECKING, Callable

from engine.retraining.schedule import CronTrigger
from storage import schedules as schedule_rows

if TYPE_CHECKING:
    from engine.retraining.service import Retrainer

log = logging.getLogger(__name__)


class RetrainScheduler:
    def __init__(self, retrainer: "Retrainer", *, sync_seconds: int = 60,
                 housekeeping: Callable[[], object] | None = None) -> None:
        self.retrainer = retrainer
        self.sync_seconds = sync_seconds
        self.housekeeping = housekeeping  # e.g. the log-retention purge, run hourly
        self._scheduler = None

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(timezone=timezone.utc)
        self._scheduler.add_job(self.sync, "interval", seconds=self.sync_seconds, id="sync",
                                max_instances=1, coalesce=True)
        if self.housekeeping is not None:
            self._scheduler.add_job(self._housekeep, "interval", hours=1, id="housekeeping",
                                    max_instances=1, coalesce=True)
        self._scheduler.start()
        self.sync()
        if self.housekeeping is not None:
            self._housekeep()

    def sync(self) -> list[str]:
        """Mirror the schedules table into APScheduler jobs; returns the job ids loaded."""

        with self.retrainer.db.session() as session:
            wanted = {f"retrain-{r.model_id}": r.spec for r in schedule_rows.active(session)}
        if self._scheduler is None:
            return sorted(wanted)
        for job in self._scheduler.get_jobs():
            if job.id.startswith("retrain-") and job.id not in wanted:
                job.remove()
        for job_id, spec in wanted.items():
            self._scheduler.add_job(self.fire, CronTrigger(spec), id=job_id, replace_existing=True,
                                    max_instances=1, coalesce=True, misfire_grace_time=3600)
        # Catch up on slots missed while no process was running.
        self.fire()
        return sorted(wanted)

    def fire(self) -> None:
        try:
            for outcome in self.retrainer.run_due():
                log.info("%s", outcome.message)
        except Exception:  # a failed tick must not kill the scheduler thread
            log.exception("scheduled retrain tick failed")

    def _housekeep(self) -> None:
        try:
            self.housekeeping()
        except Exception:  # like fire(): a failed purge must not kill the scheduler thread
            log.exception("housekeeping failed")

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
