"""Requests signed the way Slack signs them (v0 HMAC-SHA256 of timestamp and body), posted to
a Slack endpoint: the Slack side of the tests and benchmarks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable


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
