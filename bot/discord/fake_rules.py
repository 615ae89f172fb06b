"""The fake Discord's rules (bot/discord/testing.py): what Discord refuses and how it fails.

    fake.rules.fail_edits = 2            # the next two edits of channel messages: 404
    fake.rules.throttle = 1              # the next message write: 429 with retry_after
    fake.rules.bucket = (5, 5.0)         # per channel: 5 writes per 5 s, X-RateLimit headers
    fake.rules.refused                   # [(request, problems)]: payloads outside the limits

Every message or modal the bot sends is checked against Discord's limits
(bot/discord/limits.py) and refused with 400 "Invalid Form Body", as Discord answers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.discord.limits import COMPONENTS_V2, modal_problems, problems


@dataclass
class Recorded:
    """One REST request the bot made."""

    method: str
    path: str
    json: Any = None  # the JSON body, or the multipart `payload_json`
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, data)
    query: dict[str, str] = field(default_factory=dict)
    authorization: str = ""
    status: int = 200  # what the fake answered


class DiscordRules:
    def __init__(self) -> None:
        self.fail_edits = 0  # the next N edits of channel messages answer 404
        self.throttle = 0  # the next N message writes answer 429 with `retry_after`
        self.retry_after = 0.05
        self.bucket: tuple[int, float] | None = None  # (writes, per seconds) per channel
        self.refused: list[tuple[Recorded, list[str]]] = []  # payloads outside Discord's limits
        self._writes: dict[str, list[float]] = {}
        self._headers: dict[str, str] = {}

    def check(self, r: Recorded, messages: dict[str, dict]) -> web.Response | None:
        """The answer Discord would give instead of doing what `r` asks, or None."""
        return self._limited(r) or self._refusal(r, messages) or self._failed_edit(r, messages)

    def take_headers(self) -> dict[str, str]:
        """The rate-limit headers for the answer to the request just checked."""
        headers, self._headers = self._headers, {}
        return headers

    def _message_write(self, r: Recorded) -> tuple[dict | None, str] | None:
        """(the message payload, its channel or token) when `r` writes a message."""
        parts = r.path.strip("/").split("/")
        body = r.json if isinstance(r.json, dict) else {}
        if parts[0] == "channels" and parts[2:3] == ["messages"] and len(parts) <= 4 \
                and r.method in ("POST", "PATCH"):
            return body, parts[1]
        if parts[0] == "webhooks" and r.method in ("POST", "PATCH"):
            return body, parts[2]
        if parts[0] == "interactions" and body.get("type") in (4, 7):
            return body.get("data") or {}, parts[2]
        return None

    def _limited(self, r: Recorded) -> web.Response | None:
        write = self._message_write(r)
        if write is None:
            return None
        if self.throttle > 0:
            self.throttle -= 1
            return self._too_many(self.retry_after)
        if self.bucket is None:
            return None
        limit, per_s = self.bucket
        now = time.monotonic()
        recent = [t for t in self._writes.get(write[1], []) if now - t < per_s]
        if len(recent) >= limit:
            self._writes[write[1]] = recent
            return self._too_many(per_s - (now - recent[0]))
        recent.append(now)
        self._writes[write[1]] = recent
        self._headers = {"X-RateLimit-Bucket": f"messages-{write[1]}",
                                "X-RateLimit-Limit": str(limit),
                                "X-RateLimit-Remaining": str(limit - len(recent)),
                                "X-RateLimit-Reset-After": f"{per_s - (now - recent[0]):.3f}"}
        return None

    def _too_many(self, retry_after: float) -> web.Response:
        return web.Response(status=429, body=json.dumps({
            "message": "You are being rate limited.", "retry_after": round(retry_after, 3),
            "global": False}).encode(), headers={
            "Content-Type": "application/json", "Via": "1.1 google",
            "Retry-After": str(max(1, round(retry_after))), "X-RateLimit-Scope": "user"})

    def _refusal(self, r: Recorded, messages: dict[str, dict]) -> web.Response | None:
        body = r.json if isinstance(r.json, dict) else {}
        parts = r.path.strip("/").split("/")
        if parts[0] == "interactions" and body.get("type") == 9:
            found = modal_problems(body.get("data"))
        else:
            write = self._message_write(r)
            if write is None:
                return None
            was_v2 = bool(_edited(r, messages).get("flags", 0) & COMPONENTS_V2) \
                if r.method == "PATCH" else False
            found = problems(write[0], was_v2=was_v2)
        if not found:
            return None
        self.refused.append((r, found))
        return json_response({"message": "Invalid Form Body", "code": 50035,
                      "errors": {"_errors": [{"code": "BASE_TYPE_INVALID", "message": m}
                                             for m in found]}}, status=400)

    def _failed_edit(self, r: Recorded, messages: dict[str, dict]) -> web.Response | None:
        parts = r.path.strip("/").split("/")
        is_edit = (r.method == "PATCH" and parts[0] == "channels" and len(parts) == 4
                   and parts[3] in messages)
        if not is_edit or self.fail_edits <= 0:
            return None
        self.fail_edits -= 1
        return json_response({"message": "Unknown Message", "code": 10008}, status=404)


def _edited(r: Recorded, messages: dict[str, dict]) -> dict:
    parts = r.path.strip("/").split("/")
    if parts[0] == "webhooks":
        key = f"{parts[2]}/@original" if parts[-1] == "@original" else parts[-1]
        return messages.get(key) or {}
    return messages.get(parts[-1]) or {}


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with the content type exactly `application/json`, as discord.py requires."""
    return web.Response(status=status, body=json.dumps(data).encode(),
                        headers={"Content-Type": "application/json"})

