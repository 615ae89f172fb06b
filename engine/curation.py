"""Curation: what conversations may teach a model, and who decides.

A model's training set is its uploaded file plus every *approved* curated pair. Pairs come
from four places, each kept with its origin and who approved it:

- a correction (`/store correct`) or a 👎 in the model's own workspace becomes a
  *suggestion* in the review inbox (`/store review MODEL`); equal suggestions from several
  users are one entry that counts how many agreed;
- in another workspace (a public model) the same happens only when the owner turned
  `outside=on` for the model; otherwise those conversations never reach its training data;
- a 👍 in the owner workspace is an approved pair straight away when the owner turned
  `thumbs-up=on` for the model (off by default: 👍 only counts towards ratings);
- an answered gap (another part of the store) is approved by whoever answered it.

Only admins of the model's own workspace review (approve, edit, reject). Suggestions are
rate limited per user (GPTSTORE_SUGGESTION_RATE an hour, one database row per user, taken
atomically as the chat limits are).

For other parts of the engine (answered gaps):

    curation.add_approved(model, question, answer, origin="gap", ref="gap 7",
                          approved_by=caller)

records an approved pair that the next retrain trains on; it returns the pair's id.
`training_pairs(model_id)` is the curated half of a retrain's training set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Optional

from engine.catalog.service import Catalog
from engine.errors import Busy, InvalidInput, NotFound, PermissionDenied
from engine.identity import Caller
from engine.limits import check_length
from engine.settings import Settings
from engine.views import CuratedView, ReviewInbox
from storage import curation as rows
from storage import limits as limit_rows
from storage.db import Database
from storage.tables import CuratedExampleRecord, MessageRecord, ModelRecord, ModelVersionRecord

ORIGINS = ("correction", "thumbs-down", "thumbs-up", "gap")
HOUR_S = 3600.0
SHOWN = 5  # suggestions listed (with buttons) in one review reply


class Curation:
    """The review inbox and the approved pairs of every model."""

    def __init__(self, db: Database, settings: Settings, catalog: Catalog,
                 clock: Callable[[], datetime],
                 on_change: Optional[Callable[[int], None]] = None) -> None:
        self.db = db
        self.settings = settings
        self.catalog = catalog
        self.clock = clock
        # called with a model id after its approved pairs changed (the engine re-indexes
        # them into the model's knowledge, so an approved correction answers at once)
        self.on_change = on_change

    def _changed(self, model_id: int) -> None:
        if self.on_change is not None:
            self.on_change(model_id)

    # -- where pairs come from ------------------------------------------------------------

    def add_approved(self, model: ModelRecord | int, question: str, answer: str, *,
                     origin: str = "gap", ref: str = "", approved_by: Caller | str,
                     workspace: str = "") -> int:
        """Record an approved pair (an answered gap, say): the next retrain trains on it.
        Returns its id. The caller has checked that `approved_by` may answer for the model."""
        if origin not in ORIGINS:
            raise InvalidInput(f"A curated pair comes from one of {', '.join(ORIGINS)}, "
                               f"not {origin!r}.")
        question, answer = (question or "").strip(), (answer or "").strip()
        if not question or not answer:
            raise InvalidInput("A curated pair needs both a question and an answer.")
        check_length(len(answer), "answer")
        model_id = model if isinstance(model, int) else model.id
        by = approved_by.user if isinstance(approved_by, Caller) else str(approved_by)
        where = workspace or (approved_by.workspace if isinstance(approved_by, Caller) else "")
        with self.db.session() as s:
            record = rows.add_approved(s, model_id=model_id, approved_by=by, now=self.clock(),
                                       question=question, answer=answer, origin=origin, ref=ref,
                                       workspace=where, suggested_by=by)
            pair_id = int(record.id)
        if origin != "gap":  # an answered gap is an entry of the model's knowledge already
            self._changed(model_id)
        return pair_id

    def from_correction(self, caller: Caller, answer: MessageRecord, question: str,
                        text: str) -> Optional[int]:
        """A correction becomes a suggestion (None: this workspace may not teach the model).
        Busy, with nothing stored, once the caller's hourly suggestions are used up."""
        return self._suggest(caller, answer, question, text, "correction", strict=True)

    def from_vote(self, caller: Caller, answer: MessageRecord, question: str,
                  kind: str) -> Optional[int]:
        """A 👎 becomes a suggestion (the reviewer writes the answer); a 👍 in the owner
        workspace an approved pair when the owner turned that on. A vote over the caller's
        suggestion limit still counts for the ratings, it only suggests nothing."""
        model = self._model(answer.model_id)
        if model is None:
            return None
        if kind == "up":
            with self.db.session() as s:
                allowed = rows.settings_of(s, model.id).thumbs_up_approves
            if not allowed or caller.workspace != model.workspace or not self._take(caller):
                return None
            with self.db.session() as s:
                record = rows.add_approved(
                    s, model_id=model.id, approved_by=f"thumbs-up:{caller.user}",
                    now=self.clock(), question=question, answer=answer.content,
                    bot_answer=answer.content, origin="thumbs-up", ref=f"message {answer.id}",
                    message_id=answer.id, workspace=caller.workspace, asker=answer.user,
                    suggested_by=caller.user)
                pair_id = int(record.id)
            self._changed(model.id)
            return pair_id
        return self._suggest(caller, answer, question, "", "thumbs-down", strict=False)

    def _suggest(self, caller: Caller, answer: MessageRecord, question: str, text: str,
                 origin: str, *, strict: bool) -> Optional[int]:
        model = self._model(answer.model_id)
        if model is None or model.is_base:
            return None
        if caller.workspace != model.workspace:
            with self.db.session() as s:
                if not rows.settings_of(s, model.id).outside_suggestions:
                    return None  # the owner did not open the model to other workspaces
        if not self._take(caller):
            if strict:
                raise Busy(f"You have made {self.settings.suggestion_rate_per_hour} "
                           "suggestions in the last hour, the most allowed; try again later.")
            return None
        with self.db.session() as s:
            record, _ = rows.suggest(
                s, model_id=model.id, user=caller.user, now=self.clock(), question=question,
                bot_answer=answer.content, answer=text, origin=origin,
                ref=f"message {answer.id}", message_id=answer.id, workspace=caller.workspace,
                asker=answer.user)
            return int(record.id)

    def _take(self, caller: Caller) -> bool:
        rate = self.settings.suggestion_rate_per_hour
        now = self.clock().timestamp()
        wait = self.db.retrying(lambda s: limit_rows.take(
            s, f"suggest:user:{caller.user}", now, HOUR_S / rate, HOUR_S))
        return wait <= 0

    # -- review ---------------------------------------------------------------------------

    def inbox(self, caller: Caller, name: str) -> ReviewInbox:
        """The pending suggestions of a model, oldest first (its workspace's admins)."""
        model = self.catalog.resolve(caller, name)
        self._check_reviewer(caller, model)
        with self.db.session() as s:
            waiting = rows.pending(s, model.id, limit=SHOWN)
            choice = rows.settings_of(s, model.id)
            return ReviewInbox(
                model_name=self.catalog.shown_name(caller, model),
                pending=tuple(self._view(model, r) for r in waiting),
                total_pending=rows.count(s, model.id, "pending"),
                approved=rows.count(s, model.id, "approved"),
                thumbs_up_approves=choice.thumbs_up_approves,
                outside_suggestions=choice.outside_suggestions)

    def set_options(self, caller: Caller, name: str, *, thumbs_up: Optional[bool] = None,
                    outside: Optional[bool] = None) -> ReviewInbox:
        """Turn owner-workspace 👍-as-approved and other workspaces' suggestions on or off."""
        model = self.catalog.resolve(caller, name)
        self._check_reviewer(caller, model)
        with self.db.session() as s:
            rows.set_settings(s, model.id, thumbs_up_approves=thumbs_up,
                              outside_suggestions=outside)
        return self.inbox(caller, name)

    def suggestion(self, caller: Caller, curated_id: int) -> CuratedView:
        """One suggestion, for a reviewer about to edit it."""
        model, record = self._reviewed(caller, curated_id)
        return self._view(model, record)

    def approve(self, caller: Caller, curated_id: int) -> CuratedView:
        """Approve a suggestion as it stands: the next retrain trains on it."""
        return self._decide(caller, curated_id, "approved")

    def edit(self, caller: Caller, curated_id: int, text: str) -> CuratedView:
        """Approve a suggestion with the reviewer's own answer."""
        text = (text or "").strip()
        if not text:
            raise InvalidInput("Give the answer it should have given: `/store edit ID ANSWER`.")
        check_length(len(text), "answer")
        return self._decide(caller, curated_id, "approved", answer=text)

    def reject(self, caller: Caller, curated_id: int) -> CuratedView:
        """Reject a suggestion, or take back an approved pair: it trains no later version."""
        return self._decide(caller, curated_id, "rejected")

    def _reviewed(self, caller: Caller, curated_id: int
                  ) -> tuple[ModelRecord, CuratedExampleRecord]:
        with self.db.session() as s:
            record = rows.get(s, int(curated_id))
            model = s.get(ModelRecord, record.model_id) if record is not None else None
        if record is None or model is None or model.workspace != caller.workspace:
            raise NotFound(f"There is no suggestion {curated_id} for a model of this "
                           "workspace; `/store review MODEL` lists them.")
        self._check_reviewer(caller, model)
        return model, record

    def _decide(self, caller: Caller, curated_id: int, status: str,
                answer: Optional[str] = None) -> CuratedView:
        model, record = self._reviewed(caller, curated_id)
        if status == "approved" and answer is None and not record.answer.strip():
            raise InvalidInput(f"Suggestion {curated_id} is a 👎 without a better answer; "
                               f"write one with `/store edit {curated_id} THE RIGHT ANSWER`.")
        with self.db.session() as s:
            record = rows.decide(s, rows.get(s, int(curated_id)), status, caller.user,
                                 self.clock(), answer=answer)
            view = self._view(model, record)
        self._changed(model.id)
        return view

    def _check_reviewer(self, caller: Caller, model: ModelRecord) -> None:
        if model.is_base:
            raise InvalidInput(f"'{model.name}' is a base model; only tuned models learn from "
                               "reviewed conversations.")
        if caller.workspace != model.workspace or not caller.is_admin:
            raise PermissionDenied(f"Only an admin of the workspace that owns '{model.name}' "
                                   "reviews what it learns.")

    # -- the curated half of the training set ----------------------------------------------

    def training_pairs(self, model_id: int) -> list[CuratedView]:
        """Every approved pair of the model, oldest first."""
        model = self._model(model_id)
        with self.db.session() as s:
            return [self._view(model, r) for r in rows.approved(s, model_id)]

    def live_curated_ids(self, model_id: int) -> set[int]:
        """The curated pairs that trained the live version (empty before any retrain)."""
        with self.db.session() as s:
            model = s.get(ModelRecord, model_id)
            live = s.get(ModelVersionRecord, model.live_version_id) \
                if model is not None and model.live_version_id else None
            if live is None:
                return set()
            data = rows.version_data(s, [live.id]).get(live.id)
            return set(data.curated_ids or []) if data is not None else set()

    def new_pairs(self, model_id: int) -> list[CuratedView]:
        """Approved pairs the live version was not trained on."""
        trained = self.live_curated_ids(model_id)
        return [p for p in self.training_pairs(model_id) if p.id not in trained]

    def forget_user(self, user: str) -> int:
        """A forget-me: the pairs the user asked or suggested go (approved ones too)."""
        with self.db.session() as s:
            touched = rows.models_of_user(s, user)
            gone = rows.forget_user(s, user)
        for model_id in sorted(touched):
            self._changed(model_id)  # their approved pairs stop answering too
        return gone

    def _model(self, model_id: Optional[int]) -> Optional[ModelRecord]:
        if model_id is None:
            return None
        with self.db.session() as s:
            return s.get(ModelRecord, model_id)

    def _view(self, model: Optional[ModelRecord], r: CuratedExampleRecord) -> CuratedView:
        return CuratedView(
            id=int(r.id), model_name=model.name if model else "", status=r.status,
            origin=r.origin, ref=r.ref, question=r.question, bot_answer=r.bot_answer,
            answer=r.answer, suggested_by=r.suggested_by, agreed=len(r.supporters or []) or 1,
            workspace=r.workspace, approved_by=r.approved_by)
