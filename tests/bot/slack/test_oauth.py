"""Many workspaces through Slack's OAuth install flow: the real Bolt app over HTTP, the fake
Slack Web API granting codes, installs kept in the store's database. Each workspace is
answered with its own token; uninstalling removes it; tenants stay apart inside one process."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.core.progress import JobWatcher
from bot.core.reply import Reply
from bot.slack.app import SlackHTTPServer, build_slack_app, workspace_sink
from bot.slack.manifest import SCOPES
from bot.slack.oauth import SignedStateStore, client_for_team, oauth_settings
from bot.slack.post import Poster, StatusSink
from bot.slack.testing import FakeSlack, SignedSender, Workspace
from engine.errors import InvalidInput
from engine.settings import Settings

SECRET = "oauth-signing-secret"
TIMEOUT = 240.0  # a deadline for waits, not a speed assertion
A = Workspace("TA", "xoxb-workspace-a-123", "UBOTA", name="Acme")
B = Workspace("TB", "xoxb-workspace-b-456", "UBOTB", name="Beta")


@dataclass
class OAuthRig:
    fake: FakeSlack
    server: SlackHTTPServer
    send: SignedSender
    executor: ThreadPoolExecutor

    def get(self, path: str, *, cookie: str = "") -> tuple[int, str, Any]:
        request = urllib.request.Request(self.server.base_url + path,
                                         headers={"Cookie": cookie} if cookie else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), error.headers

    def install(self, workspace: Workspace, code: str) -> int:
        """Click "Add to Slack", approve on Slack (the fake grants `code`), come back."""
        self.fake.grant(code, workspace)
        status, page, headers = self.get("/slack/install")
        assert status == 200, page
        link = urllib.parse.urlsplit(re.search(r'<a href="([^"]+)"', page).group(1).replace(
            "&amp;", "&"))
        query = urllib.parse.parse_qs(link.query)
        assert query["scope"] == [",".join(SCOPES)]  # what the manifest declares
        state = query["state"][0]
        cookie = headers["Set-Cookie"].split(";")[0]
        status, _, _ = self.get(f"/slack/oauth_redirect?code={code}&state={state}",
                                cookie=cookie)
        return status

    def event(self, workspace: Workspace, event: dict[str, Any], event_id: str) -> None:
        body = {"token": "unused", "team_id": workspace.team_id, "api_app_id": "A1",
                "type": "event_callback", "event_id": event_id, "event_time": 1, "event": event,
                "authorizations": [{"team_id": workspace.team_id,
                                    "user_id": workspace.bot_user_id, "is_bot": True}]}
        status, _ = self.send.post(json.dumps(body).encode(), "application/json")
        assert status == 200

    def drain(self) -> None:
        self.executor.shutdown(wait=True)


@pytest.fixture
def settings(home) -> Settings:
    return Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        default_base="tiny", max_new_tokens=12, slack_signing_secret=SECRET)


@pytest.fixture
def rig(engine, settings) -> OAuthRig:
    fake = FakeSlack(token="", admins=("UADMIN",)).start()
    executor = ThreadPoolExecutor(max_workers=8)
    oauth = oauth_settings(engine, client_id=fake.client_id, client_secret=fake.client_secret,
                           authorization_url=fake.url + "/oauth/v2/authorize")
    app = build_slack_app(engine, settings, WebClient(base_url=fake.api_url), oauth=oauth,
                          watcher=JobWatcher(engine, poll_s=0.05), executor=executor,
                          stream_interval_s=0.0)
    server = SlackHTTPServer(app, host="127.0.0.1", port=0)
    server.start()
    yield OAuthRig(fake, server, SignedSender(server.url, SECRET), executor)
    server.stop()
    executor.shutdown(wait=True)
    fake.close()


def mention(text: str, ts: str, *, channel: str = "C1", user: str = "U1",
            user_team: str = "") -> dict[str, Any]:
    event = {"type": "app_mention", "channel": channel, "user": user, "ts": ts, "event_ts": ts,
             "text": f"<@UBOTA> {text}"}
    if user_team:
        event["user_team"] = user_team
    return event


def streams_with(fake: FakeSlack, token: str) -> list[Any]:
    return [c for c in fake.calls("chat.startStream") if c.authorization == f"Bearer {token}"]


def test_installing_saves_the_workspace_token_and_never_logs_it(rig: OAuthRig, engine,
                                                               caplog) -> None:
    caplog.set_level(logging.DEBUG)
    assert rig.install(A, "code-a") == 200
    found = engine.installations.find("slack", team_id="TA")
    assert found is not None and found.bot_token == A.token and found.bot_user_id == "UBOTA"
    assert found.team_name == "Acme" and found.installer == "UINSTALL"
    assert A.token not in repr(found)
    assert A.token not in caplog.text and rig.fake.client_secret not in caplog.text


def test_a_forged_or_replayed_state_installs_nothing(rig: OAuthRig, engine) -> None:
    rig.fake.grant("code-x", A)
    status, page, headers = rig.get("/slack/install")
    state = re.search(r"state=([^&\"]+)", page).group(1)
    cookie = headers["Set-Cookie"].split(";")[0]
    forged = state[:-4] + ("0000" if not state.endswith("0000") else "1111")
    status, _, _ = rig.get(f"/slack/oauth_redirect?code=code-x&state={forged}", cookie=cookie)
    assert status >= 400 and engine.installations.find("slack", team_id="TA") is None
    store = SignedStateStore(engine, rig.fake.client_secret)
    once = store.issue()
    assert store.consume(once) and not store.consume(once)


def test_two_workspaces_are_each_answered_with_their_own_token(rig: OAuthRig, engine) -> None:
    assert rig.install(A, "code-a") == 200 and rig.install(B, "code-b") == 200
    rig.event(A, mention("hello from a", "1.000100"), "EvA")
    rig.event(B, mention("hello from b", "1.000200"), "EvB")
    rig.fake.wait_for("chat.stopStream", count=2, timeout=TIMEOUT)
    assert [c.params["thread_ts"] for c in streams_with(rig.fake, A.token)] == ["1.000100"]
    assert [c.params["thread_ts"] for c in streams_with(rig.fake, B.token)] == ["1.000200"]
    assert all(c.params["recipient_team_id"] in ("TA", "TB")
               for c in rig.fake.calls("chat.startStream"))


def test_a_deployment_in_one_workspace_does_not_answer_in_another(rig: OAuthRig) -> None:
    rig.install(A, "code-a")
    rig.install(B, "code-b")
    form = {"token": "unused", "team_id": "TA", "channel_id": "C1", "user_id": "UADMIN",
            "command": "/store", "text": "deploy tiny", "api_app_id": "A1", "response_url": ""}
    rig.send.post(urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded")
    rig.fake.wait_for("chat.postMessage", lambda p: "now answers" in p.get("text", ""))
    plain = {"type": "message", "channel": "C1", "user": "U1", "text": "anyone here?",
             "channel_type": "channel"}
    rig.event(B, {**plain, "ts": "2.000100", "event_ts": "2.000100"}, "EvB1")  # same id, B
    rig.event(A, {**plain, "ts": "2.000200", "event_ts": "2.000200"}, "EvA1")
    rig.fake.wait_for("chat.stopStream", timeout=TIMEOUT)
    rig.drain()
    assert [c.params["thread_ts"] for c in rig.fake.calls("chat.startStream")] == ["2.000200"]
    assert streams_with(rig.fake, A.token)


def test_a_slack_connect_guest_is_a_user_of_their_own_organisation(rig: OAuthRig) -> None:
    rig.install(A, "code-a")
    form = {"token": "unused", "team_id": "TA", "channel_id": "C1", "user_id": "UADMIN",
            "command": "/store", "text": "deploy tiny", "api_app_id": "A1", "response_url": ""}
    rig.send.post(urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded")
    rig.fake.wait_for("chat.postMessage", lambda p: "now answers" in p.get("text", ""))
    rig.event(A, mention("hi", "3.000100", user="U1"), "EvH")
    rig.event(A, mention("hi", "3.000200", user="UGUEST", user_team="TB"), "EvG")
    stops = rig.fake.wait_for("chat.stopStream", count=2, timeout=TIMEOUT)
    notes = {}
    for stop in stops:
        thread = rig.fake.message("C1", stop.params["ts"])["thread_ts"]
        notes[thread] = json.dumps(stop.params["blocks"])
    assert "this channel's model" in notes["3.000100"]
    assert "the store's default model" in notes["3.000200"]  # not the host's deployment
    rig.drain()
    # users.info was never asked about the guest: they are no admin of the host workspace.
    assert not [c for c in rig.fake.calls("users.info") if c.params["user"] == "UGUEST"]


@pytest.mark.parametrize("goodbye", [
    {"type": "app_uninstalled"},
    {"type": "tokens_revoked", "tokens": {"bot": ["UBOTB"]}},
])
def test_uninstalling_removes_that_workspace_only(rig: OAuthRig, engine,
                                                  goodbye: dict[str, Any]) -> None:
    rig.install(A, "code-a")
    rig.install(B, "code-b")
    rig.event(B, {**goodbye, "event_ts": "4.0"}, "EvBye")
    rig.fake.revoke(B.token)
    rig.event(B, mention("still there?", "4.000100"), "EvB2")
    rig.event(A, mention("still there?", "4.000200"), "EvA2")
    rig.fake.wait_for("chat.stopStream", timeout=TIMEOUT)
    rig.drain()
    assert engine.installations.find("slack", team_id="TB") is None
    assert engine.installations.find("slack", team_id="TA") is not None
    assert [c.params["thread_ts"] for c in rig.fake.calls("chat.startStream")] == ["4.000200"]
    assert not [c for c in rig.fake.calls() if c.authorization == f"Bearer {B.token}"
                and c.method.startswith("chat.")]


def test_job_notifications_go_out_with_the_workspace_s_own_token(rig: OAuthRig, engine) -> None:
    rig.install(B, "code-b")
    place = StatusSink(Poster(WebClient(base_url=rig.fake.api_url)), "C1", "5.000100",
                       initial=Reply(text="", title="Job 1"), team="TB").place()
    clients = client_for_team(engine, rig.fake.api_url)
    sink = workspace_sink(clients, json.loads(json.dumps(place)), logging.getLogger("test"))
    sink.poster.post(Reply(text="Job 1 finished."), channel="C1", thread_ts="5.000100")
    posted = rig.fake.wait_for("chat.postMessage")[0]
    assert posted.authorization == f"Bearer {B.token}"
    with pytest.raises(InvalidInput):  # a workspace that is not installed
        workspace_sink(clients, {**place, "team": "TA"}, logging.getLogger("test"))
