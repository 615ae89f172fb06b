"""Slack for the adapter tests: the real Bolt app over HTTP on 127.0.0.1, a fake Web API.

The fake Slack Web API server itself ships with the code (bot/slack/testing.py), so the
benchmarks use the same one; this module wires it to a running app for a test.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient

from bot.core.progress import JobWatcher
from bot.slack.app import SlackHTTPServer, build_slack_app
from bot.slack.testing import Call, FakeSlack, SignedSender

__all__ = ["Call", "FakeSlack", "SignedSender", "SlackRig", "start_rig", "SECRET", "TOKEN",
           "blocks_text"]

SECRET = "test-signing-secret"
TOKEN = "xoxb-test"


@dataclass
class SlackRig:
    fake: FakeSlack
    server: SlackHTTPServer
    send: SignedSender
    executor: ThreadPoolExecutor

    def drain(self) -> None:
        """Wait until every lazy listener started so far has finished."""
        self.executor.shutdown(wait=True)

    def close(self) -> None:
        self.server.stop()
        self.executor.shutdown(wait=True)
        self.fake.close()


def start_rig(engine: Any, settings: Any, *, admins: tuple[str, ...] = ("UADMIN",)) -> SlackRig:
    fake = FakeSlack(token=TOKEN, admins=admins).start()
    client = WebClient(token=TOKEN, base_url=fake.api_url)
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="test-slack")
    watcher = JobWatcher(engine, poll_s=0.05, min_interval_s=0.0)
    app = build_slack_app(engine, settings.with_(slack_signing_secret=SECRET), client,
                          watcher=watcher, executor=executor, stream_interval_s=0.0)
    server = SlackHTTPServer(app, host="127.0.0.1", port=0)
    server.start()
    return SlackRig(fake=fake, server=server, send=SignedSender(server.url, SECRET),
                    executor=executor)


def blocks_text(params: dict[str, Any]) -> str:
    """Everything a user would read in a posted message: text plus every block's text."""
    return params.get("text", "") + "\n" + json.dumps(params.get("blocks") or [],
                                                      ensure_ascii=False)
