"""Durable job notifications, the adapter's half: progress, results and retrain verdicts are
delivered from the database by whichever `gptstore serve` process is alive, each once, to the
place that asked.

`Deliveries.follow(job_id, sink)` (what JobWatcher.follow does in one process) records the
sink's place (`sink.place()`, JSON) as a watch in the store; a loop in every serve process
claims the watches of its platform (a lease, engine/jobs/watches.py), rebuilds each sink with
the adapter's `rebuild(place)` and calls the same ProgressSink methods: update() while the
job runs, finish() once at the end. The end goes following -> finishing -> delivered; a
process that takes over a watch left "finishing" (its holder died around the post) asks the
sink `delivered(job, reply)` (did the final message reach the place?) before posting it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from bot.core.progress import ProgressSink, final_reply, progress_text, stored_file
from engine.jobs.watches import WatchView
from engine.views import JobEventView, JobView

if TYPE_CHECKING:
    from engine.app import Engine

Rebuild = Callable[[dict[str, Any]], ProgressSink]
KEEP_EVENTS = 50  # progress text needs only the latest events


class Deliveries:
    def __init__(self, engine: "Engine", platform: str, rebuild: Rebuild, *,
                 poll_s: float = 1.0, min_interval_s: float = 3.0, owner: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 log: logging.Logger | None = None) -> None:
        self.engine, self.platform, self.rebuild = engine, platform, rebuild
        self.poll_s, self.min_interval_s, self.clock = poll_s, min_interval_s, clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.log = log or logging.getLogger("gptstore.delivery")
        self._events: dict[int, list[JobEventView]] = {}
        self._shown_at: dict[int, float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def follow(self, job_id: int, sink: ProgressSink) -> None:
        """Report this job to the sink's place from now on, from any live serve process."""
        place = sink.place()  # type: ignore[attr-defined]
        key = f"{self.platform}:" + ":".join(str(place.get(k, "")) for k in sorted(place)
                                             if k in ("channel", "status_ts", "message"))
        self.engine.watches.watch(job_id, self.platform, f"{key}:{job_id}"[:191], place)
        self._wake.set()

    def poll_once(self) -> int:
        """Claim this platform's watches and report on each; returns the ends delivered."""
        finished = 0
        for watch in self.engine.watches.claim(self.platform, self.owner):
            try:
                finished += int(self._report(watch))
            except Exception:  # one place failing must not stop the others
                self.log.exception("reporting job %s to %s failed", watch.job_id, watch.place)
        return finished

    def _report(self, watch: WatchView) -> bool:
        job = self._read(watch)
        sink = self.rebuild(watch.place)
        if job.finished or watch.state == "finishing":
            return self._finish(watch, job, sink)
        text = progress_text(job)
        due = self.clock() - self._shown_at.get(watch.id, float("-inf")) >= self.min_interval_s
        if text != watch.last_text and due:
            sink.update(job, text)
            self._shown_at[watch.id] = self.clock()
            self.engine.watches.shown(watch.id, self.owner, text)
        return False

    def _finish(self, watch: WatchView, job: JobView, sink: ProgressSink) -> bool:
        if not job.finished:
            return False
        reply = final_reply(job, files=lambda ref: stored_file(self.engine, ref, self.log))
        if watch.state == "following":
            if not self.engine.watches.begin_finish(watch.id, self.owner):
                return False  # taken by another process meanwhile
        else:  # left half-done by a process that died: was the final message posted?
            check = getattr(sink, "delivered", None)
            if check is not None and check(job, reply):
                self.engine.watches.delivered(watch.id, self.owner)
                return False
        sink.finish(job, reply)
        self.engine.watches.delivered(watch.id, self.owner)
        self._events.pop(watch.id, None)
        return True

    def _read(self, watch: WatchView) -> JobView:
        events = self._events.setdefault(watch.id, [])
        view = self.engine.jobs.view(watch.job_id)
        events += self.engine.jobs.events_since(watch.job_id, events[-1].id if events else 0)
        del events[:-KEEP_EVENTS]
        return replace(view, events=list(events))

    # -- the loop -----------------------------------------------------------------------

    def start(self) -> "Deliveries":
        self._thread = threading.Thread(target=self._loop, name=f"deliver-{self.platform}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.engine.watches.release(self.owner)  # another process takes over at once
        except Exception:
            self.log.exception("could not hand the job watches over")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the database may be away for a moment
                self.log.exception("delivering job notifications failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()
