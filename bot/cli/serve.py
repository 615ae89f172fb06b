"""`gptstore serve [--slack] [--discord] [--port 3000]`: builds the Engine, runs the adapters.

With neither flag, every adapter whose token is configured runs. The process also runs the
local job backend (jobs left queued before a restart start again) and the retrain scheduler. The adapters' entry points
(bot.slack.app.serve, bot.discord.app.serve) are imported only when used.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from bot.cli.logs import setup_file_log
from engine.app import Engine
from engine.errors import InvalidInput
from engine.monitoring import OpsServer, ops_checks
from engine.retraining.scheduler import RetrainScheduler
from engine.settings import Settings


def plan(settings: Settings, *, slack: bool, discord: bool) -> list[str]:
    """Which adapters to run; InvalidInput naming the missing variable."""
    slack_oauth = bool(settings.slack_client_id and settings.slack_client_secret)
    if not slack and not discord:
        slack = bool(settings.slack_bot_token) or slack_oauth
        discord = bool(settings.discord_token)
        if not slack and not discord:
            raise InvalidInput("No chat platform is configured: set SLACK_BOT_TOKEN (and "
                               "SLACK_SIGNING_SECRET or SLACK_APP_TOKEN) or DISCORD_TOKEN, or "
                               "use `gptstore console`.")
    if slack and not (settings.slack_bot_token or slack_oauth):
        raise InvalidInput("--slack needs SLACK_BOT_TOKEN (xoxb-...) in the environment, or "
                           "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install through OAuth.")
    if slack and not (settings.slack_signing_secret or settings.slack_app_token):
        raise InvalidInput("--slack needs SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN "
                           "(Socket Mode) in the environment.")
    if discord and not settings.discord_token:
        raise InvalidInput("--discord needs DISCORD_TOKEN in the environment.")
    return [name for name, on in (("slack", slack), ("discord", discord)) if on]


def serve(*, slack: bool = False, discord: bool = False, port: int = 3000,
          settings: Settings | None = None, host: str = "0.0.0.0") -> int:
    settings = settings or Settings.from_env()
    adapters = plan(settings, slack=slack, discord=discord)
    engine = Engine.open(settings)
    setup_file_log(settings)
    log = logging.getLogger("gptstore.serve")
    engine.jobs.start()  # jobs queued before a restart run (local); the outbox relay (celery)
    ops = start_ops(engine)
    scheduler = RetrainScheduler(engine.retrainer, housekeeping=engine.housekeeping)
    scheduler.start()
    runners: dict[str, Callable[[], object]] = {}
    if "slack" in adapters:
        from bot.slack import app as slack_app
        runners["slack"] = lambda: slack_app.serve(engine, settings, port, host=host)
    if "discord" in adapters:
        from bot.discord import app as discord_app
        runners["discord"] = lambda: discord_app.serve(engine, settings)
    try:
        print(f"gptstore serve: {', '.join(adapters)} on the store in {settings.home}"
              + (f" (Slack HTTP on port {port})" if "slack" in adapters else ""), flush=True)
        if len(runners) == 1:
            next(iter(runners.values()))()
            return 0
        threads = [threading.Thread(target=_logged(fn, name, log), name=f"serve-{name}",
                                    daemon=True) for name, fn in runners.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=1.0)
        return 0
    finally:
        scheduler.stop()
        if ops is not None:
            ops.stop()
        engine.close()


def start_ops(engine: Engine) -> OpsServer | None:
    """The health check and Prometheus metrics on GPTSTORE_METRICS_PORT (off when unset)."""
    settings = engine.settings
    if not settings.metrics_port:
        return None
    return OpsServer(engine.metrics, ops_checks(settings, engine.db), port=settings.metrics_port,
                     host=settings.metrics_host).start()


def _logged(fn: Callable[[], object], name: str, log: logging.Logger) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("the %s adapter stopped", name)
    return run
