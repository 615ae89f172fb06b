"""Sending the job outbox to the broker: a job is committed with its outbox row, and an
OutboxRelay sends due rows until the broker acknowledges each, then sends a job again if it
is still queued long after (its message vanished: a flushed Redis, a lost broker).

Sending twice is harmless: a worker claims a job atomically, so a duplicate message finds
the job taken and is dropped. Every `gptstore worker` (Celery) and `gptstore serve` runs a
relay; the submitting process also sends at once after its commit.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Callable

from storage import outbox as store
from storage.db import Database

log = logging.getLogger("gptstore.outbox")
Send = Callable[[int, str], None]  # (job_id, kind) -> returns once the broker took it
Clock = Callable[[], datetime]
RETRY_S = 5.0  # a failed send is tried again after this
REQUEUE_AFTER_S = 600.0  # a job still queued this long after its send lost its message


class OutboxRelay:
    def __init__(self, db: Database, send: Send, clock: Clock, *,
                 requeue_after_s: float = REQUEUE_AFTER_S, retry_s: float = RETRY_S) -> None:
        self.db, self.send, self.clock = db, send, clock
        self.requeue_after_s, self.retry_s = requeue_after_s, retry_s

    def deliver(self, job_id: int, kind: str) -> bool:
        """Send one job's message now (right after its commit); False if the broker did not
        take it (the row stays due and a relay tries again)."""
        now = self.clock()
        try:
            self.send(job_id, kind)
        except Exception as exc:  # any broker failure: the outbox keeps the debt
            log.warning("job %s: the broker did not take its message (%s); it will be sent "
                        "again", job_id, exc)
            retry, error = now + timedelta(seconds=self.retry_s), str(exc)
            self.db.retrying(lambda s: store.failed(s, job_id, retry, error))
            return False
        check = now + timedelta(seconds=self.requeue_after_s)
        self.db.retrying(lambda s: store.sent(s, job_id, now, check))
        return True

    def send_due(self, limit: int = 20) -> int:
        """Send every due row this relay wins; returns how many the broker took."""
        now = self.clock()
        rows = self.db.retrying(lambda s: store.due(s, now, limit))
        taken = 0
        for row in rows:
            lease = now + timedelta(seconds=self.retry_s)
            if not self.db.retrying(lambda s: store.take(s, row.job_id, row.due_at, lease)):
                continue  # another relay has it
            taken += int(self.deliver(row.job_id, row.kind))
        self.db.retrying(store.prune)
        return taken

    def run(self, stop: threading.Event, every_s: float) -> None:
        while not stop.wait(every_s):
            try:
                self.send_due()
            except Exception:  # the database may be away for a moment
                log.exception("outbox: sending due messages failed")

    def start(self, every_s: float) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop, every_s), name="gptstore-outbox",
                                  daemon=True)
        thread.start()
        return thread, stop
