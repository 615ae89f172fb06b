"""A local fake Slack (Web API server + signed-request sender) for tests and benchmarks.

Like httpx's MockTransport it ships with the code it stands in for: `FakeSlack` is a real
HTTP server on 127.0.0.1 that records every Web API call with its parameters and answers
with plausible JSON; `SignedSender` posts requests signed the way Slack signs them.

    with FakeSlack(token="xoxb-test") as fake:
        client = WebClient(token="xoxb-test", base_url=fake.api_url)
        ...
        fake.wait_for("chat.postMessage", lambda p: "acme" in p.get("text", ""))
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = ["Call", "FakeSlack", "SignedSender", "LOGIN_PAGE"]

LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to Slack</body></html>"


@dataclass(frozen=True)
class Call:
    """One Web API call the fake received."""

    method: str
    params: dict[str, Any]
    authorization: str = ""
    result: dict[str, Any] = field(default_factory=dict)  # what the fake answered


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    file_bytes: dict[str, tuple[bytes, bool]] = field(default_factory=dict)  # id -> (data, html)
    uploads: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # method -> Slack error code


class FakeSlack:
    """Slack's Web API on 127.0.0.1, a random port, in a daemon thread."""

    def __init__(self, *, token: str = "xoxb-test", team_id: str = "T1",
                 bot_user_id: str = "UBOT", admins: tuple[str, ...] = ()) -> None:
        self.token = token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.admins = set(admins)
        self._state = _State()
        self._changed = threading.Condition()
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-slack")

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "FakeSlack":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> "FakeSlack":
        return self.__enter__()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    # -- arranging -------------------------------------------------------------------------
    def add_file(self, name: str, data: bytes, *, mimetype: str = "text/csv",
                 login_page: bool = False) -> dict[str, Any]:
        """A file as Slack describes it; `login_page` serves the sign-in page even with a token."""
        file_id = f"F{next(self._ids):05d}"
        url = f"{self.url}/files/{file_id}/{urllib.parse.quote(name)}"
        info = {"id": file_id, "name": name, "title": name, "mimetype": mimetype,
                "filetype": name.rsplit(".", 1)[-1], "size": len(data),
                "url_private": url, "url_private_download": url + "?download=1"}
        with self._changed:
            self._state.files[file_id] = info
            self._state.file_bytes[file_id] = (data, login_page)
        return dict(info)

    def add_message(self, channel: str, ts: str, text: str, *, user: str = "U1",
                    thread_ts: str = "", bot: bool = False) -> None:
        """A message already in a channel (conversations.replies returns it)."""
        message = {"type": "message", "ts": ts, "text": text, "user": user}
        if thread_ts:
            message["thread_ts"] = thread_ts
        if bot:
            message["bot_id"] = "BBOT"
        with self._changed:
            self._state.messages[(channel, ts)] = message

    def fail(self, method: str, error: str) -> None:
        """Make every later call of `method` answer {"ok": false, "error": error}."""
        with self._changed:
            self._state.failures[method] = error

    # -- inspecting ------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        with self._changed:
            return [c for c in self._state.calls if method is None or c.method == method]

    def uploads(self) -> dict[str, bytes]:
        with self._changed:
            return dict(self._state.uploads)

    def wait_for(self, method: str, where: Callable[[dict[str, Any]], bool] = lambda p: True,
                 *, count: int = 1, timeout: float = 30.0) -> list[Call]:
        """The calls of `method` matching `where`, once there are `count` of them.

        Waits on a condition the server notifies on every call; raises AssertionError with
        what it did see when the deadline passes.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c for c in self._state.calls if c.method == method and where(c.params)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, _short(c.params)) for c in self._state.calls]
                    raise AssertionError(f"no {count} x {method} within {timeout}s; saw {seen}")
                self._changed.wait(left)

    def wait_answer(self, channel: str, thread_ts: str, *, timeout: float = 60.0) -> str:
        """The bot's finished answer in a thread (streaming edits end without the " …")."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for (ch, _ts), message in self._state.messages.items():
                    if ch == channel and message.get("thread_ts") == thread_ts and \
                            message.get("bot_id") and not message["text"].endswith(" …"):
                        return str(message["text"])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no answer in {channel}/{thread_ts} within {timeout}s")
                self._changed.wait(left)

    # -- serving ---------------------------------------------------------------------------
    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def record(self, method: str, params: dict[str, Any], authorization: str) -> dict[str, Any]:
        with self._changed:
            answer = self._answer(method, params)
            self._state.calls.append(Call(method, params, authorization, answer))
            self._changed.notify_all()
        return answer

    def _answer(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        if method in self._state.failures:
            return {"ok": False, "error": self._state.failures[method]}
        messages = self._state.messages
        if method == "auth.test":
            return {"ok": True, "url": "https://test.slack.com/", "team": "Test", "user": "gptstore",
                    "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": "BBOT"}
        if method == "chat.postMessage":
            ts = self._next_ts()
            message = {"type": "message", "ts": ts, "text": p.get("text", ""), "bot_id": "BBOT",
                       "user": self.bot_user_id}
            if p.get("thread_ts"):
                message["thread_ts"] = p["thread_ts"]
            messages[(p.get("channel", ""), ts)] = message
            return {"ok": True, "channel": p.get("channel"), "ts": ts, "message": message}
        if method == "chat.update":
            message = messages.get((p.get("channel", ""), p.get("ts", "")))
            if message is not None:
                message["text"] = p.get("text", "")
            return {"ok": True, "channel": p.get("channel"), "ts": p.get("ts"),
                    "text": p.get("text", "")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "conversations.replies":
            root = p.get("ts", "")
            found = [m for (ch, ts), m in messages.items() if ch == p.get("channel")
                     and (ts == root or m.get("thread_ts") == root)]
            return {"ok": True, "messages": sorted(found, key=lambda m: m["ts"]),
                    "has_more": False}
        if method == "users.info":
            user = p.get("user", "")
            return {"ok": True, "user": {"id": user, "name": user.lower(), "team_id": self.team_id,
                                         "is_admin": user in self.admins, "is_owner": False,
                                         "real_name": user}}
        if method == "views.open":
            return {"ok": True, "view": {"id": f"V{next(self._ids):05d}"}}
        if method == "files.info":
            info = self._state.files.get(p.get("file", ""))
            return {"ok": True, "file": info} if info else {"ok": False, "error": "file_not_found"}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ids):05d}"
            return {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            files = p.get("files")
            files = json.loads(files) if isinstance(files, str) else (files or [])
            return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title")}
                                          for f in files]}
        return {"ok": True}

    def download(self, file_id: str, authorization: str) -> tuple[bytes, str]:
        with self._changed:
            self._state.calls.append(Call("files.download", {"file": file_id}, authorization))
            self._changed.notify_all()
            data, login_page = self._state.file_bytes.get(file_id, (b"", True))
        if login_page or authorization != f"Bearer {self.token}":
            return LOGIN_PAGE, "text/html; charset=utf-8"
        return data, "application/octet-stream"

    def upload(self, file_id: str, data: bytes) -> None:
        with self._changed:
            self._state.uploads[file_id] = data
            self._state.calls.append(Call("files.upload", {"file": file_id, "length": len(data)}))
            self._changed.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # benchmarks open many connections at once


def _short(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v)[:80]) for k, v in params.items() if k != "blocks"}


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            parts = path.strip("/").split("/")
            if len(parts) >= 2 and parts[0] == "files":
                data, ctype = fake.download(parts[1], self.headers.get("Authorization", ""))
                self._send(200, data, ctype)
            elif path.startswith("/api/"):
                self._api(path[5:], b"")
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            body = self._body()
            if path.startswith("/upload/"):
                fake.upload(path.rsplit("/", 1)[-1], body)
                self._send(200, f"OK - {len(body)}".encode(), "text/plain")
            elif path.startswith("/api/"):
                self._api(path[5:], body)
            elif path.startswith("/response/"):
                params = json.loads(body or b"{}")
                fake.record("response_url", params, "")
                self._send(200, b"ok", "text/plain")
            else:
                self._send(404, b"not found", "text/plain")

        def _api(self, method: str, body: bytes) -> None:
            params: dict[str, Any] = dict(urllib.parse.parse_qsl(
                urllib.parse.urlsplit(self.path).query))
            ctype = self.headers.get("Content-Type", "")
            if body and "json" in ctype:
                params.update(json.loads(body))
            elif body:
                params.update(urllib.parse.parse_qsl(body.decode("utf-8")))
            for key in ("blocks", "view"):
                if isinstance(params.get(key), str):
                    params[key] = json.loads(params[key])
            answer = fake.record(method, params, self.headers.get("Authorization", ""))
            self._send(200, json.dumps(answer).encode(), "application/json; charset=utf-8")

    return Handler


class SignedSender:
    """Posts requests to a Slack endpoint signed with `signing_secret`, as Slack does."""

    def __init__(self, endpoint: str, signing_secret: str, *, clock: Callable[[], float] = time.time):
        self.endpoint = endpoint
        self.signing_secret = signing_secret
        self.clock = clock

    def sign(self, body: bytes, timestamp: str) -> str:
        base = b"v0:" + timestamp.encode() + b":" + body
        return "v0=" + hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()

    def post(self, body: bytes, content_type: str, *, headers: dict[str, str] | None = None,
             signature: str | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
        timestamp = str(int(self.clock()))
        request = urllib.request.Request(self.endpoint, data=body, method="POST", headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature or self.sign(body, timestamp),
            **(headers or {}),
        })
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def event(self, event: dict[str, Any], *, event_id: str, team_id: str = "T1",
              retry: int | None = None, **kw: Any) -> tuple[int, bytes]:
        body = {"token": "unused", "team_id": team_id, "api_app_id": "A1", "type": "event_callback",
                "event_id": event_id, "event_time": int(self.clock()), "event": event,
                "authorizations": [{"team_id": team_id, "user_id": "UBOT", "is_bot": True}]}
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} \
            if retry else None
        return self.post(json.dumps(body).encode(), "application/json", headers=headers, **kw)

    def command(self, text: str, *, user: str = "U1", channel: str = "C1", team_id: str = "T1",
                response_url: str = "", trigger_id: str = "TRIG1", **kw: Any) -> tuple[int, bytes]:
        form = {"token": "unused", "team_id": team_id, "team_domain": "test", "channel_id": channel,
                "channel_name": "general", "user_id": user, "user_name": user.lower(),
                "command": "/store", "text": text, "api_app_id": "A1",
                "response_url": response_url, "trigger_id": trigger_id}
        return self.post(urllib.parse.urlencode(form).encode(),
                         "application/x-www-form-urlencoded", **kw)

    def interaction(self, payload: dict[str, Any], **kw: Any) -> tuple[int, bytes]:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body, "application/x-www-form-urlencoded", **kw)
