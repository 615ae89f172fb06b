"""A local fake Slack (Web API server + signed-request sender) for tests and benchmarks.

Like httpx's MockTransport it ships with the code it stands in for: `FakeSlack` is a real
HTTP server on 127.0.0.1 that records every Web API call with its parameters and answers
with plausible JSON; `SignedSender` posts requests signed the way Slack signs them.

It behaves like Slack where a test can tell: every call needs a bot token of a workspace it
knows (`add_workspace`; a revoked or unknown token is `invalid_auth`), each token sees its
own workspace in `auth.test`, Block Kit is checked (`invalid_blocks` for what Slack would
refuse), native streams (chat.startStream/appendStream/stopStream) keep their state, and
`fail()` makes any method refuse (`not_allowed`, `missing_scope`, ...). OAuth codes are
granted with `grant()`; apps.connections.open hands out the Socket Mode server's URL
(bot/slack/testing_socket.py).

    with FakeSlack(token="xoxb-test") as fake:
        client = WebClient(token="xoxb-test", base_url=fake.api_url)
        ...
        fake.wait_for("chat.postMessage", lambda p: "acme" in p.get("text", ""))
"""

from __future__ import annotations

import base64
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

__all__ = ["Call", "FakeSlack", "SignedSender", "LOGIN_PAGE", "validate_blocks"]

LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to Slack</body></html>"


@dataclass(frozen=True)
class Call:
    """One Web API call the fake received."""

    method: str
    params: dict[str, Any]
    authorization: str = ""
    result: dict[str, Any] = field(default_factory=dict)  # what the fake answered
    at: float = 0.0  # time.monotonic() when it arrived


@dataclass(frozen=True)
class Workspace:
    """A workspace the fake knows, reached with its bot token."""

    team_id: str
    token: str
    bot_user_id: str = "UBOT"
    bot_id: str = "BBOT"
    name: str = "Test"


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    file_bytes: dict[str, tuple[bytes, bool]] = field(default_factory=dict)  # id -> (data, html)
    uploads: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # method -> Slack error code
    workspaces: dict[str, Workspace] = field(default_factory=dict)  # bot token -> workspace
    grants: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (token, installer)


NO_BOT_TOKEN = {"oauth.v2.access", "apps.connections.open"}
STREAM_TEXT_LIMIT = 12000  # characters of markdown_text in one call


class FakeSlack:
    """Slack's Web API on 127.0.0.1, a random port, in a daemon thread."""

    def __init__(self, *, token: str = "xoxb-test", team_id: str = "T1",
                 bot_user_id: str = "UBOT", admins: tuple[str, ...] = (),
                 app_token: str = "xapp-test", client_id: str = "111.222",
                 client_secret: str = "client-secret") -> None:
        self.token = token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.admins = set(admins)
        self.app_token = app_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.socket_url = ""  # set by a FakeSocketMode attached to this fake
        self._state = _State()
        if token:
            self._state.workspaces[token] = Workspace(team_id, token, bot_user_id)
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

    def heal(self, method: str) -> None:
        with self._changed:
            self._state.failures.pop(method, None)

    def add_workspace(self, team_id: str, token: str, *, bot_user_id: str = "UBOT",
                      name: str = "") -> Workspace:
        """Another workspace, reached with its own bot token."""
        workspace = Workspace(team_id, token, bot_user_id, name=name or team_id)
        with self._changed:
            self._state.workspaces[token] = workspace
        return workspace

    def revoke(self, token: str) -> None:
        """The token stops working (the app was uninstalled from its workspace)."""
        with self._changed:
            self._state.workspaces.pop(token, None)

    def grant(self, code: str, workspace: Workspace, *, installer: str = "UINSTALL") -> None:
        """oauth.v2.access will exchange `code` for `workspace`'s bot token."""
        with self._changed:
            self._state.grants[code] = (workspace.token, installer)
            self._state.workspaces[workspace.token] = workspace

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """A message as the channel shows it now (a copy)."""
        with self._changed:
            return json.loads(json.dumps(self._state.messages.get((channel, ts), {})))

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
                            message.get("bot_id") and not message.get("streaming") and \
                            not message["text"].endswith(" …"):
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
            answer = self._answer(method, params, authorization)
            self._state.calls.append(Call(method, params, authorization, answer,
                                          time.monotonic()))
            self._changed.notify_all()
        return answer

    def _answer(self, method: str, p: dict[str, Any], authorization: str) -> dict[str, Any]:
        if method in self._state.failures:
            return {"ok": False, "error": self._state.failures[method]}
        bearer = authorization.removeprefix("Bearer ").strip() or str(p.get("token") or "")
        if method == "oauth.v2.access":
            return self._oauth_access(p, authorization)
        if method == "apps.connections.open":
            if bearer != self.app_token or not self.socket_url:
                return {"ok": False, "error": "invalid_auth"}
            return {"ok": True, "url": self.socket_url}
        workspace = self._state.workspaces.get(bearer)
        if workspace is None:
            return {"ok": False, "error": "invalid_auth" if bearer else "not_authed"}
        if "blocks" in p:
            problem = validate_blocks(p["blocks"])
            if problem:
                return {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        messages = self._state.messages
        if method == "auth.test":
            return {"ok": True, "url": "https://test.slack.com/", "team": workspace.name,
                    "user": "gptstore", "team_id": workspace.team_id,
                    "user_id": workspace.bot_user_id, "bot_id": workspace.bot_id}
        if method == "chat.postMessage":
            ts = self._next_ts()
            message = {"type": "message", "ts": ts, "text": p.get("text", ""),
                       "bot_id": workspace.bot_id, "user": workspace.bot_user_id,
                       "team": workspace.team_id}
            if p.get("blocks"):
                message["blocks"] = p["blocks"]
            if p.get("thread_ts"):
                message["thread_ts"] = p["thread_ts"]
            messages[(p.get("channel", ""), ts)] = message
            return {"ok": True, "channel": p.get("channel"), "ts": ts, "message": message}
        if method == "chat.update":
            message = messages.get((p.get("channel", ""), p.get("ts", "")))
            if message is not None:
                if message.get("streaming"):
                    return {"ok": False, "error": "message_not_in_streaming_state"}
                message["text"] = p.get("text", "")
                if "blocks" in p:
                    message["blocks"] = p["blocks"]
            return {"ok": True, "channel": p.get("channel"), "ts": p.get("ts"),
                    "text": p.get("text", "")}
        if method.startswith("chat.") and method.endswith("Stream"):
            return self._stream(method, p, workspace)
        if method.startswith("assistant.threads."):
            return self._assistant(method, p)
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

    def _oauth_access(self, p: dict[str, Any], authorization: str) -> dict[str, Any]:
        client_id, client_secret = p.get("client_id", ""), p.get("client_secret", "")
        if authorization.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(
                authorization[6:]).decode().partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return {"ok": False, "error": "invalid_client_id"}
        grant = self._state.grants.pop(p.get("code", ""), None)  # a code works once
        if grant is None:
            return {"ok": False, "error": "invalid_code"}
        token, installer = grant
        workspace = self._state.workspaces[token]
        return {"ok": True, "app_id": "A1", "access_token": token, "token_type": "bot",
                "scope": p.get("scope", "chat:write,commands"),
                "bot_user_id": workspace.bot_user_id,
                "team": {"id": workspace.team_id, "name": workspace.name}, "enterprise": None,
                "is_enterprise_install": False,
                "authed_user": {"id": installer, "scope": "", "token_type": "user"}}

    def _stream(self, method: str, p: dict[str, Any], workspace: Workspace) -> dict[str, Any]:
        """Native streaming as Slack keeps it: one message whose text grows until stopped."""
        channel = p.get("channel", "")
        chunks = p.get("chunks")
        chunks = json.loads(chunks) if isinstance(chunks, str) else (chunks or [])
        pieces = [str(p.get("markdown_text") or "")] + [
            str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text"]
        if any(len(piece) > STREAM_TEXT_LIMIT for piece in pieces):
            return {"ok": False, "error": "msg_too_long"}
        if method == "chat.startStream":
            if not p.get("thread_ts"):
                return {"ok": False, "error": "invalid_thread_ts"}
            if not channel.startswith("D") and not (p.get("recipient_user_id")
                                                    and p.get("recipient_team_id")):
                return {"ok": False, "error": "missing_recipient_user_id"}
            ts = self._next_ts()
            self._state.messages[(channel, ts)] = {
                "type": "message", "ts": ts, "text": "".join(pieces), "thread_ts": p["thread_ts"],
                "bot_id": workspace.bot_id, "user": workspace.bot_user_id, "streaming": True,
                "team": workspace.team_id}
            return {"ok": True, "channel": channel, "ts": ts}
        message = self._state.messages.get((channel, p.get("ts", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if not message.get("streaming"):
            return {"ok": False, "error": "message_not_in_streaming_state"}
        message["text"] += "".join(pieces)
        if method == "chat.stopStream":
            message["streaming"] = False
            if p.get("blocks"):
                message["blocks"] = p["blocks"]
        return {"ok": True, "channel": channel, "ts": message["ts"]}

    def _assistant(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("channel_id") or (method != "assistant.threads.setSuggestedPrompts"
                                       and not p.get("thread_ts")):
            return {"ok": False, "error": "invalid_arguments"}
        if method == "assistant.threads.setSuggestedPrompts":
            prompts = p.get("prompts")
            prompts = json.loads(prompts) if isinstance(prompts, str) else (prompts or [])
            if not 1 <= len(prompts) <= 4 or any(
                    not q.get("title") or not q.get("message") for q in prompts):
                return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def download(self, file_id: str, authorization: str) -> tuple[bytes, str]:
        with self._changed:
            self._state.calls.append(Call("files.download", {"file": file_id}, authorization))
            self._changed.notify_all()
            data, login_page = self._state.file_bytes.get(file_id, (b"", True))
            known = authorization.removeprefix("Bearer ") in self._state.workspaces
        if login_page or not known:
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


BLOCK_TYPES = {"section", "header", "context", "actions", "markdown", "context_actions",
               "divider", "image", "rich_text", "input"}


def validate_blocks(blocks: Any) -> str:
    """What Slack would refuse in `blocks` (one sentence), or "" when it would take them."""
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "blocks must be a list of at most 50"
    markdown = 0
    for block in blocks:
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            return f"unknown block type {kind!r}"
        if kind == "section":
            text = (block.get("text") or {}).get("text", "")
            if len(text) > 3000 or len(block.get("fields") or []) > 10:
                return "a section holds at most 3000 characters and 10 fields"
            if not text and not block.get("fields"):
                return "a section needs text or fields"
        elif kind == "header" and len(block["text"]["text"]) > 150:
            return "a header holds at most 150 characters"
        elif kind == "markdown":
            markdown += len(block.get("text") or "")
            if not block.get("text") or markdown > 12000:
                return "markdown blocks hold 1 to 12000 characters in all"
        elif kind == "context" and not 1 <= len(block.get("elements") or []) <= 10:
            return "a context block holds 1 to 10 elements"
        elif kind == "actions" and not 1 <= len(block.get("elements") or []) <= 25:
            return "an actions block holds 1 to 25 elements"
        elif kind == "context_actions":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 5 or any(
                    e.get("type") not in ("feedback_buttons", "icon_button") for e in elements):
                return "context_actions holds 1 to 5 feedback_buttons or icon_button elements"
            for element in elements:
                if element["type"] == "feedback_buttons" and not all(
                        (element.get(side) or {}).get("value") and
                        (element.get(side) or {}).get("text", {}).get("type") == "plain_text"
                        for side in ("positive_button", "negative_button")):
                    return "feedback_buttons need a positive and a negative button"
    return ""


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
            for key in ("blocks", "view", "chunks", "prompts"):
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
