"""Who and where a Slack request comes from: the Caller, admin rights, thread history, dedup.

Slack ids become the engine's tenant-safe ids (workspace "slack:T1", user "slack:T1:U1").
Admin rights come from users.info (workspace admins and owners), cached briefly so a busy
channel does not ask Slack on every message. Each request brings its own WebClient (its
workspace's token, under OAuth); the cache is keyed by workspace and user. A Slack Connect
user from another organisation (their `user_team` differs from the channel's team) is a
user of their own organisation, never a member, let alone an admin, of the host workspace.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from engine.identity import Caller

if TYPE_CHECKING:
    from engine.app import Engine

MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
HISTORY_LIMIT = 20


class AdminCache:
    """users.info answers (is_admin or is_owner), kept `ttl_s` seconds per user."""

    def __init__(self, client: WebClient, *, ttl_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic,
                 log: logging.Logger | None = None) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.clock = clock
        self.log = log or logging.getLogger("gptstore.slack")
        self._seen: dict[tuple[str, str], tuple[float, bool, str]] = {}
        self._lock = threading.Lock()

    def lookup(self, user_id: str, *, team: str = "",
               client: WebClient | None = None) -> tuple[bool, str]:
        """(is_admin, display name) in `team`, asked with `client` (the request's own);
        (False, "") when Slack cannot tell."""
        now = self.clock()
        key = (team, user_id)
        with self._lock:
            hit = self._seen.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1], hit[2]
        try:
            user = (client or self.client).users_info(user=user_id)["user"]
            admin = bool(user.get("is_admin") or user.get("is_owner"))
            name = str(user.get("real_name") or user.get("name") or "")
        except SlackApiError as exc:  # missing users:read: nobody is an admin, say so in the log
            self.log.warning("users.info failed for %s (%s); treating as non-admin", user_id,
                             exc.response.get("error"))
            admin, name = False, ""
        with self._lock:
            self._seen[key] = (now, admin, name)
        return admin, name


def make_caller(admins: AdminCache, *, team: str, user: str, channel: str = "",
                thread: str = "", client: WebClient | None = None,
                user_team: str = "") -> Caller:
    """The Caller for `user` in workspace `team`; a user of another organisation
    (`user_team`, Slack Connect) is a non-admin user of that organisation."""
    if user_team and team and user_team != team:
        return Caller.for_slack(user_team, user, channel=channel, thread=thread)
    is_admin, name = admins.lookup(user, team=team, client=client) if user else (False, "")
    return Caller.for_slack(team, user, channel=channel, thread=thread, is_admin=is_admin,
                            display_name=name)


def strip_mentions(text: str, bot_user_id: str) -> str:
    """The message without the bot's own mention (other people's mentions stay)."""
    return re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", "", text or "").strip()


def mentions(text: str, bot_user_id: str) -> bool:
    return bool(bot_user_id) and any(m == bot_user_id for m in MENTION.findall(text or ""))


def thread_history(client: WebClient, *, channel: str, thread_ts: str, current_ts: str,
                   bot_user_id: str, log: logging.Logger) -> list[dict[str, str]] | None:
    """The thread so far as chat turns (the bot's messages are the assistant's).

    None when Slack will not give it (missing *:history scope): the engine's logged history
    for the thread is used instead.
    """
    try:
        result = client.conversations_replies(channel=channel, ts=thread_ts, limit=100)
    except SlackApiError as exc:
        log.info("conversations.replies failed (%s); using the logged history",
                 exc.response.get("error"))
        return None
    turns: list[dict[str, str]] = []
    for message in result.get("messages") or []:
        if message.get("ts") == current_ts:
            continue
        mine = bool(message.get("bot_id")) or message.get("user") == bot_user_id
        text = strip_mentions(message.get("text") or "", bot_user_id)
        if text and not (mine and text.startswith("Job ")):
            turns.append({"role": "assistant" if mine else "user", "content": text})
    return turns[-HISTORY_LIMIT:]


def first_time(engine: "Engine", key: str) -> bool:
    """True the first time `key` is seen by any process sharing the database."""
    return engine.first_time(key)


def event_team(body: dict[str, Any]) -> str:
    event = body.get("event") or {}
    return str(body.get("team_id") or event.get("team") or event.get("user_team") or "")
