"""The Slack app's manifest: every scope, event and feature the adapter uses, written once.

`docs/slack-manifest.json` is `manifest()` as committed (a test keeps the two equal and
checks that every event the Bolt app listens to is subscribed here); OAuth asks for SCOPES.
"""

from __future__ import annotations

from typing import Any

SCOPES = (
    "app_mentions:read",   # mentions in channels
    "assistant:write",     # the agent surface: thinking status, thread titles, suggested prompts
    "channels:history",    # messages (and thread context) in public channels it was invited to
    "chat:write",          # answers, native streaming, job status messages
    "commands",            # /store
    "files:read",          # the Q&A files users drop in
    "files:write",         # loss plots
    "groups:history",      # private channels
    "im:history",          # DMs and the Messages tab
    "mpim:history",        # group DMs
    "reactions:read",      # 👍/👎 reactions as feedback
    "users:read",          # who is a workspace admin
)
BOT_EVENTS = (
    "app_mention", "message.channels", "message.groups", "message.im", "message.mpim",
    "reaction_added", "assistant_thread_started", "assistant_thread_context_changed",
    "app_uninstalled", "tokens_revoked",
)
EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"


def manifest(host: str = "YOUR-HOST", *, socket_mode: bool = False) -> dict[str, Any]:
    """The manifest to paste at api.slack.com/apps (HTTP mode at https://HOST, or Socket Mode)."""
    url = f"https://{host}{EVENTS_PATH}"
    events: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
    interactivity: dict[str, Any] = {"is_enabled": True}
    command: dict[str, Any] = {
        "command": "/store", "description": "Find, fine-tune, deploy and chat with models",
        "usage_hint": "search support | tune NAME | deploy MODEL | help", "should_escape": False}
    if not socket_mode:
        events["request_url"] = url
        interactivity["request_url"] = url
        command["url"] = url
    return {
        "display_information": {
            "name": "GPT Store",
            "description": "Find, fine-tune, deploy and chat with language models."},
        "features": {
            "app_home": {"messages_tab_enabled": True, "messages_tab_read_only_enabled": False},
            "bot_user": {"display_name": "gptstore", "always_online": True},
            "agent_view": {"agent_description": "Ask the store's models; they answer from "
                                                "your team's files and say where from."},
            "slash_commands": [command],
        },
        "oauth_config": {"redirect_urls": [f"https://{host}{REDIRECT_PATH}"],
                         "scopes": {"bot": list(SCOPES)}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }
