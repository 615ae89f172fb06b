"""What people do to a model's knowledge, with the permissions: list and answer its gaps,
add documents, set its handoff text and its decline threshold.

Who may do what: anyone who can use a model sees the gaps asked in their own workspace; only
an admin of the model's workspace answers them, sets the handoff text or the threshold; the
owner or an admin of its workspace adds documents. A gap belongs to the workspace it was asked
in, so one workspace never sees another's questions.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Callable

from engine.catalog import rules
from engine.catalog.service import Catalog
from engine.curation import Curation
from engine.datasets.service import Datasets
from engine.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from engine.identity import Caller
from engine.knowledge.documents import read_document, split_passages
from engine.knowledge.service import Knowledge
from engine.views import GapView, KnowledgeView, ModelCard
from storage import catalog as catalog_store
from storage.db import Database
from storage.tables import KnowledgeGapRecord, ModelRecord

MAX_ANSWER_CHARS = 2000  # an FAQ answer, not a document: those go through /store docs
MAX_HANDOFF_CHARS = 300


class KnowledgeAdmin:
    def __init__(self, db: Database, catalog: Catalog, knowledge: Knowledge, datasets: Datasets,
                 clock: Callable[[], datetime], curation: Curation) -> None:
        self.db = db
        self.catalog = catalog
        self.knowledge = knowledge
        self.datasets = datasets
        self.clock = clock
        self.curation = curation  # answered gaps become approved curated pairs

    # -- gaps ------------------------------------------------------------------------------------

    def gaps(self, caller: Caller, model_name: str) -> list[GapView]:
        """The questions `model_name` declined in the caller's workspace, most asked first."""
        model = self.catalog.resolve(caller, model_name)
        shown = self.catalog.shown_name(caller, model)
        return [_gap_view(g, shown) for g in self.knowledge.open_gaps(model.id, caller.workspace)]

    def answer_gap(self, caller: Caller, gap_ref: str, answer: str) -> GapView:
        """Answer a gap: the model answers it (and its rephrasings) from now on, and the pair
        joins the model's training data for its next retrain."""
        gap_id = parse_gap_id(gap_ref)
        text = (answer or "").strip()
        gap = self.knowledge.gap(gap_id)
        model = self.catalog.model_by_id(gap.model_id) if gap is not None else None
        if gap is None or model is None or gap.workspace != caller.workspace:
            raise NotFound(f"There is no gap {gap_id} in this workspace; `/store gaps MODEL` "
                           "lists them.")
        check_admin(caller, model, "answer its gaps")
        if gap.state != "open":
            raise Conflict(f"Gap {gap_id} is already answered.")
        if not text:
            raise InvalidInput(f"Give the answer: `/store answer {gap_id} THE ANSWER`.")
        if len(text) > MAX_ANSWER_CHARS:
            raise InvalidInput(f"That answer is {len(text):,} characters; an answer may be at "
                               f"most {MAX_ANSWER_CHARS:,}. Put longer material in a document "
                               "with `/store docs MODEL`.")
        self.knowledge.answer_gap(gap_id, text, caller.user)
        # the next retrain learns it too: an approved curated pair of origin "gap"
        self.curation.add_approved(model, gap.question, text, origin="gap", ref=f"gap {gap_id}",
                                   approved_by=caller, workspace=model.workspace)
        return _gap_view(gap, self.catalog.shown_name(caller, model))

    # -- documents, handoff, threshold ---------------------------------------------------------

    def add_document(self, caller: Caller, model_name: str, filename: str, data: bytes
                     ) -> tuple[str, int]:
        """A .txt/.md document the model answers from; (model's shown name, passages)."""
        model = self.catalog.resolve(caller, model_name)
        rules.check_manage(caller, model, "add documents to it")
        text = read_document(filename, data)
        if not split_passages(text):
            raise InvalidInput(f"{filename} has no text to answer from; attach a document "
                               "with some paragraphs in it.")
        count = self.knowledge.add_document(model.id, filename, text)
        return self.catalog.shown_name(caller, model), count

    def set_handoff(self, caller: Caller, model_name: str, text: str) -> KnowledgeView:
        model = self.catalog.resolve(caller, model_name)
        check_admin(caller, model, "set its handoff text")
        handoff = " ".join((text or "").split())
        if not handoff:
            raise InvalidInput("Say who can help, e.g. `/store handoff MODEL ask @support-team "
                               "in #help`.")
        if len(handoff) > MAX_HANDOFF_CHARS:
            raise InvalidInput(f"A handoff text may be at most {MAX_HANDOFF_CHARS} characters; "
                               f"that one has {len(handoff)}.")
        self.knowledge.set_handoff(model.id, handoff)
        return self.view(caller, model_name)

    def set_threshold(self, caller: Caller, model_name: str, value: str) -> KnowledgeView:
        model = self.catalog.resolve(caller, model_name)
        check_admin(caller, model, "change when it declines")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        if not 0.0 <= number <= 1.0:
            raise InvalidInput(f"The threshold is a score from 0 to 1 (higher declines more), "
                               f"not {value!r}.")
        self.knowledge.set_threshold(model.id, number, chosen_by="admin")
        return self.view(caller, model_name)

    def card(self, caller: Caller, model_name: str) -> ModelCard:
        """The model's full card with what it answers from now (threshold, handoff)."""
        card = self.catalog.card(caller, model_name)
        return replace(card, knowledge=self.view(caller, model_name))

    def view(self, caller: Caller, model_name: str) -> KnowledgeView:
        """What the model answers from and when it declines."""
        model = self.catalog.resolve(caller, model_name)
        live = self._live_number(model)
        return KnowledgeView(
            model_name=self.catalog.shown_name(caller, model),
            entries=self.knowledge.entry_count(model.id, live),
            documents=tuple(self.knowledge.documents(model.id)),
            threshold=self.knowledge.threshold(model.id),
            threshold_by=self.knowledge.threshold_by(model.id),
            handoff=self.knowledge.handoff(model.id), method=self.knowledge.method)

    def _live_number(self, model: ModelRecord) -> int | None:
        with self.db.session() as s:
            live = catalog_store.get_version_by_id(s, model.live_version_id)
        return live.number if live is not None else None


def parse_gap_id(text: str) -> int:
    match = re.fullmatch(r"\s*(?:gap\s*)?#?(\d{1,12})\s*", text or "", re.IGNORECASE)
    if match is None:
        raise InvalidInput(f"A gap is named by its number from `/store gaps MODEL`, not "
                           f"{text!r}.")
    return int(match.group(1))


def check_admin(caller: Caller, model: ModelRecord, action: str) -> None:
    if not (caller.is_admin and model.workspace and model.workspace == caller.workspace):
        raise PermissionDenied(f"Only an admin of the workspace that owns '{model.name}' can "
                               f"{action}.")


def _gap_view(gap: KnowledgeGapRecord, model_name: str) -> GapView:
    return GapView(id=int(gap.id or 0), model_name=model_name, question=gap.question,
                   count=gap.count, first_asked=gap.first_asked, last_asked=gap.last_asked)
