"""Putting Replies into Slack: messages, ephemeral notes, job status messages, streamed answers.

Every Slack Web API call the adapter makes goes through here, so the rules live in one
place: ephemeral replies go to the caller only, long text is split before Slack's limits,
a job has ONE status message that is edited, and a streamed answer is edited no more often
than `min_interval_s` from a worker thread, never from the model's generation thread.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.reply import Button, Reply
from bot.core.streaming import GrowingAnswer
from bot.slack.render import (
    MESSAGE_LIMIT,
    SECTION_LIMIT,
    context_block,
    escape,
    plain,
    render,
    section,
    split_text,
)
from engine.views import JobView

NOT_POSTABLE = {"not_in_channel", "channel_not_found", "is_archived"}


@dataclass
class Poster:
    """Posts Replies with one WebClient; `log` never sees a token (slack_sdk redacts them)."""

    client: WebClient
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("gptstore.slack"))

    def post(self, reply: Reply, *, channel: str, user: str = "", thread_ts: str = "",
             respond: Callable[..., Any] | None = None) -> list[str]:
        """Post `reply`; returns the ts of each message posted (none for ephemeral ones)."""
        if reply.ephemeral:
            self.ephemeral(reply, channel=channel, user=user, thread_ts=thread_ts,
                           respond=respond)
            return []
        posted: list[str] = []
        try:
            for message in render(reply):
                result = self.client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts or None, unfurl_links=False, **message)
                posted.append(str(result["ts"]))
        except SlackApiError as exc:
            if exc.response.get("error") not in NOT_POSTABLE or respond is None:
                raise
            # The bot is not in this channel: the slash command's response_url still works.
            respond(text=plain(reply), blocks=render(reply)[0]["blocks"],
                    response_type="in_channel")
            return posted
        if reply.image is not None and posted:
            self.upload(reply.image, channel=channel, thread_ts=thread_ts or posted[0],
                        title=reply.title or reply.image.name)
        return posted

    def ephemeral(self, reply: Reply, *, channel: str, user: str, thread_ts: str = "",
                  respond: Callable[..., Any] | None = None) -> None:
        """Only `user` sees it; through response_url when chat.postEphemeral cannot reach them."""
        messages = render(reply)
        try:
            for message in messages:
                self.client.chat_postEphemeral(channel=channel, user=user,
                                               thread_ts=thread_ts or None, **message)
        except SlackApiError as exc:
            if respond is None:
                self.log.warning("could not post an ephemeral reply (%s)",
                                 exc.response.get("error"))
                return
            respond(text=plain(reply), response_type="ephemeral")

    def upload(self, path: Any, *, channel: str, thread_ts: str, title: str) -> None:
        try:
            self.client.files_upload_v2(channel=channel, thread_ts=thread_ts, file=str(path),
                                        filename=getattr(path, "name", "plot.png"), title=title)
        except (SlackApiError, OSError) as exc:  # the metrics are posted; the plot is a bonus
            self.log.warning("could not upload %s: %s", getattr(path, "name", path), exc)

    def update(self, channel: str, ts: str, reply: Reply) -> None:
        message = render(reply)[0]
        self.client.chat_update(channel=channel, ts=ts, **message)


@dataclass
class StatusSink:
    """A job's one status message, edited while it runs, then the result in its thread."""

    poster: Poster
    channel: str
    status_ts: str
    thread_ts: str = ""  # "" : the status message starts the thread
    initial: Reply | None = None  # the reply that started the job (its Cancel button stays)
    team: str = ""  # the Slack workspace (under OAuth another process finds its token by it)

    def update(self, job: JobView, text: str) -> None:
        buttons = self.initial.buttons if self.initial is not None else ()
        try:
            self.poster.update(self.channel, self.status_ts,
                               Reply(text=text, title=self.initial.title if self.initial else "",
                                     buttons=buttons))
        except SlackApiError as exc:
            self.poster.log.warning("could not edit job %s status: %s", job.id,
                                    exc.response.get("error"))

    def finish(self, job: JobView, reply: Reply) -> None:
        done = f"Job {job.id} ({job.model_name}): {job.state}."
        try:
            self.poster.update(self.channel, self.status_ts,
                               Reply(text=done, title=self.initial.title if self.initial else ""))
        except SlackApiError as exc:
            self.poster.log.warning("could not edit job %s status: %s", job.id,
                                    exc.response.get("error"))
        self.poster.post(reply, channel=self.channel, thread_ts=self.thread_ts or self.status_ts)

    # -- durable delivery (bot/core/delivery.py) -------------------------------------------
    def place(self) -> dict[str, Any]:
        """Where this sink reports, as JSON: another serve process rebuilds it from this."""
        initial = self.initial
        return {"channel": self.channel, "status_ts": self.status_ts, "thread_ts": self.thread_ts,
                "team": self.team,
                "title": initial.title if initial else "",
                "buttons": [[b.label, b.command, b.style] for b in initial.buttons]
                if initial else []}

    def delivered(self, job: JobView, reply: Reply) -> bool:
        """Whether the final reply is already in the thread (posted by a process that died
        before it could record so)."""
        expected = render(reply)[0]["text"].split(" Loss plot: ")[0]
        try:
            found = self.poster.client.conversations_replies(
                channel=self.channel, ts=self.thread_ts or self.status_ts, limit=200)
        except SlackApiError:
            return False  # cannot tell: post it (a duplicate is better than nothing)
        return any(m.get("bot_id") and str(m.get("text", "")).startswith(expected)
                   for m in found.get("messages", []))


def status_sink(poster: Poster, place: dict[str, Any]) -> StatusSink:
    """The StatusSink a place() describes."""
    buttons = tuple(Button(*b) for b in place.get("buttons", []))
    initial = Reply(text="", title=place.get("title", ""), buttons=buttons)
    return StatusSink(poster, place["channel"], place["status_ts"],
                      thread_ts=place.get("thread_ts", ""), initial=initial,
                      team=place.get("team", ""))


class StreamedAnswer:
    """A chat answer that appears as the model writes it.

    on_token() runs on the model's thread and only appends; when an edit is due and none is
    in flight, one is handed to `executor`. finish() waits for that edit, then writes the
    whole answer, split into as many thread messages as Slack's limits need.
    """

    def __init__(self, poster: Poster, executor: Executor, *, channel: str, thread_ts: str,
                 min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 answer: GrowingAnswer | None = None) -> None:
        self.poster = poster
        self.executor = executor
        self.channel = channel
        self.thread_ts = thread_ts
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.ts = ""  # the first answer message, once posted
        # Shared with a native stream that fell back to edits, so no piece is lost in between.
        self.answer = answer or GrowingAnswer(min_interval_s=min_interval_s, clock=clock)
        self._lock = threading.Lock()
        self._pending: Future | None = None
        self._closed = False

    def on_token(self, piece: str) -> None:
        self.answer.append(piece)
        with self._lock:
            busy = self._pending is not None and not self._pending.done()
            if self._closed or busy or not self.answer.due():
                return
            self.answer.shown()
            self._pending = self.executor.submit(self._edit)

    def _edit(self) -> None:
        shown = escape(self.answer.preview(MESSAGE_LIMIT))
        try:
            self._write(shown)
        except SlackApiError as exc:  # a lost intermediate edit is harmless
            self.poster.log.warning("could not stream an answer: %s", exc.response.get("error"))

    def _write(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        extra = {"blocks": blocks} if blocks else {}
        if not self.ts:
            result = self.poster.client.chat_postMessage(channel=self.channel, text=text,
                                                         thread_ts=self.thread_ts, **extra)
            self.ts = str(result["ts"])
        else:
            self.poster.client.chat_update(channel=self.channel, ts=self.ts, text=text, **extra)

    def _settle(self) -> None:
        with self._lock:
            self._closed = True
            pending = self._pending
        if pending is not None:
            pending.result()

    def finish(self, text: str, footer: list[str] | None = None,
               closing: Callable[[str], list[dict[str, Any]]] | None = None) -> str:
        """Write the final answer, with `footer` (sources, which model answered) in a context
        block under its last part and `closing(first_ts)` blocks (feedback buttons) after it;
        returns the ts of its first message."""
        self._settle()
        chunks = split_text(escape(text.strip() or "(no answer)"), MESSAGE_LIMIT)
        context = [context_block(footer)] if footer else []

        def blocks_for(chunk: str, answer_ts: str) -> list[dict[str, Any]] | None:
            # An empty answer_ts: the buttons name the message they sit on (a new message).
            tail = context + (closing(answer_ts) if closing is not None else [])
            return [section(piece) for piece in split_text(chunk, SECTION_LIMIT)] + tail \
                if tail else None

        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            if index == 0:
                try:
                    self._write(chunk, blocks_for(chunk, self.ts) if last else None)
                except SlackApiError as exc:
                    if not self.ts:
                        raise
                    # The streamed message cannot be edited: the answer goes in a new one.
                    self.poster.log.warning("could not finish a streamed answer (%s); "
                                            "posting it anew", exc.response.get("error"))
                    self.ts = ""
                    self._write(chunk, blocks_for(chunk, "") if last else None)
            else:
                blocks = blocks_for(chunk, self.ts) if last else None
                self.poster.client.chat_postMessage(channel=self.channel, text=chunk,
                                                    thread_ts=self.thread_ts,
                                                    **({"blocks": blocks} if blocks else {}))
        return self.ts

    def fail(self, reply: Reply, *, user: str) -> None:
        """An error instead of an answer: replaces what streamed, else goes to the user only."""
        self._settle()
        if self.ts:
            self.poster.client.chat_update(channel=self.channel, ts=self.ts, text=plain(reply),
                                           blocks=[section(plain(reply))])
        else:
            self.poster.ephemeral(reply, channel=self.channel, user=user,
                                  thread_ts=self.thread_ts)
