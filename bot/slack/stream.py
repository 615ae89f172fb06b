"""A chat answer streamed with Slack's native streaming, falling back to throttled edits.

    answer = NativeAnswer(poster, executor, channel="C1", thread_ts="1.2", user="U1", team="T1")
    reply = dispatcher.chat_turn(ctx, text, on_token=answer.on_token)
    ts = answer.finish(reply.text, footer_lines(reply))

While the model writes, the thread shows a status ("is thinking…", assistant.threads.setStatus).
The answer then grows in one message through chat.startStream / appendStream / stopStream
(slack-sdk's `chat_stream` helper); when it stops, the message gets the footer (which model
answered, the sources) as a context block and 👍/👎 `feedback_buttons`. If Slack refuses the
stream (an older workspace, a missing scope, `not_allowed`), the same answer continues as
edits of an ordinary message (`StreamedAnswer`), with the same footer and buttons.

on_token() runs on the model's thread and only appends; at most one Slack call is in flight,
handed to `executor`, and no more often than `min_interval_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor, Future
from typing import Any, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.chat_stream import ChatStream

from bot.core.reply import Reply
from bot.core.streaming import GrowingAnswer
from bot.slack.post import Poster, StreamedAnswer
from bot.slack.render import (
    MESSAGE_LIMIT,
    context_block,
    escape,
    feedback_block,
    markdown,
    plain,
    section,
    split_text,
)

THINKING = "is thinking…"
LOADING = ["Reading the question…", "Looking through its files…", "Writing the answer…"]


def closing_blocks(answer_ref: str) -> list[dict[str, Any]]:
    """What closes every answer: the feedback buttons, naming the answer they vote on."""
    return [feedback_block(answer_ref)]


def set_thinking(poster: Poster, *, channel: str, thread_ts: str, status: str = THINKING) -> bool:
    """Show (or with "" clear) the thread's status; False where Slack does not offer it."""
    try:
        poster.client.assistant_threads_setStatus(
            channel_id=channel, thread_ts=thread_ts, status=status,
            loading_messages=LOADING if status else None)
        return True
    except SlackApiError as exc:  # no assistant:write, or an older workspace: no status
        poster.log.debug("no thread status (%s)", exc.response.get("error"))
        return False


class NativeAnswer:
    """One answer, streamed natively; `mode` says how it went ("native" or "edits")."""

    def __init__(self, poster: Poster, executor: Executor, *, channel: str, thread_ts: str,
                 user: str, team: str, min_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 log: logging.Logger | None = None, native: bool = True) -> None:
        self.poster = poster
        self.executor = executor
        self.channel = channel
        self.thread_ts = thread_ts
        self.user = user
        self.team = team
        self.log = log or poster.log
        self.answer = GrowingAnswer(min_interval_s=min_interval_s, clock=clock)
        self.mode = "native"
        self.refusal = ""  # Slack's error when it refused the stream
        self._stream: ChatStream | None = None
        self._streamed = ""  # the escaped text already in the stream
        self._edits: StreamedAnswer | None = None
        self._lock = threading.Lock()
        self._pending: Future | None = None
        self._closed = False
        self._min_interval_s = min_interval_s
        self._clock = clock
        if not native:
            self._use_edits("")

    @property
    def ts(self) -> str:
        if self._edits is not None:
            return self._edits.ts
        return str(self._stream.ts or "") if self._stream is not None else ""

    # -- while the model writes -------------------------------------------------------------
    def on_token(self, piece: str) -> None:
        edits = self._edits
        if edits is not None:
            edits.on_token(piece)  # appends to the same GrowingAnswer
            return
        self.answer.append(piece)
        with self._lock:
            busy = self._pending is not None and not self._pending.done()
            if self._closed or busy or not self.answer.due():
                return
            self.answer.shown()
            self._pending = self.executor.submit(self._flush)

    def _flush(self) -> None:
        if self._edits is not None:
            return
        text = escape(self.answer.text.lstrip())[:MESSAGE_LIMIT]
        if len(text) <= len(self._streamed):
            return
        try:
            self._append(text[len(self._streamed):])
            self._streamed = text
        except SlackApiError as exc:
            if self.ts:  # a lost append: the next one (or the stop) carries the text again
                self.log.warning("could not append to a stream: %s", exc.response.get("error"))
            else:
                self._fall_back(exc)

    def _append(self, text: str) -> None:
        if self._stream is None:
            self._stream = self._open()
        self._stream.append(markdown_text=text)

    def _open(self) -> ChatStream:
        # buffer_size=1: the throttle is ours (min_interval_s), each append is sent at once.
        return self.poster.client.chat_stream(
            channel=self.channel, thread_ts=self.thread_ts, buffer_size=1,
            recipient_user_id=self.user or None, recipient_team_id=self.team or None)

    def _fall_back(self, exc: SlackApiError) -> None:
        refusal = str(exc.response.get("error") or "refused")
        self.log.info("native streaming refused (%s); streaming by edits", refusal)
        self._use_edits(refusal)

    def _use_edits(self, refusal: str) -> None:
        self.refusal = refusal
        self._stream = None
        self.mode = "edits"
        self._edits = StreamedAnswer(self.poster, self.executor, channel=self.channel,
                                     thread_ts=self.thread_ts, min_interval_s=self._min_interval_s,
                                     clock=self._clock, answer=self.answer)

    def _settle(self) -> None:
        with self._lock:
            self._closed = True
            pending = self._pending
        if pending is not None:
            pending.result()

    # -- the end ----------------------------------------------------------------------------
    def finish(self, text: str, footer: list[str] | None = None, *, answer_ref: str = "") -> str:
        """The whole answer, its footer and feedback buttons; returns its first message's ts.
        `answer_ref` (the store's id of the logged answer) is what the buttons vote on, so a
        click counts even before the message's ts is recorded; else they name the ts."""
        self._settle()

        def closing(ts: str) -> list[dict[str, Any]]:
            return closing_blocks(answer_ref or ts)

        parts = split_text(escape(text.strip() or "(no answer)"), MESSAGE_LIMIT)
        first, single = parts[0], len(parts) == 1
        if self._edits is None and not self.ts:
            try:  # nothing streamed yet (a short or instant answer): start with the first part
                self._append(first)
                self._streamed = first
            except SlackApiError as exc:
                self._fall_back(exc)
        if self._edits is not None:
            return self._edits.finish(text, footer, closing=closing)
        assert self._stream is not None
        context = [context_block(footer)] if footer else []
        tail = context + closing(self.ts)
        if first.startswith(self._streamed.rstrip()):  # what streamed stays; the rest follows
            rest = first[len(self._streamed):] if first.startswith(self._streamed) else ""
            self._stream.stop(markdown_text=rest or None, blocks=tail if single else None)
        else:  # the final text differs from what streamed: stop, then replace it
            self._stream.stop()
            self.poster.client.chat_update(channel=self.channel, ts=self.ts, text=first,
                                           blocks=[markdown(first)] + (tail if single else []))
        for index, part in enumerate(parts[1:], start=2):
            self.poster.client.chat_postMessage(
                channel=self.channel, thread_ts=self.thread_ts, text=part,
                blocks=[markdown(part)] + (tail if index == len(parts) else []))
        return self.ts

    def fail(self, reply: Reply, *, user: str) -> None:
        """An error instead of an answer: replaces what streamed, else goes to the user only."""
        self._settle()
        if self._edits is not None:
            self._edits.fail(reply, user=user)
            return
        if self._stream is not None and self.ts:
            try:
                self._stream.stop()
            except SlackApiError as exc:
                self.log.warning("could not stop a stream: %s", exc.response.get("error"))
            self.poster.client.chat_update(channel=self.channel, ts=self.ts, text=plain(reply),
                                           blocks=[section(plain(reply))])
        else:
            set_thinking(self.poster, channel=self.channel, thread_ts=self.thread_ts, status="")
            self.poster.ephemeral(reply, channel=self.channel, user=user,
                                  thread_ts=self.thread_ts)

