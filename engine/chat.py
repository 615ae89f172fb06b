"""The chat service: answer a turn with a model, log it, and curate the logs (feedback,
corrections, forget-me, retention) into tomorrow's training pairs."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, Callable, Optional, Protocol, Sequence

from engine.catalog.service import Catalog
from engine.curation import Curation
from engine.errors import InvalidInput, NotFound, StoreError
from engine.identity import Caller
from engine.knowledge.prompt import build_prompt_messages
from engine.knowledge.service import Knowledge, Retrieval, decline_text
from engine.limits import RateLimiter, check_length
from engine.settings import Settings
from engine.views import ChatAnswer, Source, Target
from storage import catalog as catalog_store
from storage import conversations as logs
from storage.db import Database
from storage.tables import FeedbackRecord, MessageRecord, ModelRecord

HISTORY_LIMIT = 20  # messages of a conversation handed back as context


class Runner(Protocol):
    """What ChatService needs from engine.serving.runner.ChatRunner."""

    def answer(self, target: Target, messages: list[dict[str, str]], *,
               on_token: Optional[Callable[[str], Any]] = None,
               copy_from: Sequence[str] = ()) -> Any: ...  # .text .tokens .latency_ms


class ChatService:
    """One chat turn at a time: resolve the model, generate, log question and answer."""

    def __init__(self, db: Database, settings: Settings, catalog: Catalog, runner: Runner,
                 clock: Callable[[], datetime], limits: Optional[RateLimiter] = None,
                 knowledge: Optional[Knowledge] = None,
                 curation: Optional[Curation] = None) -> None:
        self.db = db
        self.knowledge = knowledge or Knowledge(db, clock)  # keyword ranking without one
        self.settings = settings
        self.catalog = catalog
        self.runner = runner
        self.clock = clock
        self.limits = limits or RateLimiter(db, settings, clock)
        self.curation = curation or Curation(db, settings, catalog, clock)

    def answer(self, caller: Caller, model_name: Optional[str], text: str, *,
               history: Optional[list[dict[str, str]]] = None,
               on_token: Optional[Callable[[str], Any]] = None, question_ref: str = "",
               answer_ref_cb: Optional[Callable[[int], Optional[str]]] = None) -> ChatAnswer:
        """Answer `text` with `model_name` (None: this channel's deployed model) and log the turn.

        `history` is earlier turns as {"role", "content"}; `question_ref` is the platform id of
        the question; `answer_ref_cb(message_id)` may return the platform id of the posted
        answer, which is then stored (or call set_answer_ref later)."""
        question = (text or "").strip()
        if not question:
            raise InvalidInput("Say something to the model, e.g. `/store chat MODEL hello`.")
        check_length(len(question), "message")  # the 20,000-character guard commands have too
        self.limits.check_chat(caller)  # per user and workspace; Busy says when to retry
        model, chosen_by = self._model_for(caller, model_name)
        target = self.catalog.live_target(model, caller)  # refuses a model made private
        started = time.perf_counter()
        found = self.knowledge.retrieve(model.id, target.version, question)
        retrieval_ms = int((time.perf_counter() - started) * 1000)
        if found.in_scope:
            messages = build_prompt_messages(target.system_prompt, history, question,
                                             found.context)
            generated = self.runner.answer(target, messages, on_token=on_token,
                                           copy_from=found.copyable)
            reply = str(getattr(generated, "text", ""))
            latency = int(getattr(generated, "latency_ms", 0) or 0) + (
                retrieval_ms if found.has_knowledge else 0)  # the search is part of the wait
            tokens = int(getattr(generated, "tokens", 0) or 0)
        else:  # out of scope: say so and name who can help, instead of inventing an answer
            reply = decline_text(self.knowledge.handoff(model.id))
            self.knowledge.record_gap(model.id, caller.workspace, question, caller.user)
            if on_token is not None:
                on_token(reply)
            latency, tokens = int((time.perf_counter() - started) * 1000), 0
        now = self.clock()
        with self.db.session() as s:
            conv = logs.conversation(s, caller.platform, caller.workspace, caller.channel,
                                     caller.thread, now=now)
            asked = logs.add_message(s, conversation_id=conv.id, role="user", user=caller.user,
                                     content=question, model_id=model.id,
                                     platform_message_id=question_ref or "", created_at=now)
            answered = logs.add_message(s, conversation_id=conv.id, role="assistant",
                                        user=caller.user, content=reply, model_id=model.id,
                                        model_version_id=target.version_id, reply_to_id=asked.id,
                                        latency_ms=latency, created_at=now)
            catalog_store.add_usage(s, model.id)
        if answer_ref_cb is not None:
            ref = answer_ref_cb(answered.id)
            if ref:
                self.set_answer_ref(answered.id, str(ref))
        return ChatAnswer(text=reply, model_name=self.catalog.shown_name(caller, model),
                          version=target.version,
                          message_id=answered.id, latency_ms=latency, tokens=tokens,
                          chosen_by=chosen_by, sources=_sources(found, reply),
                          grounded=found.in_scope)

    def _model_for(self, caller: Caller, model_name: Optional[str]) -> tuple[ModelRecord, str]:
        """The model named, else the one that answers here (channel, workspace, store)."""
        if model_name:
            return self.catalog.resolve(caller, model_name), "named"
        answerer = self.catalog.answering(caller)
        return answerer.model, answerer.chosen_by

    def common_questions(self, caller: Caller, limit: int = 4) -> list[str]:
        """What people in the caller's workspace ask the model that answers here most often
        (the agent surface suggests them); [] when nothing answers here or nothing was asked."""
        try:
            model = self.catalog.answering(caller).model
        except StoreError:  # nothing answers here (no default base), or it stopped being shared
            return []
        with self.db.session() as s:
            return logs.common_questions(s, model.id, caller.platform, caller.workspace, limit)

    def set_answer_ref(self, message_id: int, platform_message_id: str) -> None:
        """Remember the platform's id of a posted answer, so reactions and replies find it."""
        with self.db.session() as s:
            logs.set_platform_id(s, message_id, platform_message_id)

    def history_for(self, caller: Caller, limit: int = HISTORY_LIMIT) -> list[dict[str, str]]:
        """The caller's conversation (thread, DM or console session) as chat messages."""
        with self.db.session() as s:
            conv = logs.conversation(s, caller.platform, caller.workspace, caller.channel,
                                     caller.thread, create=False)
            rows = logs.recent(s, conv.id, limit) if conv is not None else []
        return [{"role": m.role, "content": m.content} for m in rows]

    def feedback(self, caller: Caller, ref: str, kind: str) -> None:
        """A thumbs up or down on an answer; one vote per user per answer, the last one counts."""
        if kind not in logs.VOTES:
            raise InvalidInput(f"Feedback is 'up' or 'down', not {kind!r}.")
        with self.db.session() as s:
            answer = self._find_answer(s, caller, ref)
            vote = logs.vote_of(s, answer.id, caller.user)
            if vote is not None and vote.kind == kind:
                return
            delta = {"up": 0, "down": 0}
            delta[kind] += 1
            if vote is None:
                s.add(FeedbackRecord(message_id=answer.id, user=caller.user, kind=kind,
                                          created_at=self.clock()))
            else:
                delta[vote.kind] -= 1
                vote.kind, vote.created_at = kind, self.clock()
                s.add(vote)
            if answer.model_id is not None:
                catalog_store.add_rating(s, answer.model_id, delta["up"], delta["down"])
            question = self._question_of(s, answer)
        self.curation.from_vote(caller, answer, question, kind)  # 👎: a suggestion for review

    def correct(self, caller: Caller, ref: Optional[str], better: str) -> int:
        """Store `better` as the right answer to an answer (ref None: the caller's last answer
        in this conversation). Returns the corrected answer's message id."""
        text = (better or "").strip()
        if not text:
            raise InvalidInput("Give the better answer: `/store correct THE BETTER ANSWER`.")
        with self.db.session() as s:
            if ref:
                answer = self._find_answer(s, caller, ref)
            else:
                conv = logs.conversation(s, caller.platform, caller.workspace, caller.channel,
                                         caller.thread, create=False)
                answer = logs.last_answer(s, conv.id, caller.user) if conv else None
                if answer is None:
                    raise NotFound("There is no answer here to correct; reply to the model's "
                                   "answer with `/store correct THE BETTER ANSWER`.")
            question = self._question_of(s, answer)
        # The owner's review inbox gets it first (Busy past the caller's hourly limit).
        self.curation.from_correction(caller, answer, question, text)
        with self.db.session() as s:
            record = logs.correction_of(s, answer.id, caller.user) or FeedbackRecord(
                message_id=answer.id, user=caller.user, kind="correction")
            record.correction, record.created_at = text, self.clock()
            s.add(record)
            return answer.id

    @staticmethod
    def _question_of(s, answer: MessageRecord) -> str:
        asked = s.get(MessageRecord, answer.reply_to_id) if answer.reply_to_id else None
        return asked.content if asked is not None else ""

    def _find_answer(self, s, caller: Caller, ref: str) -> MessageRecord:
        answer = logs.find_answer(s, str(ref), caller.platform, caller.workspace)
        if answer is None:
            raise NotFound("That message is not an answer from a store model (or it was deleted); "
                           "react to or reply to the model's answer.")
        return answer

    def forget_me(self, caller: Caller) -> int:
        """Delete every message and feedback of the caller (and the answers they got).
        Returns how many rows went; their votes come off the models' ratings."""
        return sum(self.forget_logs(caller))

    def forget_logs(self, caller: Caller) -> tuple[int, int]:
        """forget_me's work: (messages deleted, votes and corrections deleted)."""
        with self.db.session() as s:
            messages, feedback, votes = logs.forget_user(s, caller.user)
            for model_id, (ups, downs) in votes.items():
                catalog_store.add_rating(s, model_id, -ups, -downs)
        return messages, feedback + self.curation.forget_user(caller.user)

    def purge_older_than(self, days: float) -> int:
        """Delete logs older than `days`, and the declined questions (gap asks, open gaps)
        asked before then; ratings and usage counts keep what they learnt. Returns the rows
        deleted."""
        cutoff = self.clock() - timedelta(days=days)
        with self.db.session() as s:
            purged = logs.purge_before(s, cutoff)
        return purged + self.knowledge.purge_gaps_before(cutoff)

    def purge_old(self) -> int:
        """Apply GPTSTORE_LOG_RETENTION_DAYS (0 keeps everything)."""
        days = self.settings.log_retention_days
        return self.purge_older_than(days) if days > 0 else 0

    def curated_pairs(self, model_id: int) -> list[tuple[str, str, str]]:
        """(question, answer, origin) of every approved curated pair of the model: the
        curated half of its training set (engine/curation.py decides what is approved)."""
        return [(p.question, p.answer, p.origin) for p in self.curation.training_pairs(model_id)]


def _sources(found: Retrieval, reply: str) -> tuple[Source, ...]:
    return tuple(Source(ref=p.ref, question=p.question, text=p.text, score=p.score)
                 for p in found.sources_for(reply))
