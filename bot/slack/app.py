"""The Slack adapter's composition: the Bolt app, its HTTP endpoint and `gptstore serve --slack`.

    client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    app = build_slack_app(engine, settings, client)

Every listener acknowledges at once (in the request's own thread, process_before_response)
and does the work in a lazy listener on `executor`, so Slack's 3 seconds never depend on
the store. HTTP mode serves POST /slack/events (signatures verified: a bad one is 401; the
body is capped and a slow client timed out before that); Socket Mode needs SLACK_APP_TOKEN.
One bot token (SLACK_BOT_TOKEN) serves one workspace; with SLACK_CLIENT_ID and
SLACK_CLIENT_SECRET the app installs through OAuth into any number of workspaces
(bot/slack/oauth.py, GET /slack/install) and answers each with its own token.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from slack_bolt import Ack, App, BoltContext
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.core.delivery import Deliveries
from bot.core.dispatch import Dispatcher
from bot.core.progress import Follower, JobWatcher
from bot.slack.assistant import agent_surface
from bot.slack.context import AdminCache
from bot.slack.files import FileRules
from bot.slack.handlers import SlackHandlers
from bot.slack.logs import keep_tokens_out_of_logs
from bot.slack.manifest import EVENTS_PATH
from bot.slack.modal import CALLBACK_ID, form_errors
from bot.slack.oauth import client_for_team, oauth_settings
from bot.slack.post import Poster, status_sink
from bot.slack.render import ACTION_PREFIX, FEEDBACK_ACTION
from engine.errors import InvalidInput
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.app import Engine

MAX_BODY_BYTES = 1024 * 1024  # Slack's largest payloads (a modal's state) are far below this
READ_TIMEOUT_S = 10.0  # a client that has not sent its whole request by then is dropped
# Threads for the work after the ack. Few on purpose: under a burst, every runnable thread
# competes for the GIL with the request threads that must ack within 3 s.
LAZY_WORKERS = 4
CHAT_WORKERS = 32  # chat turns in flight at once (they wait on the model's batch)


def build_slack_app(engine: "Engine", settings: Settings, client: WebClient, *,
                    dispatcher: Dispatcher | None = None, watcher: Follower | None = None,
                    executor: Executor | None = None, stream_interval_s: float = 1.0,
                    clock: Callable[[], float] = time.monotonic,
                    token_verification: bool = True, native_streaming: bool = True,
                    oauth: OAuthSettings | None = None,
                    log: logging.Logger | None = None) -> App:
    """The Bolt app wired to `engine`: for the client's bot token (one workspace), or with
    `oauth` for every workspace that installed it (the client then carries no token; each
    request gets one with its workspace's)."""
    log = log or logging.getLogger("gptstore.slack")
    keep_tokens_out_of_logs()  # slack-sdk logs response bodies (OAuth's has the token)
    # Chat turns spend their time waiting for the model, not holding the GIL, so they get a
    # larger pool of their own and the command pool stays small. An executor passed in (the
    # tests') serves both, so draining it waits for everything.
    chat_pool = executor or ThreadPoolExecutor(max_workers=CHAT_WORKERS,
                                               thread_name_prefix="slack-chat")
    executor = executor or ThreadPoolExecutor(max_workers=LAZY_WORKERS,
                                              thread_name_prefix="slack-work")
    app = App(
        client=client, logger=log, name="gptstore",
        signing_secret=settings.slack_signing_secret or None,
        request_verification_enabled=bool(settings.slack_signing_secret),
        token_verification_enabled=token_verification and oauth is None,
        process_before_response=True,  # ack runs in the request thread; lazies in `executor`
        listener_executor=executor, oauth_settings=oauth,
    )
    handlers = SlackHandlers(
        engine=engine, settings=settings,
        dispatcher=dispatcher or Dispatcher(engine, log=log),
        watcher=watcher or JobWatcher(engine), admins=AdminCache(client, log=log),
        log=log, clock=clock, stream_interval_s=stream_interval_s,
        native_streaming=native_streaming, files=FileRules.for_api(client.base_url),
        edits=ThreadPoolExecutor(max_workers=4, thread_name_prefix="slack-edit"),
    )

    def chat(body: dict[str, Any], event: dict[str, Any], bot_user_id: str, client: WebClient,
             on_first: Callable[[str], None] | None = None) -> None:
        if chat_pool is executor:  # already on the shared pool
            handlers.on_message(body, event, bot_user_id, client, on_first=on_first)
        else:
            chat_pool.submit(_logged_call, log, partial(handlers.on_message, on_first=on_first),
                             body, event, bot_user_id, client)

    def on_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext,
                   client: WebClient) -> None:
        chat(body, event, context.bot_user_id or "", client)

    app.use(agent_surface(engine, chat, log=log))  # DMs in the Messages tab
    app.command("/store")(ack=ack_now, lazy=[handlers.run_command])
    app.view(CALLBACK_ID)(ack=ack_tune_form, lazy=[handlers.run_view])
    app.action(re.compile("^" + re.escape(ACTION_PREFIX)))(ack=ack_now, lazy=[handlers.run_action])
    app.action(FEEDBACK_ACTION)(ack=ack_now, lazy=[handlers.run_feedback])
    app.event("app_mention")(ack=ack_now, lazy=[on_message])
    app.event("message")(ack=ack_now, lazy=[on_message])
    app.event("reaction_added")(ack=ack_now, lazy=[handlers.on_reaction])
    if oauth is not None:
        app.enable_token_revocation_listeners()  # app_uninstalled, tokens_revoked
    for quiet in ("reaction_removed", "file_shared", "file_created", "file_public"):
        app.event(quiet)(ack_now)
    return app


def _logged_call(log: logging.Logger, fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # a pool's future would swallow it otherwise
        log.exception("Slack message handler failed")


def ack_now(ack: Ack) -> None:
    ack()


def ack_tune_form(ack: Ack, view: dict[str, Any]) -> None:
    """Problems Slack can show next to the fields; everything else happens after the ack."""
    errors = form_errors(view)
    if errors:
        ack(response_action="errors", errors=errors)
    else:
        ack()


class SlackHTTPServer(ThreadingHTTPServer):
    """POST /slack/events -> app.dispatch, one thread per request (stdlib only); with OAuth
    also GET /slack/install and GET /slack/oauth_redirect.

    A body over `max_body` bytes is refused (413) unread, and a client that has not sent its
    whole request within `read_timeout_s` is dropped (408), both before any signature check,
    so neither a huge nor a slow request can hold a thread for long."""

    daemon_threads = True
    request_queue_size = 256  # Slack sends bursts; the stdlib default backlog is 5

    def __init__(self, app: App, *, host: str = "0.0.0.0", port: int = 3000,
                 path: str = EVENTS_PATH, max_body: int = MAX_BODY_BYTES,
                 read_timeout_s: float = READ_TIMEOUT_S) -> None:
        self.app = app
        self.path = path
        self.max_body = max_body
        self.read_timeout_s = read_timeout_s
        super().__init__((host, port), _BoltHandler)

    @property
    def url(self) -> str:
        return self.base_url + self.path

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True, name="slack-http")
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _BoltHandler(BaseHTTPRequestHandler):
    server: SlackHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.read_timeout_s  # socket timeout for every read
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        logging.getLogger("gptstore.slack.http").debug(format, *args)

    def _reply(self, status: int, body: bytes, headers: dict[str, Any] | None = None) -> None:
        self.send_response(status)
        for name, values in (headers or {}).items():
            if name.lower() == "content-length":
                continue
            for value in values if isinstance(values, (list, tuple)) else [values]:
                self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, text: str) -> None:
        self.close_connection = True
        self._reply(status, text.encode(), {"Content-Type": "text/plain", "Connection": "close"})

    def _headers(self) -> dict[str, list[str]]:
        return {name.lower(): self.headers.get_all(name) or [] for name in self.headers.keys()}

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        flow = self.server.app.oauth_flow
        if parts.path in ("/", "/healthz"):
            self._reply(200, b"ok", {"Content-Type": "text/plain"})
        elif flow is not None and parts.path in (flow.install_path, flow.redirect_uri_path):
            request = BoltRequest(body="", query=parts.query, headers=self._headers())
            response = flow.handle_installation(request) if parts.path == flow.install_path \
                else flow.handle_callback(request)
            self._reply(response.status, (response.body or "").encode("utf-8"), response.headers)
        else:
            self._reply(404, b"not found", {"Content-Type": "text/plain"})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != self.server.path:
            self._refuse(404, "not found")
            return
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.isdigit():
            self._refuse(411, "Content-Length required")
            return
        if int(raw_length) > self.server.max_body:
            self._refuse(413, "request body too large")
            return
        try:
            data = self.rfile.read(int(raw_length))
        except (TimeoutError, socket.timeout):
            self._refuse(408, "request timed out")
            return
        if len(data) < int(raw_length):  # the client hung up half-way
            self.close_connection = True
            return
        response = self.server.app.dispatch(BoltRequest(body=data.decode("utf-8", "replace"),
                                                        query=parts.query,
                                                        headers=self._headers()))
        self._reply(response.status, (response.body or "").encode("utf-8"), response.headers)


ClientFor = Callable[[str], "WebClient | None"]  # Slack team id -> a client with its token


def slack_announcer(engine: "Engine", client: "WebClient | ClientFor", *,
                    watcher: Follower | None = None, poll_s: float = 10.0,
                    log: logging.Logger | None = None):
    """Announces scheduled retrains in the Slack channel (and thread) where their schedule
    was set, with one status message that is edited while the job runs. `client` is one
    workspace's client, or a function giving each workspace's (OAuth)."""
    from bot.core.announcer import JobAnnouncer
    from bot.core.reply import Reply
    from bot.slack.post import StatusSink

    log = log or logging.getLogger("gptstore.slack")
    clients: ClientFor = client if callable(client) else (lambda team: client)

    def start_sink(job):
        channel, thread = job.origin.channel, job.origin.thread
        team = job.workspace.removeprefix("slack:")
        found = clients(team) if channel else None
        if found is None:
            return None
        poster = Poster(found, log)
        opening = Reply(title=f"Job {job.id}: scheduled retrain of {job.model_name}",
                        text=f"Retraining {job.model_name} on its curated conversations "
                             f"({job.params.get('new_pairs', '?')} new pairs). Progress follows.")
        posted = poster.post(opening, channel=channel, thread_ts=thread)
        return StatusSink(poster, channel, posted[0], thread_ts=thread, initial=opening,
                          team=team) if posted else None

    return JobAnnouncer(engine, "slack", start_sink, watcher=watcher, poll_s=poll_s, log=log)


def serve(engine: "Engine", settings: Settings, port: int = 3000, *,
          stop: threading.Event | None = None, host: str = "0.0.0.0",
          ready: Callable[[list[str]], None] | None = None) -> None:
    """`gptstore serve --slack`: HTTP mode with SLACK_SIGNING_SECRET, Socket Mode with
    SLACK_APP_TOKEN (both when both are set); one workspace with SLACK_BOT_TOKEN, any number
    through OAuth with SLACK_CLIENT_ID + SLACK_CLIENT_SECRET. Blocks until `stop` is set or
    Ctrl-C; `ready(urls)` is told where it listens once it does."""
    oauth_mode = bool(settings.slack_client_id or settings.slack_client_secret)
    if oauth_mode and not (settings.slack_client_id and settings.slack_client_secret):
        raise InvalidInput("Set both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (Basic Information "
                           "> App Credentials) to install the app through OAuth.")
    if oauth_mode and not settings.slack_signing_secret:
        raise InvalidInput("OAuth installs need HTTP mode for the redirect: set "
                           "SLACK_SIGNING_SECRET too.")
    if not oauth_mode and not settings.slack_bot_token:
        raise InvalidInput("SLACK_BOT_TOKEN is not set; copy the bot token (xoxb-...) from the "
                           "app's OAuth & Permissions page, or set SLACK_CLIENT_ID and "
                           "SLACK_CLIENT_SECRET to install into many workspaces.")
    if not (settings.slack_signing_secret or settings.slack_app_token):
        raise InvalidInput("Set SLACK_SIGNING_SECRET (HTTP mode, POST /slack/events) or "
                           "SLACK_APP_TOKEN (Socket Mode, xapp-...) to serve Slack.")
    api_url = settings.slack_api_url.rstrip("/") + "/"
    log = logging.getLogger("gptstore.slack")
    oauth = None
    if oauth_mode:
        assert settings.slack_client_id and settings.slack_client_secret
        client = WebClient(base_url=api_url)  # each request gets its workspace's token
        oauth = oauth_settings(engine, client_id=settings.slack_client_id,
                               client_secret=settings.slack_client_secret)
        clients: ClientFor = client_for_team(engine, api_url)
    else:
        client = WebClient(token=settings.slack_bot_token, base_url=api_url)
        clients = lambda team: client  # noqa: E731 - one workspace, one client
    # Job progress and results are delivered from the database by whichever serve process
    # is alive (bot/core/delivery.py), so a restart mid-job loses no notification.
    deliveries = Deliveries(engine, "slack", lambda place: workspace_sink(clients, place, log),
                            log=log).start()
    app = build_slack_app(engine, settings, client, watcher=deliveries, oauth=oauth)
    stop = stop or threading.Event()
    announcer = slack_announcer(engine, clients, watcher=deliveries, log=log)
    announcer.start()
    closers: list[Callable[[], None]] = [announcer.stop, deliveries.stop]
    urls: list[str] = []
    if settings.slack_signing_secret:
        server = SlackHTTPServer(app, host=host, port=port)
        server.start()
        closers.append(server.stop)
        urls.append(server.url)
        log.info("Slack HTTP mode: POST %s%s", server.url,
                 f", installs at {server.base_url}{oauth.install_path}" if oauth else "")
    if settings.slack_app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(app, settings.slack_app_token,
                                    web_client=WebClient(base_url=api_url))
        handler.connect()
        closers.append(handler.close)
        urls.append("socket-mode")
        log.info("Slack Socket Mode connected")
    if ready is not None:
        ready(urls)
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for close in closers:
            close()


def workspace_sink(clients: ClientFor, place: dict[str, Any], log: logging.Logger):
    """The status sink a durable watch describes, on its workspace's client; InvalidInput
    when the app is no longer installed there."""
    found = clients(str(place.get("team") or ""))
    if found is None:
        raise InvalidInput(f"The Slack app is no longer installed in {place.get('team')}.")
    return status_sink(Poster(found, log), place)
