"""A local S3-compatible server for the artifact store's bucket backend: moto's server mode
(`moto[server]`, a dev dependency) on 127.0.0.1, started per test and always stopped."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def moto_s3(log: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs moto's S3 server; yields its endpoint URL. boto3 reads the (dummy) credentials
    from the environment, as it would read real ones."""
    pytest.importorskip("moto", reason="moto[server] is a dev dependency (make test installs it)")
    port = free_port()
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
