"""The agent surface in the app's Messages tab (Bolt's `Assistant` middleware).

When a user opens a thread with the app, it suggests up to four prompts: the questions
people in that workspace ask the model that answers there most often, else the store's own
commands. The first question titles the thread. Messages are answered like any DM: the same
thinking status, native streaming, sources and feedback buttons (SlackHandlers.on_message).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from slack_bolt import Ack, BoltContext
from slack_bolt.middleware.assistant import Assistant
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.context import first_time
from engine.identity import Caller

if TYPE_CHECKING:
    from engine.app import Engine

PROMPTS_TITLE = "Ask the store's model, or try a command:"
TITLE_LIMIT = 80
PROMPT_LIMIT = 4
COMMAND_PROMPTS = (  # the store's commands, for a workspace whose model was never asked
    ("Find a model", "search support"),
    ("What is answering here?", "help deploy"),
    ("Fine-tune a model", "help tune"),
    ("All commands", "help"),
)


def suggested_prompts(engine: "Engine", caller: Caller) -> list[dict[str, str]]:
    """Up to four {"title", "message"} prompts for a new thread."""
    asked = engine.chat.common_questions(caller, limit=PROMPT_LIMIT)
    if asked:
        return [{"title": _short(q, 40), "message": q} for q in asked]
    return [{"title": title, "message": message} for title, message in COMMAND_PROMPTS]


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def agent_surface(engine: "Engine", chat: Callable[..., None], *,
                  log: logging.Logger) -> Assistant:
    """The Assistant middleware; `chat(body, event, bot_user_id, client, on_first=...)` answers
    a message as every other one is (SlackHandlers.on_message, on the chat pool)."""
    assistant = Assistant(logger=log)

    def ack_now(ack: Ack) -> None:
        ack()

    def started(body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        thread = event.get("assistant_thread") or {}
        team = str(body.get("team_id") or (thread.get("context") or {}).get("team_id") or "")
        channel, thread_ts = thread.get("channel_id", ""), thread.get("thread_ts", "")
        caller = Caller.for_slack(team, thread.get("user_id", ""), channel=channel)
        try:
            client.assistant_threads_setSuggestedPrompts(
                channel_id=channel, thread_ts=thread_ts, title=PROMPTS_TITLE,
                prompts=suggested_prompts(engine, caller))
        except SlackApiError as exc:
            log.warning("could not suggest prompts: %s", exc.response.get("error"))

    def message(body: dict[str, Any], event: dict[str, Any], context: BoltContext,
                client: WebClient) -> None:
        channel, thread_ts = event.get("channel", ""), event.get("thread_ts", "")
        team = str(body.get("team_id") or "")

        def title(question: str) -> None:
            if not question or not first_time(engine, f"slack:{team}:title:{channel}:{thread_ts}"):
                return
            try:
                client.assistant_threads_setTitle(channel_id=channel, thread_ts=thread_ts,
                                                  title=_short(question, TITLE_LIMIT))
            except SlackApiError as exc:  # a plain DM thread has no title to set
                log.debug("no thread title (%s)", exc.response.get("error"))

        chat(body, event, context.bot_user_id or "", client, on_first=title)

    assistant.thread_started(lazy=[started])(ack_now)
    assistant.user_message(lazy=[message])(ack_now)
    # The default would keep the context in message metadata with extra API calls; the store
    # does not read it (a deployment is per channel, not per thread).
    assistant.thread_context_changed(ack_now)
    return assistant
