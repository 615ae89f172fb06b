"""Platform tokens never show: not in repr(settings), not in any reply, not in any log line
(captured at DEBUG, library loggers included) nor in the log files under GPTSTORE_HOME/logs,
even when a bug's traceback is logged with its reference id."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from slack_sdk import WebClient

from bot.core.dispatch import Dispatcher
from bot.core.progress import JobWatcher
from bot.core.reply import Reply
from bot.slack.app import SlackHTTPServer, build_slack_app
from bot.slack.testing import FakeSlack, SignedSender
from engine.settings import Settings
from tests.helpers.tenants import A_ADMIN, A_X, context, open_engine, say, shown

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-1111-SECRETslackbot",
    "SLACK_SIGNING_SECRET": "SECRETsigning2222",
    "SLACK_APP_TOKEN": "xapp-1-SECRETapptoken3333",
    "DISCORD_TOKEN": "MTIzNDU2.SECRETdiscord.4444",
}


def secret_settings(home: Path) -> Settings:
    env = {"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu", **SECRETS}
    return Settings.from_env(env).with_(default_base="tiny")


def leaked(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text or "SECRET" in text]


class CrashingRunner:
    """A model runner with a bug whose message quotes the whole configuration."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def answer(self, target: Any, messages: list, **_: Any) -> Any:
        raise RuntimeError(f"runner crashed; configuration was {self.settings!r} "
                           f"({self.settings})")

    def close(self) -> None:
        pass


@pytest.fixture
def file_log(home: Path) -> Iterator[Path]:
    """The long-running commands' log file (bot.cli.logs.setup_file_log), for this test."""
    from bot.cli.logs import setup_file_log

    settings = secret_settings(home)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("gptstore")
    before, level = list(root.handlers), root.level
    setup_file_log(settings)
    yield settings.logs_dir
    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def log_files_text(logs_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(logs_dir.rglob("*"))
                     if p.is_file())


def test_settings_never_print_their_secrets() -> None:
    settings = secret_settings(Path("/tmp/gptstore-secrets-test"))
    for text in (repr(settings), str(settings), f"{settings}", repr(settings.with_(jobs="local"))):
        assert leaked(text) == [], text
    assert settings.slack_bot_token == SECRETS["SLACK_BOT_TOKEN"]  # still there to be used
    assert settings.discord_token == SECRETS["DISCORD_TOKEN"]


def test_user_errors_and_a_bug_show_and_log_no_token(home: Path, tiny_base_dir: Path,
                                                    file_log: Path, caplog) -> None:
    settings = secret_settings(home)
    engine = open_engine(settings, tiny_base_dir, runner=CrashingRunner(settings))
    dispatcher = Dispatcher(engine)
    replies: list[Reply] = []
    try:
        with caplog.at_level(logging.DEBUG):
            for text in ("info no-such-model", "frobnicate", "tune x epochs=many",
                         "deploy tiny", 'search "unclosed', "tune bad-bot"):
                replies.append(say(dispatcher, A_X, text, file=b"title,body\nhello,world\n"))
            assert say(dispatcher, A_ADMIN, "deploy tiny").kind == "success"
            bug = dispatcher.chat_turn(context(A_X), "hello")
            replies += [bug, say(dispatcher, A_X, "chat tiny hello")]
    finally:
        engine.close()
    assert all(r.kind == "error" for r in replies), [r.text for r in replies]
    assert "Something went wrong (ref " in bug.text
    ref = bug.text.split("(ref ")[1][:6]
    logged = caplog.text + "\n".join(
        logging.Formatter().format(r) for r in caplog.records)  # with tracebacks
    assert ref in logged and "runner crashed" in logged  # the bug is logged, with its ref
    files = log_files_text(file_log)
    assert ref in files and "runner crashed" in files
    for reply in replies:
        assert leaked(shown(reply)) == [], reply.text
        assert "runner crashed" not in reply.text  # a bug's details stay in the log
    assert leaked(logged) == [] and leaked(files) == []


def test_the_slack_app_uses_its_token_but_never_logs_or_posts_it(home: Path, tiny_base_dir: Path,
                                                                 file_log: Path, caplog) -> None:
    settings = secret_settings(home)
    engine = open_engine(settings, tiny_base_dir, runner=CrashingRunner(settings))
    token, secret = SECRETS["SLACK_BOT_TOKEN"], SECRETS["SLACK_SIGNING_SECRET"]
    fake = FakeSlack(token=token, admins=("UADMIN",)).start()
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-secrets")
    app = build_slack_app(engine, settings, WebClient(token=token, base_url=fake.api_url),
                          watcher=JobWatcher(engine, poll_s=0.05, min_interval_s=0.0),
                          executor=executor, stream_interval_s=0.0)
    server = SlackHTTPServer(app, host="127.0.0.1", port=0)
    server.start()
    send = SignedSender(server.url, secret)
    try:
        with caplog.at_level(logging.DEBUG):
            send.command("info no-such-model")
            send.command("frobnicate")
            send.command("deploy tiny", user="UADMIN", channel="C9")
            fake.wait_for("chat.postMessage", lambda p: p.get("channel") == "C9")
            send.event({"type": "message", "channel": "C9", "user": "U1", "text": "hello",
                        "ts": "5.000100", "event_ts": "5.000100", "channel_type": "channel",
                        "team": "T1"}, event_id="EvSecret")
            fake.wait_for("chat.postEphemeral", lambda p: "Something went wrong" in p.get("text", ""),
                          timeout=120)
            executor.shutdown(wait=True)
    finally:
        server.stop()
        executor.shutdown(wait=True)
        fake.close()
        engine.close()
    calls = fake.calls()
    assert calls and all(c.authorization == f"Bearer {token}" for c in calls)  # it was used
    posted = json.dumps([c.params for c in calls], ensure_ascii=False)
    assert "No model named" in posted and "There is no command" in posted
    assert leaked(posted) == []
    logged = caplog.text + "\n".join(logging.Formatter().format(r) for r in caplog.records)
    assert "runner crashed" in logged  # the bug was logged (with its traceback) ...
    assert leaked(logged) == [] and leaked(log_files_text(file_log)) == []  # ... without tokens
