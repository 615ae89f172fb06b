"""The Slack adapter's composition: the Bolt app, its HTTP endpoint and `gptstore serve --slack`.

    client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    app = build_slack_app(engine, settings, client)

Every listener acknowledges at once (in the request's own thread, process_before_response)
and does the work in a lazy listener on `executor`, so Slack's 3 seconds never depend on
the store. HTTP mode serves POST /slack/events (signatures verified: a bad one is 401);
Socket Mode needs SLACK_APP_TOKEN.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from slack_bolt import Ack, App, BoltContext
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from bot.core.delivery import Deliveries
from bot.core.dispatch import Dispatcher
from bot.core.progress import Follower, JobWatcher
from bot.slack.context import AdminCache
from bot.slack.handlers import SlackHandlers
from bot.slack.modal import CALLBACK_ID, form_errors
from bot.slack.post import Poster, status_sink
from bot.slack.render import ACTION_PREFIX
from engine.errors import InvalidInput
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.app import Engine

EVENTS_PATH = "/slack/events"
# Threads for the work after the ack. Few on purpose: under a burst, every runnable thread
# competes for the GIL with the request threads that must ack within 3 s.
LAZY_WORKERS = 4
CHAT_WORKERS = 32  # chat turns in flight at once (they wait on the model's batch)


def build_slack_app(engine: "Engine", settings: Settings, client: WebClient, *,
                    dispatcher: Dispatcher | None = None, watcher: Follower | None = None,
                    executor: Executor | None = None, stream_interval_s: float = 1.0,
                    clock: Callable[[], float] = time.monotonic,
                    token_verification: bool = True,
                    log: logging.Logger | None = None) -> App:
    """The Bolt app for one workspace's bot token (the client's), wired to `engine`."""
    log = log or logging.getLogger("gptstore.slack")
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
        token_verification_enabled=token_verification,
        process_before_response=True,  # ack runs in the request thread; lazies in `executor`
        listener_executor=executor,
    )
    handlers = SlackHandlers(
        engine=engine, settings=settings, client=client,
        dispatcher=dispatcher or Dispatcher(engine, log=log),
        watcher=watcher or JobWatcher(engine), admins=AdminCache(client, log=log),
        poster=Poster(client, log), log=log, clock=clock, stream_interval_s=stream_interval_s,
        edits=ThreadPoolExecutor(max_workers=4, thread_name_prefix="slack-edit"),
    )

    def on_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        if chat_pool is executor:  # already on the shared pool
            handlers.on_message(body, event, context.bot_user_id or "")
        else:
            chat_pool.submit(_logged_call, log, handlers.on_message, body, event,
                             context.bot_user_id or "")

    app.command("/store")(ack=ack_now, lazy=[handlers.run_command])
    app.view(CALLBACK_ID)(ack=ack_tune_form, lazy=[handlers.run_view])
    app.action(re.compile("^" + re.escape(ACTION_PREFIX)))(ack=ack_now, lazy=[handlers.run_action])
    app.event("app_mention")(ack=ack_now, lazy=[on_message])
    app.event("message")(ack=ack_now, lazy=[on_message])
    app.event("reaction_added")(ack=ack_now, lazy=[handlers.on_reaction])
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
    """POST /slack/events -> app.dispatch, one thread per request (stdlib only)."""

    daemon_threads = True
    request_queue_size = 256  # Slack sends bursts; the stdlib default backlog is 5

    def __init__(self, app: App, *, host: str = "0.0.0.0", port: int = 3000,
                 path: str = EVENTS_PATH) -> None:
        self.app = app
        self.path = path
        super().__init__((host, port), _BoltHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}{self.path}"

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

    def do_GET(self) -> None:
        if urlsplit(self.path).path in ("/", "/healthz"):
            self._reply(200, b"ok", {"Content-Type": "text/plain"})
        else:
            self._reply(404, b"not found", {"Content-Type": "text/plain"})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        if parts.path != self.server.path:
            self._reply(404, b"not found", {"Content-Type": "text/plain"})
            return
        headers = {name.lower(): self.headers.get_all(name) or [] for name in self.headers.keys()}
        response = self.server.app.dispatch(BoltRequest(body=raw, query=parts.query,
                                                        headers=headers))
        self._reply(response.status, (response.body or "").encode("utf-8"), response.headers)


def slack_announcer(engine: "Engine", client: WebClient, *, watcher: Follower | None = None,
                    poll_s: float = 10.0, log: logging.Logger | None = None):
    """Announces scheduled retrains in the Slack channel (and thread) where their schedule
    was set, with one status message that is edited while the job runs."""
    from bot.core.announcer import JobAnnouncer
    from bot.core.reply import Reply
    from bot.slack.post import Poster, StatusSink

    log = log or logging.getLogger("gptstore.slack")
    poster = Poster(client, log)

    def start_sink(job):
        channel, thread = job.origin.channel, job.origin.thread
        if not channel:
            return None
        opening = Reply(title=f"Job {job.id}: scheduled retrain of {job.model_name}",
                        text=f"Retraining {job.model_name} on its curated conversations "
                             f"({job.params.get('new_pairs', '?')} new pairs). Progress follows.")
        posted = poster.post(opening, channel=channel, thread_ts=thread)
        return StatusSink(poster, channel, posted[0], thread_ts=thread, initial=opening) \
            if posted else None

    return JobAnnouncer(engine, "slack", start_sink, watcher=watcher, poll_s=poll_s, log=log)


def serve(engine: "Engine", settings: Settings, port: int = 3000, *,
          stop: threading.Event | None = None, host: str = "0.0.0.0") -> None:
    """`gptstore serve --slack`: HTTP mode with SLACK_SIGNING_SECRET, Socket Mode with
    SLACK_APP_TOKEN (both when both are set); blocks until `stop` is set or Ctrl-C."""
    if not settings.slack_bot_token:
        raise InvalidInput("SLACK_BOT_TOKEN is not set; copy the bot token (xoxb-...) from the "
                           "app's OAuth & Permissions page.")
    if not (settings.slack_signing_secret or settings.slack_app_token):
        raise InvalidInput("Set SLACK_SIGNING_SECRET (HTTP mode, POST /slack/events) or "
                           "SLACK_APP_TOKEN (Socket Mode, xapp-...) to serve Slack.")
    api_url = settings.slack_api_url.rstrip("/") + "/"
    client = WebClient(token=settings.slack_bot_token, base_url=api_url)
    log = logging.getLogger("gptstore.slack")
    # Job progress and results are delivered from the database by whichever serve process
    # is alive (bot/core/delivery.py), so a restart mid-job loses no notification.
    poster = Poster(client, log)
    deliveries = Deliveries(engine, "slack", lambda place: status_sink(poster, place),
                            log=log).start()
    app = build_slack_app(engine, settings, client, watcher=deliveries)
    stop = stop or threading.Event()
    announcer = slack_announcer(engine, client, watcher=deliveries, log=log)
    announcer.start()
    closers: list[Callable[[], None]] = [announcer.stop, deliveries.stop]
    if settings.slack_signing_secret:
        server = SlackHTTPServer(app, host=host, port=port)
        server.start()
        closers.append(server.stop)
        log.info("Slack HTTP mode: POST %s", server.url)
    if settings.slack_app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(app, settings.slack_app_token,
                                    web_client=WebClient(base_url=api_url))
        handler.connect()
        closers.append(handler.close)
        log.info("Slack Socket Mode connected")
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for close in closers:
            close()
