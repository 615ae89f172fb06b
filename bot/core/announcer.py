"""Announces jobs that nobody started from chat (scheduled retrains) where their schedule was
set, then follows them like any other job."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Callable

from bot.core.progress import Follower, JobWatcher, ProgressSink
from engine.views import JobView

if TYPE_CHECKING:
    from engine.app import Engine

StartSink = Callable[[JobView], "ProgressSink | None"]


class JobAnnouncer:
    """Polls for new scheduled jobs of one platform; `start_sink(job)` posts the opening
    message on the platform and returns the sink that follows the job (None to skip).

    Several serve processes may share a store: each job is claimed once through the processed
    event table, so only one of them announces it."""

    def __init__(self, engine: "Engine", platform: str, start_sink: StartSink, *,
                 watcher: Follower | None = None, poll_s: float = 10.0,
                 log: logging.Logger | None = None) -> None:
        self.engine = engine
        self.platform = platform
        self.start_sink = start_sink
        self.watcher = watcher or JobWatcher(engine)
        self.poll_s = poll_s
        self.log = log or logging.getLogger("gptstore.announcer")
        self.after_id = engine.jobs.latest_id()  # older jobs are history, not news
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> list[int]:
        """Announce what is new; returns the job ids announced by this process."""
        announced = []
        for job in self.engine.jobs.unannounced(self.after_id, self.platform):
            self.after_id = max(self.after_id, job.id)
            if not self.engine.first_time(f"announce:job:{job.id}"):
                continue
            try:
                sink = self.start_sink(job)
            except Exception:  # a channel the bot left must not stop the others
                self.log.exception("could not announce job %s", job.id)
                continue
            if sink is not None:
                self.watcher.follow(job.id, sink)
                announced.append(job.id)
        return announced

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"announce-{self.platform}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll_once()
            except Exception:
                self.log.exception("announcing scheduled jobs failed")
