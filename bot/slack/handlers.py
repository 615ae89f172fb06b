"""The slow half of each Slack listener: payload -> Context -> Dispatcher -> Reply -> Slack.

Bolt runs these as lazy listeners after the request was acknowledged, so nothing here
races Slack's 3 seconds. Each method reads one kind of payload, builds the Caller and
Context, makes one Dispatcher call and hands the Reply to a Poster on the request's own
client (its workspace's token, under OAuth); errors a user can fix come back ephemeral,
anything else is logged under a reference id the user is shown.
"""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.dispatch import Context, Dispatcher, error_reply
from bot.core.parse import parse
from bot.core.progress import Follower
from bot.core.reply import Reply
from bot.core.text import footer_lines, unexpected_reply
from bot.slack.context import (
    AdminCache,
    event_team,
    first_time,
    make_caller,
    mentions,
    strip_mentions,
    thread_history,
)
from bot.slack.files import FileRules, attachment
from bot.slack.modal import read_form, tune_view
from bot.slack.post import NOT_POSTABLE, Poster, StatusSink
from bot.slack.render import read_feedback
from bot.slack.stream import NativeAnswer, set_thinking
from engine.errors import is_user_error
from engine.identity import Caller
from engine.settings import Settings
from engine.views import Origin

if TYPE_CHECKING:
    from engine.app import Engine

REACTIONS = {"+1": "up", "thumbsup": "up", "-1": "down", "thumbsdown": "down"}
MESSAGE_SUBTYPES = (None, "", "file_share", "thread_broadcast")


@dataclass
class SlackHandlers:
    engine: "Engine"
    settings: Settings
    dispatcher: Dispatcher
    watcher: Follower
    admins: AdminCache
    edits: Executor  # streamed-answer edits, off the model's thread
    files: FileRules
    stream_interval_s: float = 1.0
    native_streaming: bool = True  # False: always stream by edits (chat.update)
    clock: Callable[[], float] = time.monotonic
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("gptstore.slack"))

    def poster(self, client: WebClient) -> Poster:
        return Poster(client, self.log)

    # -- /store ---------------------------------------------------------------------------
    def run_command(self, body: dict[str, Any], respond: Callable[..., Any],
                    client: WebClient) -> None:
        text, channel, user = body.get("text") or "", body["channel_id"], body["user_id"]
        poster = self.poster(client)

        def work() -> None:
            if text.strip().split(None, 1)[:1] == ["tune"]:
                return self._open_tune_modal(client, body, text)
            caller = make_caller(self.admins, team=body["team_id"], user=user, channel=channel,
                                 client=client, user_team=body.get("user_team_id") or "")
            reply = self.dispatcher.handle_text(text, Context(caller, origin=_origin(channel)))
            self._deliver(poster, reply, channel=channel, user=user, respond=respond,
                          team=body["team_id"])

        self._guard(poster, work, channel=channel, user=user, respond=respond)

    def _open_tune_modal(self, client: WebClient, body: dict[str, Any], text: str) -> None:
        command = parse(text)
        client.views_open(trigger_id=body["trigger_id"], view=tune_view(
            channel=body["channel_id"], name=command.args[0] if command.args else "",
            options=dict(command.options), default_base=self.settings.default_base))

    # -- the tune modal -------------------------------------------------------------------
    def run_view(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        form = read_form(view)
        poster = self.poster(client)
        user = body["user"]["id"]
        team = (body.get("team") or {}).get("id") or body["user"].get("team_id", "")
        channel = form.channel or user  # a channel id, else the app's DM with the user

        def work() -> None:
            if not first_time(self.engine, f"slack:{team}:view:{view['id']}"):
                return
            files = tuple(attachment(client, f, max_bytes=self.settings.max_upload_bytes,
                                     rules=self.files) for f in form.files[:1])
            caller = make_caller(self.admins, team=team, user=user, channel=channel,
                                 thread=form.thread_ts, client=client)
            ctx = Context(caller, attachments=files, origin=_origin(
                channel, form.thread_ts, key=f"slack:{team}:view:{view['id']}"))
            reply = self.dispatcher.handle_text(form.text, ctx)
            self._deliver(poster, reply, channel=channel, user=user, thread_ts=form.thread_ts,
                          team=team)

        self._guard(poster, work, channel=channel, user=user, thread_ts=form.thread_ts)

    # -- buttons --------------------------------------------------------------------------
    def run_action(self, body: dict[str, Any], client: WebClient) -> None:
        poster = self.poster(client)
        value = body["actions"][0].get("value") or ""
        user = body["user"]["id"]
        team = (body.get("team") or {}).get("id") or body["user"].get("team_id", "")
        channel = (body.get("channel") or {}).get("id") or \
            (body.get("container") or {}).get("channel_id", "")
        message = body.get("message") or {}
        thread = message.get("thread_ts") or message.get("ts") or ""

        def work() -> None:
            caller = make_caller(self.admins, team=team, user=user, channel=channel,
                                 client=client, user_team=body["user"].get("team_id", ""))
            reply = self.dispatcher.handle_text(value, Context(caller, origin=_origin(
                channel, thread)))
            self._deliver(poster, reply, channel=channel, user=user, thread_ts=thread, team=team)

        self._guard(poster, work, channel=channel, user=user, thread_ts=thread)

    def run_feedback(self, body: dict[str, Any], client: WebClient) -> None:
        """👍/👎 feedback_buttons under an answer: the same vote a reaction records."""
        action = body["actions"][0]
        user = body["user"]["id"]
        team = (body.get("team") or {}).get("id") or body["user"].get("team_id", "")
        channel = (body.get("channel") or {}).get("id") or \
            (body.get("container") or {}).get("channel_id", "")
        message = body.get("message") or {}
        kind, answer_ts = read_feedback(action.get("value") or "",
                                        message.get("ts") or
                                        (body.get("container") or {}).get("message_ts", ""))
        if kind not in ("up", "down"):
            return
        self._vote(client, team=team, user=user, channel=channel, answer_ts=answer_ts, kind=kind,
                   thread_ts=message.get("thread_ts") or "",
                   user_team=body["user"].get("team_id", ""))

    # -- messages: mentions, DMs, channels with a deployment ------------------------------
    def on_message(self, body: dict[str, Any], event: dict[str, Any], bot_user_id: str,
                   client: WebClient, *, on_first: Callable[[str], None] | None = None) -> None:
        """A message or mention; `on_first(text)` runs once for a message that is answered
        (the agent surface titles its thread with it)."""
        user = event.get("user") or ""
        if (event.get("bot_id") or event.get("subtype") not in MESSAGE_SUBTYPES
                or not user or user == bot_user_id):
            return
        team, channel, ts = event_team(body), event["channel"], event["ts"]
        thread = event.get("thread_ts") or ts
        text = event.get("text") or ""
        is_dm = event.get("channel_type") == "im"
        mentioned = event.get("type") == "app_mention" or mentions(text, bot_user_id)
        if not (is_dm or mentioned) and not self._deployed_here(team, user, channel):
            return
        # A mention arrives as app_mention AND message, and Slack retries: act once per message.
        key = f"slack:{team}:{channel}:{ts}"
        if not first_time(self.engine, key):
            return
        clean = strip_mentions(text, bot_user_id)
        if on_first is not None:
            on_first(clean)
        files = event.get("files") or []
        wants_file = clean.split(None, 1)[:1] in (["tune"], ["docs"])  # commands that take one
        poster = self.poster(client)
        user_team = event.get("user_team") or ""
        if files and (wants_file or is_dm):
            command = clean if wants_file else f"tune {_model_name(files[0].get('name', ''))}"
            self._guard(poster, lambda: self._tune_from_file(
                poster, team, user, channel, ts, files[0], command, key, user_team),
                channel=channel, user=user, thread_ts=ts)
        else:
            self._guard(poster, lambda: self._chat(
                poster, team, user, channel, thread, ts, clean,
                in_thread=bool(event.get("thread_ts")), bot_user_id=bot_user_id,
                user_team=user_team),
                channel=channel, user=user, thread_ts=thread)

    def _deployed_here(self, team: str, user: str, channel: str) -> bool:
        caller = Caller.for_slack(team, user, channel=channel)
        return self.engine.catalog.deployed(caller) is not None

    def _tune_from_file(self, poster: Poster, team: str, user: str, channel: str, ts: str,
                        file: dict[str, Any], command: str, key: str, user_team: str) -> None:
        upload = attachment(poster.client, file, max_bytes=self.settings.max_upload_bytes,
                            rules=self.files)
        caller = make_caller(self.admins, team=team, user=user, channel=channel, thread=ts,
                             client=poster.client, user_team=user_team)
        ctx = Context(caller, attachments=(upload,), origin=_origin(channel, ts, key=key))
        reply = self.dispatcher.handle_text(command, ctx)
        self._deliver(poster, reply, channel=channel, user=user, thread_ts=ts, team=team)

    def _chat(self, poster: Poster, team: str, user: str, channel: str, thread: str, ts: str,
              text: str, *, in_thread: bool, bot_user_id: str, user_team: str = "") -> None:
        client = poster.client
        set_thinking(poster, channel=channel, thread_ts=thread)
        caller = make_caller(self.admins, team=team, user=user, channel=channel, thread=thread,
                             client=client, user_team=user_team)
        history: list[dict[str, str]] | None = []
        if in_thread:
            history = thread_history(client, channel=channel, thread_ts=thread,
                                     current_ts=ts, bot_user_id=bot_user_id, log=self.log)
            if history is None:
                history = self.engine.chat.history_for(caller)
        ctx = Context(caller, reply_ref=thread if in_thread else "",
                      origin=_origin(channel, thread, message=ts))
        stream = NativeAnswer(poster, self.edits, channel=channel, thread_ts=thread, user=user,
                              team=user_team or team, min_interval_s=self.stream_interval_s,
                              clock=self.clock, log=self.log, native=self.native_streaming)
        reply = self.dispatcher.chat_turn(ctx, text, history=history, on_token=stream.on_token)
        if reply.is_error:
            stream.fail(reply, user=user)
            return
        posted = stream.finish(reply.text, footer_lines(reply),
                               answer_ref=str(reply.message_id or ""))
        if reply.message_id is not None and posted:
            self.dispatcher.answer_posted(reply.message_id, posted)

    # -- reactions ------------------------------------------------------------------------
    def on_reaction(self, body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        kind = REACTIONS.get((event.get("reaction") or "").split("::")[0])
        item = event.get("item") or {}
        if kind is None or item.get("type") != "message":
            return
        team, user, channel = event_team(body), event.get("user", ""), item.get("channel", "")
        if not first_time(self.engine, f"slack:{team}:event:{body.get('event_id')}"):
            return
        self._vote(client, team=team, user=user, channel=channel, answer_ts=item["ts"],
                   kind=kind, user_team=event.get("user_team") or "")

    def _vote(self, client: WebClient, *, team: str, user: str, channel: str, answer_ts: str,
              kind: str, thread_ts: str = "", user_team: str = "") -> None:
        """One vote on an answer, from a reaction or a feedback button; thanks come ephemeral."""
        poster = self.poster(client)

        def work() -> None:
            caller = make_caller(self.admins, team=team, user=user, channel=channel,
                                 client=client, user_team=user_team)
            reply = self.dispatcher.feedback(Context(caller, reply_ref=answer_ts), answer_ts,
                                             kind)
            if reply is not None:
                poster.ephemeral(reply, channel=channel, user=user, thread_ts=thread_ts)

        self._guard(poster, work, channel=channel, user=user)

    # -- shared ---------------------------------------------------------------------------
    def _deliver(self, poster: Poster, reply: Reply, *, channel: str, user: str,
                 thread_ts: str = "", respond: Callable[..., Any] | None = None,
                 team: str = "") -> None:
        try:
            posted = poster.post(reply, channel=channel, user=user, thread_ts=thread_ts,
                                 respond=respond)
        except SlackApiError as exc:
            if exc.response.get("error") not in NOT_POSTABLE or reply.ephemeral:
                raise
            # The bot is not in that channel (a modal opened there): use its DM with the user.
            channel, thread_ts = user, ""
            posted = poster.post(reply, channel=channel, user=user)
        if reply.job_id is not None and not reply.is_error and posted:
            self.watcher.follow(reply.job_id, StatusSink(poster, channel, posted[0],
                                                         thread_ts=thread_ts, initial=reply,
                                                         team=team))

    def _guard(self, poster: Poster, work: Callable[[], Any], *, channel: str, user: str,
               thread_ts: str = "", respond: Callable[..., Any] | None = None) -> None:
        """Run `work`; user errors go back ephemeral, anything else gets a reference id."""
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - this is the adapter's last line
            if is_user_error(exc):
                reply = error_reply(exc)
            else:
                reply = unexpected_reply(self.log, "a Slack request", exc)
            try:
                poster.ephemeral(replace(reply, ephemeral=True), channel=channel, user=user,
                                 thread_ts=thread_ts, respond=respond)
            except Exception:  # noqa: BLE001 - Slack itself is failing; the log has it
                self.log.exception("could not tell %s about a failure", user)


def _origin(channel: str, thread: str = "", *, key: str = "", message: str = "") -> Origin:
    return Origin(platform="slack", channel=channel, thread=thread, message=message,
                  idempotency_key=key)


def _model_name(filename: str) -> str:
    """A model name from a dropped file's name: 'ACME FAQ.csv' -> 'acme-faq'."""
    stem = PurePath(filename).stem.lower()
    return re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:40] or "my-model"
