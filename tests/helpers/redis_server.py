"""A private redis-server on a free port, for tests that stop, restart or flush the broker
(never the shared one on 6379). Started as a child of the test, always stopped."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import missing_service
from tests.helpers.s3 import free_port


class RedisServer:
    def __init__(self, folder: Path) -> None:
        if shutil.which("redis-server") is None:
            missing_service("redis-server is not installed (apt-get install redis-server)")
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/3"

    def start(self) -> "RedisServer":
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / f"redis-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline, \
                    "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        """Gone at once, with everything it held (no save): a broker lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def flush(self) -> None:
        import redis

        redis.Redis(host="127.0.0.1", port=self.port).flushall()

    def queued_messages(self, queue: str) -> int:
        import redis

        return int(redis.Redis.from_url(self.url).llen(queue))
