"""The app manifest in the repository is the one the code describes, and declares what the
adapter uses: the agent surface, the events it listens to, the scopes OAuth asks for."""

from __future__ import annotations

import json
from pathlib import Path

from bot.slack.manifest import BOT_EVENTS, SCOPES, manifest

COMMITTED = Path(__file__).parents[3] / "docs" / "slack-manifest.json"


def test_the_committed_manifest_is_the_code_s() -> None:
    assert json.loads(COMMITTED.read_text()) == manifest()


def test_it_declares_every_event_scope_and_feature_the_adapter_uses() -> None:
    app = manifest("bot.example.com")
    events = app["settings"]["event_subscriptions"]
    assert events["request_url"] == "https://bot.example.com/slack/events"
    assert set(events["bot_events"]) == set(BOT_EVENTS) >= {
        "app_mention", "message.im", "reaction_added", "assistant_thread_started",
        "app_uninstalled", "tokens_revoked"}
    assert app["oauth_config"]["scopes"]["bot"] == list(SCOPES)
    assert {"assistant:write", "chat:write", "files:read", "reactions:read"} <= set(SCOPES)
    assert app["oauth_config"]["redirect_urls"] == ["https://bot.example.com/slack/oauth_redirect"]
    assert app["features"]["app_home"]["messages_tab_enabled"] is True
    assert "agent_view" in app["features"]


def test_socket_mode_needs_no_public_urls() -> None:
    app = manifest(socket_mode=True)
    assert app["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in app["settings"]["event_subscriptions"]
    assert "url" not in app["features"]["slash_commands"][0]
