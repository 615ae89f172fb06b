"""A local fake Discord for tests: a real HTTP + WebSocket server on 127.0.0.1 (aiohttp).

It serves the REST routes the bot calls (recording every request), the gateway protocol
(HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME with the events missed while
the connection was down) and downloadable attachments, and lets a test push MESSAGE_CREATE,
INTERACTION_CREATE (slash commands, button clicks, modal submissions; from a server, a DM or
a user install) and MESSAGE_REACTION_ADD dispatches. REST replies carry the content type
exactly `application/json`, as discord.py requires.

Like Discord it opens threads on messages (THREAD_CREATE), and through `rules`
(bot/discord/fake_rules.py) it refuses (400) a message or modal outside Discord's limits and
can fail the next edits, answer the next writes with 429 and a `retry_after`, or keep a
per-channel rate-limit bucket; `drop()` closes the gateway connection so the client resumes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import datetime, timezone
from typing import Any, Callable

from aiohttp import WSMsgType, web

from bot.discord.fake_rules import DiscordRules, Recorded
from bot.discord.fake_rules import json_response as _json

MANAGE_GUILD = 1 << 5
EVERYDAY = ((1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 6)  # view, send,
            | (1 << 35) | (1 << 38))  # embed, attach, history, react, create threads, send in them
MESSAGE_CONTENT_FLAGS = (1 << 18) | (1 << 19)  # GATEWAY_MESSAGE_CONTENT(_LIMITED)
MESSAGE_CONTENT_INTENT = 1 << 15
DISCORD_EPOCH_MS = 1420070400000


class FakeDiscord:
    """One guild (`guild_id`) with a text channel, an admin and a plain member."""

    def __init__(self, *, message_content_granted: bool = True,
                 fail_webhook_edits: bool = False, threads_allowed: bool = True) -> None:
        # without the grant, IDENTIFY asking for message content is closed with 4014, as Discord does
        self.message_content_granted = message_content_granted
        self.fail_webhook_edits = fail_webhook_edits  # PATCH on interaction messages -> 404
        self.threads_allowed = threads_allowed  # False: opening a thread is refused (403)
        self.rules = DiscordRules()  # limits, rate limits and failures (fake_rules.py)
        self.threads: dict[str, dict] = {}
        self.resumes: list[dict] = []  # every RESUME payload (token removed)
        self._missed: list[str] | None = None  # events dispatched while the gateway was down
        self._last_id = 0
        self.app_id = self.new_id()
        self.guild_id = self.new_id()
        self.channel_id = self.new_id()
        self.channels = [self.channel_id]  # the guild's text channels
        self.admin_role_id = self.new_id()
        self.bot = self.user("gptstore", bot=True, id=self.app_id)
        self.admin = self.user("alice")
        self.member = self.user("bob")
        self.outsiders: list[dict] = []  # users in no server of the bot (user installs)
        self.requests: list[Recorded] = []
        self.identifies: list[dict] = []  # every IDENTIFY payload (token removed)
        self.downloads: list[str] = []  # attachment ids fetched
        self.role_name = "Moderators"  # a role that alice (the admin) has
        self.role_permissions = EVERYDAY | MANAGE_GUILD
        self.role_members = {self.admin["id"]}
        self.messages: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}
        self.port = 0
        self._changed = asyncio.Event()
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._dms: dict[str, str] = {}

    # ---- life cycle -------------------------------------------------------------------
    async def start(self) -> "FakeDiscord":
        """Serve (again, after stop(): what it recorded and stored stays, as on Discord)."""
        self._changed, self._sockets, self._missed = asyncio.Event(), [], None
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/files/{id}/{name}", self._file)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    # ---- values -----------------------------------------------------------------------
    def new_id(self) -> str:
        """A snowflake for now: discord.py reads creation times (interaction age) from ids."""
        now_ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        self._last_id = max(self._last_id + 1, now_ms << 22)
        return str(self._last_id)

    def user(self, name: str, *, bot: bool = False, id: str | None = None) -> dict:
        return {"id": id or self.new_id(), "username": name, "discriminator": "0",
                "global_name": name, "avatar": None, "bot": bot}

    def member_of(self, user: dict) -> dict:
        roles = [self.admin_role_id] if user["id"] in self.role_members else []
        return {"user": user, "roles": roles, "joined_at": _now(), "deaf": False, "mute": False,
                "flags": 0, "nick": None}

    def permissions_of(self, user: dict) -> int:
        return EVERYDAY | (self.role_permissions if user["id"] in self.role_members else 0)

    def add_file(self, filename: str, data: bytes, *, size: int | None = None) -> dict:
        """Serve `data` and return the attachment object a message or interaction carries."""
        file_id = self.new_id()
        self.files[file_id] = data
        url = f"http://127.0.0.1:{self.port}/files/{file_id}/{filename}"
        return {"id": file_id, "filename": filename, "size": len(data) if size is None else size,
                "url": url, "proxy_url": url, "content_type": "text/plain"}

    def channel(self, channel_id: str | None = None) -> dict:
        if channel_id in self.threads:
            return self.threads[channel_id]
        return {"id": channel_id or self.channel_id, "type": 0, "guild_id": self.guild_id,
                "name": "general" if (channel_id or self.channel_id) == self.channels[0]
                else f"channel-{channel_id}", "position": 0, "permission_overwrites": [], "parent_id": None,
                "nsfw": False, "topic": None, "last_message_id": None, "rate_limit_per_user": 0}

    def guild(self) -> dict:
        everyone = {"id": self.guild_id, "name": "@everyone", "permissions": str(EVERYDAY),
                    "position": 0, "color": 0, "hoist": False, "managed": False,
                    "mentionable": False, "flags": 0}
        admins = dict(everyone, id=self.admin_role_id, name=self.role_name,
                      permissions=str(self.role_permissions), position=1)
        return {"id": self.guild_id, "name": "Test guild", "icon": None, "owner_id": self.admin["id"],
                "roles": [everyone, admins], "emojis": [], "stickers": [], "features": [],
                "member_count": 3, "large": False, "unavailable": False, "joined_at": _now(),
                "members": [self.member_of(u) for u in (self.bot, self.admin, self.member)],
                "channels": [self.channel(c) for c in self.channels],
                "threads": list(self.threads.values()),
                "presences": [], "voice_states": [],
                "premium_tier": 0, "preferred_locale": "en-US", "verification_level": 0,
                "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
                "nsfw_level": 0, "system_channel_flags": 0, "afk_timeout": 300}

    def message(self, author: dict, content: str, *, channel_id: str | None = None,
                attachments: list[dict] | None = None, reference: dict | None = None,
                guild: bool = True, embeds: list | None = None) -> dict:
        data = {"id": self.new_id(), "channel_id": channel_id or self.channel_id, "author": author,
                "content": content, "timestamp": _now(), "edited_timestamp": None, "tts": False,
                "mention_everyone": False, "mentions": [], "mention_roles": [],
                "attachments": attachments or [], "embeds": embeds or [], "pinned": False,
                "type": 19 if reference else 0, "flags": 0, "components": []}
        if guild:
            data["guild_id"] = self.guild_id
            data["member"] = {k: v for k, v in self.member_of(author).items() if k != "user"}
        if reference:
            data["message_reference"] = {"message_id": reference["id"],
                                         "channel_id": reference["channel_id"],
                                         "guild_id": self.guild_id if guild else None}
            data["referenced_message"] = reference
        return data

    # ---- pushing events -----------------------------------------------------------------
    async def dispatch(self, event: str, data: dict) -> None:
        frame = json.dumps({"op": 0, "t": event, "s": next(self._seq), "d": data})
        if self._missed is not None:  # the connection is down: replayed on RESUME
            self._missed.append(frame)
            return
        for ws in list(self._sockets):
            await ws.send_str(frame)

    async def add_channel(self) -> str:
        """A new text channel in the guild (CHANNEL_CREATE); returns its id."""
        channel_id = self.new_id()
        self.channels.append(channel_id)
        await self.dispatch("CHANNEL_CREATE", self.channel(channel_id))
        return channel_id

    async def drop(self, code: int = 4000) -> None:
        """Close the gateway connection as Discord does on a hiccup (4000: resumable); events
        dispatched until the client resumes are replayed then."""
        self._missed = []
        sockets, self._sockets = list(self._sockets), []
        for ws in sockets:
            await ws.close(code=code, message=b"Unknown error")

    async def post_message(self, author: dict, content: str, *, mention_bot: bool = False,
                           **kw: Any) -> dict:
        if mention_bot:
            content = f"<@{self.bot['id']}> {content}"
        data = self.message(author, content, **kw)
        if mention_bot:
            data["mentions"] = [self.bot]
        self.messages[data["id"]] = data
        await self.dispatch("MESSAGE_CREATE", data)
        return data

    async def react(self, user: dict, message_id: str, emoji: str) -> None:
        channel_id = (self.messages.get(message_id) or {}).get("channel_id") or self.channel_id
        await self.dispatch("MESSAGE_REACTION_ADD", {
            "user_id": user["id"], "channel_id": channel_id, "message_id": message_id,
            "guild_id": self.guild_id, "emoji": {"id": None, "name": emoji},
            "member": self.member_of(user), "burst": False, "type": 0})

    async def slash(self, user: dict, sub: str, options: dict[str, Any] | None = None, *,
                    attachment: dict | None = None, focused: str | None = None,
                    where: str = "guild", channel_id: str | None = None) -> dict:
        """Push /store SUB as an INTERACTION_CREATE; returns the interaction payload."""
        opts: list[dict] = []
        for name, value in (options or {}).items():
            kind = 4 if isinstance(value, int) else 10 if isinstance(value, float) else 3
            opt = {"name": name, "type": kind, "value": value}
            if name == focused:
                opt["focused"] = True
            opts.append(opt)
        resolved: dict = {}
        if attachment is not None:
            opts.append({"name": "file", "type": 11, "value": attachment["id"]})
            resolved["attachments"] = {attachment["id"]: attachment}
        data = {"id": self.new_id(), "name": "store", "type": 1,
                "options": [{"name": sub, "type": 1, "options": opts}], "resolved": resolved}
        return await self._interaction(user, 4 if focused else 2, data, where=where,
                                       channel_id=channel_id)

    async def click(self, user: dict, custom_id: str, message: dict) -> dict:
        channel_id = message.get("channel_id") or self.channel_id
        return await self._interaction(user, 3, {"custom_id": custom_id, "component_type": 2},
                                       message=message, channel_id=channel_id)

    async def modal_of(self, interaction: dict, timeout: float = 30.0) -> dict:
        """The modal the bot opened in answer to `interaction` (a type 9 callback)."""
        [call] = await self.wait_for(
            lambda r: r.path.startswith(f"/interactions/{interaction['id']}/"), timeout=timeout)
        assert call.json["type"] == 9, f"the bot answered {call.json} instead of a modal"
        return call.json["data"]

    async def submit(self, user: dict, modal: dict, values: dict[str, Any],
                     files: dict[str, list[dict]] | None = None, **where: Any) -> dict:
        """Submit `modal` as a user would: `values` by custom_id (a text, or a list of picked
        options), `files` by custom_id (attachments from add_file)."""
        files = files or {}
        sent, resolved = [], {}
        for top in modal["components"]:
            inner = top.get("component") or (top.get("components") or [{}])[0]
            cid = inner.get("custom_id")
            if inner.get("type") == 19:
                picked = files.get(cid, [])
                resolved.update({a["id"]: a for a in picked})
                answer = {"type": 19, "custom_id": cid, "values": [a["id"] for a in picked]}
            elif inner.get("type") == 4:
                answer = {"type": 4, "custom_id": cid, "value": str(values.get(cid, ""))}
            else:
                answer = {"type": inner.get("type"), "custom_id": cid,
                          "values": list(values.get(cid, []))}
            sent.append({"type": 18, "id": top.get("id"), "component": answer})
        data = {"custom_id": modal["custom_id"], "components": sent,
                "resolved": {"attachments": resolved} if resolved else {}}
        return await self._interaction(user, 5, data, **where)

    async def _interaction(self, user: dict, kind: int, data: dict, *, where: str = "guild",
                           channel_id: str | None = None, **extra: Any) -> dict:
        """`where`: "guild" (the app installed in the server), "dm" (the user's DM with the
        bot) or "private" (a DM between users, reached through a user install only)."""
        payload = {"id": self.new_id(), "application_id": self.app_id, "type": kind,
                   "token": f"itoken-{self.new_id()}", "version": 1, "data": data,
                   "locale": "en-US", "app_permissions": str(EVERYDAY), "entitlements": [],
                   "attachment_size_limit": 25 * 1024 * 1024, **extra}
        if where == "guild":
            channel_id = channel_id or self.channel_id
            payload.update(guild_id=self.guild_id, channel_id=channel_id, guild_locale="en-US",
                           channel=self.channel(channel_id), context=0,
                           member=dict(self.member_of(user),
                                       permissions=str(self.permissions_of(user))),
                           authorizing_integration_owners={"0": self.guild_id})
        else:
            channel_id = channel_id or self.dm_of(user)
            payload.update(channel_id=channel_id, user=user,
                           channel={"id": channel_id, "type": 1, "recipients": [user]},
                           context=1 if where == "dm" else 2,
                           authorizing_integration_owners={"1": user["id"]})
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    def dm_of(self, user: dict) -> str:
        """The id of the DM channel between `user` and the bot (made on first use)."""
        return self._dms.setdefault(user["id"], self.new_id())

    # ---- waiting ------------------------------------------------------------------------
    async def until(self, condition: Callable[[], Any], *, timeout: float = 60.0) -> Any:
        """Wait (bounded) until `condition()` is truthy, re-checking whenever a request or an
        IDENTIFY arrives; returns its value."""
        async def check() -> Any:
            while True:
                value = condition()
                if value:
                    return value
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(check(), timeout)

    async def wait_for(self, predicate: Callable[[Recorded], bool], *, count: int = 1,
                       timeout: float = 60.0) -> list[Recorded]:
        """Wait (bounded) until `count` recorded requests match; returns them."""
        def found() -> list[Recorded]:
            hits = [r for r in self.requests if predicate(r)]
            return hits if len(hits) >= count else []
        return await self.until(found, timeout=timeout)

    def find(self, method: str, fragment: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and fragment in r.path]

    # ---- HTTP ---------------------------------------------------------------------------
    async def _file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["id"])
        self.downloads.append(request.match_info["id"])
        if data is None:
            return web.Response(status=404, text="expired")
        return web.Response(body=data, headers={"Content-Type": "application/octet-stream"})

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        record = Recorded(request.method, path, query=dict(request.query),
                          authorization=request.headers.get("Authorization", ""))
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    record.json = json.loads(await part.text())
                elif part.filename:
                    record.files.append((part.filename, bytes(await part.read())))
        elif request.can_read_body:
            record.json = await request.json()
        self.requests.append(record)
        self._changed.set()
        answer = self.rules.check(record, self.messages) or await self._answer(record)
        record.status = answer.status
        return answer

    async def _answer(self, r: Recorded) -> web.Response:
        response = self._route(r)
        response.headers.update(self.rules.take_headers())
        if getattr(self, "_created_thread", None):
            thread, self._created_thread = self._created_thread, None
            await self.dispatch("THREAD_CREATE", dict(thread, newly_created=True))
        return response

    def _route(self, r: Recorded) -> web.Response:
        parts = r.path.strip("/").split("/")
        body = r.json or {}
        if r.path == "/users/@me":
            return _json(self.bot)
        if r.path == "/users/@me/channels" and r.method == "POST":
            user = next((u for u in (self.admin, self.member, *self.outsiders)
                         if u["id"] == str(body.get("recipient_id"))), None)
            if user is None:
                return _json({"message": "Unknown User", "code": 10013}, status=404)
            return _json({"id": self.dm_of(user), "type": 1, "recipients": [user],
                          "last_message_id": None})
        if r.path == "/oauth2/applications/@me":
            flags = MESSAGE_CONTENT_FLAGS if self.message_content_granted else 0
            return _json({"id": self.app_id, "name": "gptstore", "icon": None, "description": "",
                          "bot_public": True, "bot_require_code_grant": False, "verify_key": "k",
                          "owner": self.admin, "flags": flags, "team": None, "summary": "",
                          "rpc_origins": [], "bot": self.bot})
        if r.path == "/gateway/bot":
            return _json({"url": f"ws://127.0.0.1:{self.port}/gateway", "shards": 1,
                          "session_start_limit": {"total": 1000, "remaining": 1000,
                                                  "reset_after": 0, "max_concurrency": 1}})
        if parts[0] == "applications" and parts[-1] == "commands" and r.method == "PUT":
            return _json([dict(c, id=self.new_id(), application_id=self.app_id, version="1")
                          for c in body])
        if parts[0] == "channels" and parts[2:3] == ["messages"] and parts[-1] == "threads":
            return self._open_thread(parts[1], parts[3], body)
        if parts[0] == "channels" and parts[2:3] == ["messages"]:
            return self._channel_message(r, parts[1], parts[3] if len(parts) > 3 else None, body)
        if parts[0] == "channels" and parts[2:3] == ["typing"]:
            return web.Response(status=204)
        if parts[0] == "interactions" and parts[-1] == "callback":
            return self._callback(parts[1], parts[2], body, r)
        if parts[0] == "webhooks":
            return self._webhook(r, parts[2], parts[4] if len(parts) > 4 else None, body)
        return _json({"message": "Unknown route", "code": 0}, status=404)

    def _open_thread(self, channel_id: str, message_id: str, body: dict) -> web.Response:
        """A thread started on a message: it takes the message's id, as on Discord."""
        if not self.threads_allowed:
            return _json({"message": "Missing Permissions", "code": 50013}, status=403)
        if message_id not in self.messages:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        if message_id in self.threads:
            return _json({"message": "A thread has already been created for this message",
                          "code": 160004}, status=400)
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            return _json({"message": "Invalid Form Body", "code": 50035}, status=400)
        thread = {"id": message_id, "type": 11, "guild_id": self.guild_id,
                  "parent_id": channel_id, "owner_id": self.bot["id"], "name": name,
                  "last_message_id": None, "rate_limit_per_user": 0, "message_count": 0,
                  "member_count": 1, "flags": 0, "total_message_sent": 0,
                  "thread_metadata": {"archived": False, "locked": False,
                                      "auto_archive_duration": body.get(
                                          "auto_archive_duration", 1440),
                                      "archive_timestamp": _now()}}
        self.threads[message_id] = thread
        self.messages[message_id]["thread"] = thread
        self._created_thread = thread
        return _json(thread, status=201)

    def _store(self, key: str | None, body: dict, r: Recorded, channel_id: str | None = None,
               old: dict | None = None) -> dict:
        data = dict(old) if old else self.message(self.bot, "", channel_id=channel_id)
        for name in ("content", "embeds", "components", "flags"):
            if name in body and body[name] is not None:
                data[name] = body[name]
        if r.files:
            data["attachments"] = [self.add_file(name, blob) for name, blob in r.files]
        ref = body.get("message_reference")
        if ref and not old:
            ref = {k: str(v) if k.endswith("_id") and v is not None else v for k, v in ref.items()}
            data["type"], data["message_reference"] = 19, ref
            data["referenced_message"] = self.messages.get(str(ref.get("message_id")))
        if old:
            data["edited_timestamp"] = _now()
        self.messages[key or data["id"]] = data
        self.messages[data["id"]] = data
        return data

    def _channel_message(self, r: Recorded, channel_id: str, message_id: str | None,
                         body: dict) -> web.Response:
        if message_id is None and r.method == "GET":
            before = int(r.query.get("before") or 1 << 64)
            found = {m["id"]: m for m in self.messages.values()
                     if m["channel_id"] == channel_id and int(m["id"]) < before}
            newest = sorted(found.values(), key=lambda m: int(m["id"]), reverse=True)
            return _json(newest[:int(r.query.get("limit") or 50)])
        if message_id is None:
            return _json(self._store(None, body, r, channel_id))
        old = self.messages.get(message_id)
        if old is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        if r.method == "PATCH":
            return _json(self._store(None, body, r, old=old))
        return _json(old)

    def _callback(self, interaction_id: str, token: str, body: dict, r: Recorded) -> web.Response:
        kind = body.get("type")
        data = body.get("data") or {}
        if kind in (4, 5):
            message = self._store(f"{token}/@original", dict(data, flags=data.get("flags", 0)), r)
            return _json({"interaction": {"id": interaction_id, "type": 2,
                                          "response_message_id": message["id"],
                                          "response_message_loading": kind == 5,
                                          "response_message_ephemeral": bool(data.get("flags", 0) & 64)},
                          "resource": {"type": kind, "message": message}})
        if kind == 7:  # the clicked message, updated
            return _json({"interaction": {"id": interaction_id, "type": 3}})
        return _json({"interaction": {"id": interaction_id, "type": 2}})

    def _webhook(self, r: Recorded, token: str, message_id: str | None, body: dict) -> web.Response:
        if message_id is None and r.method == "POST":
            return _json(self._store(None, body, r))
        key = f"{token}/@original" if message_id == "@original" else message_id
        old = self.messages.get(key or "")
        if r.method == "DELETE":
            self.messages.pop(key or "", None)
            return web.Response(status=204)
        if old is None or (r.method == "PATCH" and self.fail_webhook_edits):
            return _json({"message": "Unknown Webhook", "code": 10015}, status=404)
        if r.method == "PATCH":
            return _json(self._store(key, body, r, old=old))
        return _json(old)

    # ---- gateway ------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            op = frame.get("op")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:
                self.identifies.append({k: v for k, v in frame["d"].items() if k != "token"})
                self._changed.set()
                wants_content = frame["d"].get("intents", 0) & MESSAGE_CONTENT_INTENT
                if wants_content and not self.message_content_granted:
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                self._missed = None
                self._sockets.append(ws)
                await self._ready(ws)
            elif op == 6:
                self.resumes.append({k: v for k, v in frame["d"].items() if k != "token"})
                self._changed.set()
                missed, self._missed = self._missed or [], None
                for event in missed:  # Discord replays what the client missed
                    await ws.send_str(event)
                self._sockets.append(ws)
                await ws.send_str(json.dumps({"op": 0, "t": "RESUMED", "s": next(self._seq), "d": {}}))
        if ws in self._sockets:
            self._sockets.remove(ws)
        return ws

    async def _ready(self, ws: web.WebSocketResponse) -> None:
        flags = MESSAGE_CONTENT_FLAGS if self.message_content_granted else 0
        ready = {"v": 10, "user": self.bot, "guilds": [{"id": self.guild_id, "unavailable": True}],
                 "session_id": "session-1", "shard": [0, 1],
                 "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway",
                 "application": {"id": self.app_id, "flags": flags}, "private_channels": [],
                 "relationships": []}
        for event, data in (("READY", ready), ("GUILD_CREATE", self.guild())):
            await ws.send_str(json.dumps({"op": 0, "t": event, "s": next(self._seq), "d": data}))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
