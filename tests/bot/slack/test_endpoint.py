"""What the Slack adapter lets in and out: the HTTP endpoint caps the body and drops slow
clients before it checks a signature; files come only from Slack's file hosts, and the bot
token never goes anywhere else, not even on a redirect."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bot.slack.app import SlackHTTPServer
from bot.slack.files import NOT_SLACK, FileRules, download
from engine.errors import InvalidInput
from engine.settings import Settings
from tests.helpers.slack import SlackRig, start_rig


@pytest.fixture
def settings(home) -> Settings:
    return Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        default_base="tiny", max_new_tokens=8, slack_bot_token="xoxb-test")


@pytest.fixture
def rig(engine, settings) -> SlackRig:
    rig = start_rig(engine, settings)
    yield rig
    rig.close()


@pytest.fixture
def strict(rig: SlackRig) -> SlackHTTPServer:
    server = SlackHTTPServer(rig.server.app, host="127.0.0.1", port=0, max_body=64 * 1024,
                             read_timeout_s=0.5)
    server.start()
    yield server
    server.stop()


def raw(server: SlackHTTPServer, data: bytes, *, wait_s: float = 10.0) -> bytes:
    """Send `data` as is and read what comes back until the server closes."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=wait_s) as conn:
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        return answer


def headers(length: int | None, path: str = "/slack/events") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_body_over_the_cap_is_refused_unread(strict: SlackHTTPServer, rig: SlackRig) -> None:
    answer = raw(strict, headers(50 * 1024 * 1024))  # says 50 MB, sends none of it
    assert answer.startswith(b"HTTP/1.1 413")
    assert raw(strict, headers(None)).startswith(b"HTTP/1.1 411")
    assert [c.method for c in rig.fake.calls()] == ["auth.test"]  # the app's start only


def test_a_slow_client_is_dropped_and_the_endpoint_keeps_serving(strict: SlackHTTPServer,
                                                                 rig: SlackRig) -> None:
    started = time.monotonic()
    answer = raw(strict, headers(100) + b'{"type": "eve')  # then nothing more
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 5.0
    host, port = strict.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as idle:  # not even headers
        idle.sendall(b"POST /slack/events HTTP/1.1\r\n")
        assert idle.recv(100) == b""  # closed by the server after its timeout
    rig.send.endpoint = strict.url
    status, _ = rig.send.command("help")
    assert status == 200
    rig.fake.wait_for("chat.postEphemeral")


# -- files --------------------------------------------------------------------------------
@pytest.mark.parametrize("url, allowed", [
    ("https://files.slack.com/files-pri/T1-F1/faq.csv", True),
    ("https://files-edge.slack.com/x", True),
    ("http://files.slack.com/files-pri/T1-F1/faq.csv", False),  # not https
    ("https://files.slack.com.evil.example/faq.csv", False),
    ("https://evil.example/files.slack.com/faq.csv", False),
    ("http://127.0.0.1:4000/files/F1/faq.csv", True),  # the configured API host
    ("http://127.0.0.1:4001/files/F1/faq.csv", False),  # same host, another port
])
def test_files_come_only_from_slack_or_the_configured_api_host(url: str, allowed: bool) -> None:
    assert FileRules.for_api("http://127.0.0.1:4000/api/").allows(url) is allowed
    assert FileRules.for_api("https://slack.com/api/").allows(url) is (
        allowed and url.startswith("https://"))


class Recorder(ThreadingHTTPServer):
    """A web server that records each request's path and Authorization header."""

    daemon_threads = True

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                recorder.seen.append((self.path, self.headers.get("Authorization", "")))
                status, extra, body = recorder.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value.replace("SELF", recorder.base))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def test_a_redirect_is_followed_without_the_token_and_only_to_an_allowed_host() -> None:
    other = Recorder({"/stolen": (200, {}, b"question,answer\n")})
    server = Recorder({
        "/file": (302, {"Location": "SELF/final"}, b""),
        "/final": (200, {"Content-Type": "text/csv"}, b"question,answer\nq,a\n"),
        "/away": (302, {"Location": other.base + "/stolen"}, b"")})
    try:
        rules = FileRules.for_api(server.base + "/api/")
        data = download(server.base + "/file", "xoxb-secret", max_bytes=1000, rules=rules)
        assert data == b"question,answer\nq,a\n"
        assert server.seen == [("/file", "Bearer xoxb-secret"), ("/final", "")]
        with pytest.raises(InvalidInput) as refused:
            download(server.base + "/away", "xoxb-secret", max_bytes=1000, rules=rules)
        assert str(refused.value) == NOT_SLACK
        assert other.seen == []
    finally:
        for s in (server, other):
            s.shutdown()
            s.server_close()


def test_a_dropped_file_that_points_elsewhere_is_refused_in_one_sentence(rig: SlackRig,
                                                                         engine) -> None:
    elsewhere = Recorder({"/faq.csv": (200, {}, b"question,answer\nq,a\n")})
    try:
        file = {"id": "F9", "name": "faq.csv", "size": 20,
                "url_private_download": elsewhere.base + "/faq.csv"}
        event = {"type": "message", "subtype": "file_share", "channel": "D1",
                 "channel_type": "im", "user": "U1", "text": "tune shop", "ts": "9.000100",
                 "event_ts": "9.000100", "team": "T1", "files": [file]}
        rig.send.event(event, event_id="EvF")
        note = rig.fake.wait_for("chat.postEphemeral")[0].params
        assert NOT_SLACK in note["text"] and note["user"] == "U1"
        assert elsewhere.seen == []
        assert "xoxb" not in json.dumps([c.params for c in rig.fake.calls()])
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()
