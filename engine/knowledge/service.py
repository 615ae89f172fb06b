"""`Knowledge`: what each model answers from, how a question is matched to it, and what it
could not answer. Entries live in the database (storage/knowledge.py); each process keeps a
ranking (keyword index and embedding matrix) per model version, rebuilt when the entries'
revision (bumped in the transaction that changes them) moves, so several serve processes
stay in step."""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from engine.knowledge.documents import split_passages
from engine.knowledge.prompt import Passage
from engine.knowledge.ranking import (
    Embeds,
    KeywordIndex,
    Ranking,
    entry_vector,
    from_bytes,
    terms,
    to_bytes,
)
from engine.serving.embedder import find_embedder
from storage import knowledge as store
from storage.db import Database
from storage.tables import KnowledgeEntryRecord, KnowledgeGapRecord

# Where a model declines when nobody tuned or set its threshold, per method (measured on the
# sample FAQ's rephrasings and the off-topic set: docs/grounding.md).
DEFAULT_THRESHOLDS = {"embedding": 0.36, "hybrid": 0.33, "keyword": 0.25}
CONTEXT_K = 3  # entries put into the model's context, at most
# Entries further than this below the best one stay out of the context: a distractor the
# question does not point to makes a small model copy the wrong entry more often than it
# helps (measured: docs/grounding.md). On the sample FAQ this leaves one entry for 80% of
# rephrased questions, and the right one within the rest for 94%.
CONTEXT_MARGIN = 0.05
SOURCE_MARGIN = 0.05  # further sources are shown when this close to the best one
# A declined question joins an open gap at least this close (cosine; word overlap for keyword).
GAP_SIMILAR = {"embedding": 0.7, "hybrid": 0.7, "keyword": 0.6}
CACHED_VERSIONS = 64
DECLINE = "I can't answer that from my files."
NO_HANDOFF = "Please ask a person on your team; an admin can answer it with `/store gaps`."


GAVE_ENTRY = 0.5  # word overlap (F1) past which an answer counts as giving an entry


def _overlap(answer: str, text: str) -> float:
    """Word-overlap F1 of an answer and an entry's text (lower case, punctuation aside)."""
    ours = Counter(re.findall(r"\w+", answer.lower()))
    theirs = Counter(re.findall(r"\w+", text.lower()))
    common = sum((ours & theirs).values())
    if not common:
        return 0.0
    precision, recall = common / sum(ours.values()), common / sum(theirs.values())
    return 2 * precision * recall / (precision + recall)


def decline_text(handoff: str) -> str:
    """What a model says instead of inventing an answer: one sentence, then who can help."""
    return f"{DECLINE} {handoff.strip() or NO_HANDOFF}"


@dataclass(frozen=True)
class Retrieval:
    """A question matched against a model's knowledge."""

    passages: tuple[Passage, ...]  # best first, up to CONTEXT_K: what goes into context
    best: float  # the best score, 0 when the model has no entries
    threshold: float
    has_knowledge: bool  # False: the model has no entries; it answers from its weights alone

    @property
    def in_scope(self) -> bool:
        return not self.has_knowledge or self.best >= self.threshold

    @property
    def context(self) -> tuple[Passage, ...]:
        """The entries that go into the model's context: the best, and any nearly as close."""
        if not self.passages:
            return ()
        return tuple(p for p in self.passages if p.score >= self.best - CONTEXT_MARGIN)

    @property
    def copyable(self) -> tuple[str, ...]:
        """The context's Q&A answers (not document passages): an answer that starts giving
        one of them word for word is held to it (engine.serving.copying)."""
        return tuple(p.text for p in self.context if p.origin != "document")

    def sources_for(self, answer: str) -> tuple[Passage, ...]:
        """The sources shown under `answer`: the context entry the answer gives (most of its
        words are that entry's) first, then the others of `sources`."""
        shown = self.sources
        if not shown:
            return ()
        overlap = [(_overlap(answer, p.text), i) for i, p in enumerate(self.context)]
        best, at = max(overlap, default=(0.0, -1))
        if best < GAVE_ENTRY:
            return shown
        gave = self.context[at]
        return (gave,) + tuple(p for p in shown if p.ref != gave.ref)

    @property
    def sources(self) -> tuple[Passage, ...]:
        """The entries shown under the answer: the best, and any nearly as close."""
        if not self.in_scope or not self.passages:
            return ()
        floor = max(self.threshold, self.best - SOURCE_MARGIN)
        return tuple(p for p in self.passages if p.score >= floor)


@dataclass
class _Cached:
    revision: int
    rows: list[KnowledgeEntryRecord]
    ranking: Ranking


class Knowledge:
    """Index, search and curate a model's knowledge. `embedder`: a factory called once, on
    first need, returning the sentence embedder or None (then keyword ranking only)."""

    def __init__(self, db: Database, clock: Callable[[], datetime], *,
                 embedder: Optional[Callable[[], Optional[Embeds]]] = None) -> None:
        self.db = db
        self.clock = clock
        self._factory = embedder
        self._embedder: Optional[Embeds] = None
        self._resolved = embedder is None
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple[int, Optional[int]], _Cached] = OrderedDict()

    @classmethod
    def open(cls, db: Database, clock: Callable[[], datetime], cache_dir: Path) -> "Knowledge":
        """The service with the installed embedder (extracted under `cache_dir` on first
        use), or keyword ranking when its package is absent."""
        return cls(db, clock, embedder=lambda: find_embedder(cache_dir))

    # -- the embedder ----------------------------------------------------------------------------

    @property
    def embedder(self) -> Optional[Embeds]:
        with self._lock:
            if not self._resolved:
                self._resolved = True
                self._embedder = self._factory() if self._factory else None
            return self._embedder

    @property
    def method(self) -> str:
        return "embedding" if self.embedder is not None else "keyword"

    def _vectors(self, texts: Sequence[str]) -> Optional[np.ndarray]:
        embedder = self.embedder
        return embedder.embed(list(texts)) if embedder is not None and texts else None

    def _entry_vectors(self, entries: Sequence[tuple[str, str, str]]) -> Optional[np.ndarray]:
        """The vectors entries (origin, question, text) are ranked by (entry_vector)."""
        texts = ([_embedded_text(o, q, t) for o, q, t in entries]
                 + [t.strip() or q.strip() for _, q, t in entries])
        vectors = self._vectors(texts)  # one call: the embedder batches them together
        if vectors is None:
            return None
        return entry_vector(vectors[:len(entries)], vectors[len(entries):])

    # -- indexing --------------------------------------------------------------------------------

    def index_examples(self, model_id: int, version: Optional[int], file_name: str,
                       rows: Iterable[tuple[int, str, str]]) -> int:
        """The Q&A rows (row number, question, answer) of the file `version` was tuned on,
        replacing that file's entries of that version. Returns the entries stored."""
        rows = [(int(n), q.strip(), a.strip()) for n, q, a in rows if q.strip() and a.strip()]
        return self._replace(model_id, version, "file", file_name, [
            (n, f"{file_name}, row {n}", q, a) for n, q, a in rows])

    def index_passages(self, model_id: int, file_name: str,
                       passages: Sequence[tuple[str, str]]) -> int:
        """A document's passages (heading, text), for every version of the model."""
        return self._replace(model_id, None, "document", file_name, [
            (i, f"{file_name}, passage {i}", heading, text)
            for i, (heading, text) in enumerate(passages, start=1)])

    def _replace(self, model_id: int, version: Optional[int], origin: str, source: str,
                 items: list[tuple[int, str, str, str]]) -> int:
        vectors = self._entry_vectors([(origin, q, t) for _, _, q, t in items])
        now = self.clock()
        records = [KnowledgeEntryRecord(
            model_id=model_id, version=version, origin=origin, source=source, position=n,
            ref=ref, question=q, text=t, created_at=now,
            embedding=to_bytes(vectors[i]) if vectors is not None else None)
            for i, (n, ref, q, t) in enumerate(items)]
        with self.db.session() as s:
            return store.replace_entries(s, model_id, version, origin, source, records)

    def index_curated(self, model_id: int, pairs: Sequence[tuple[int, str, str]]) -> int:
        """The model's approved curated pairs (id, question, answer), for every version,
        replacing the ones indexed before (a rejected pair stops answering). Returns the
        entries stored."""
        return self._replace(model_id, None, "curated", "", [
            (n, f"curated pair {n}", q.strip(), a.strip()) for n, q, a in pairs
            if q.strip() and a.strip()])

    def add_document(self, model_id: int, file_name: str, text: str) -> int:
        """A document's text, cut into passages every version answers from (replacing an
        earlier upload of the same name). Returns the passages stored."""
        return self.index_passages(model_id, file_name, split_passages(text))

    def add_answered_gap(self, model_id: int, question: str, answer: str,
                         gap_id: Optional[int] = None, origin: str = "gap") -> int:
        """One more entry every version answers from (an answered gap, a curated pair).
        Returns its id."""
        vectors = self._entry_vectors([(origin, question, answer)])
        with self.db.session() as s:
            entry = store.add_entry(s, KnowledgeEntryRecord(
                model_id=model_id, version=None, origin=origin, source="",
                position=gap_id or 0, ref=f"gap {gap_id}" if gap_id else "curated pair",
                question=question.strip(), text=answer.strip(), created_at=self.clock(),
                embedding=to_bytes(vectors[0]) if vectors is not None else None))
            return int(entry.id or 0)

    # -- searching -------------------------------------------------------------------------------

    def search(self, model_id: int, version: Optional[int], question: str, k: int = 4
               ) -> list[Passage]:
        """The `k` entries closest to `question`, best first, scores 0..1."""
        cached = self._ranking(model_id, version)
        if cached is None or not question.strip():
            return []
        query = self._vectors([question]) if cached.ranking.vectors is not None else None
        scores = cached.ranking.scores(question, query[0] if query is not None else None,
                                       self.method)
        top = np.argsort(-scores, kind="stable")[:max(1, k)]
        return [_passage(cached.rows[i], float(scores[i])) for i in top]

    def score(self, model_id: int, version: Optional[int], question: str) -> float:
        found = self.search(model_id, version, question, k=1)
        return found[0].score if found else 0.0

    def retrieve(self, model_id: int, version: Optional[int], question: str) -> Retrieval:
        """What the chat path needs: the passages for context, and whether to decline."""
        passages = self.search(model_id, version, question, k=CONTEXT_K)
        return Retrieval(passages=tuple(passages),
                         best=passages[0].score if passages else 0.0,
                         threshold=self.threshold(model_id), has_knowledge=bool(passages))

    def entry_count(self, model_id: int, version: Optional[int]) -> int:
        with self.db.session() as s:
            return store.count(s, model_id, version)

    def _ranking(self, model_id: int, version: Optional[int]) -> Optional[_Cached]:
        """The version's ranking, from this process's cache while the model's revision is
        unchanged; None when it has no entries."""
        with self.db.session() as s:
            revision = store.revision(s, model_id)
        if revision == 0:
            return None
        key = (model_id, version)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.revision == revision:
                self._cache.move_to_end(key)
                return cached if cached.rows else None
        with self.db.session() as s:  # read after the revision: never older than it
            rows = store.entries(s, model_id, version)
            vectors = self._matrix(s, rows)
        built = _Cached(revision, rows, Ranking(
            KeywordIndex.build([f"{r.question}\n{r.text}" for r in rows]), vectors))
        with self._lock:
            self._cache[key] = built
            while len(self._cache) > CACHED_VERSIONS:
                self._cache.popitem(last=False)
        return built if rows else None

    def _matrix(self, s, rows: list[KnowledgeEntryRecord]) -> Optional[np.ndarray]:
        """The entries' vectors; those stored without one (indexed while the embedder was
        missing) are embedded now and written back."""
        if self.embedder is None or not rows:
            return None
        missing = [r for r in rows if not r.embedding]
        if missing:
            fresh = self._entry_vectors([(r.origin, r.question, r.text) for r in missing])
            for record, vector in zip(missing, fresh if fresh is not None else []):
                record.embedding = to_bytes(vector)
                s.add(record)
        dims = len(next(r.embedding for r in rows if r.embedding)) // 4  # type: ignore
        return np.stack([from_bytes(r.embedding, dims) for r in rows]).astype(np.float32)

    # -- the decision's settings ---------------------------------------------------------------

    def threshold(self, model_id: int) -> float:
        with self.db.session() as s:
            record = store.settings_of(s, model_id)
        if record is not None and record.threshold is not None:
            return float(record.threshold)
        return DEFAULT_THRESHOLDS[self.method]

    def threshold_by(self, model_id: int) -> str:
        with self.db.session() as s:
            record = store.settings_of(s, model_id)
        return record.threshold_by if record is not None and record.threshold is not None \
            else "default"

    def set_threshold(self, model_id: int, value: float, chosen_by: str = "admin") -> None:
        """Store the score under which the model declines (tuning: chosen from data)."""
        with self.db.session() as s:
            store.save_settings(s, model_id, self.clock(), threshold=float(value),
                                threshold_by=chosen_by)

    def handoff(self, model_id: int) -> str:
        with self.db.session() as s:
            record = store.settings_of(s, model_id)
        return record.handoff if record is not None else ""

    def set_handoff(self, model_id: int, text: str) -> None:
        with self.db.session() as s:
            store.save_settings(s, model_id, self.clock(), handoff=text)

    def documents(self, model_id: int) -> list[tuple[str, int]]:
        with self.db.session() as s:
            return store.documents(s, model_id)

    # -- gaps ------------------------------------------------------------------------------------

    def record_gap(self, model_id: int, workspace: str, question: str, asker: str = "") -> int:
        """Count a declined question asked in `workspace` by `asker` (Caller.user): into the
        open gap it rephrases, or a new one; the ask is kept apart so that forget_asker and
        purge_gaps_before can take it out again. Returns the gap's id."""
        vector = self._vectors([question])
        now = self.clock()
        with self.db.session() as s:
            gaps = store.open_gaps(s, model_id, workspace)
            match = _closest_gap(gaps, question, vector[0] if vector is not None else None,
                                 GAP_SIMILAR[self.method])
            if match is not None:
                match.count += 1
                match.last_asked = now
                s.add(match)
                store.add_ask(s, int(match.id or 0), asker, question, now)
                return int(match.id or 0)
            record = store.add_gap(s, KnowledgeGapRecord(
                model_id=model_id, workspace=workspace, question=question.strip(),
                first_asked=now, last_asked=now,
                embedding=to_bytes(vector[0]) if vector is not None else None))
            store.add_ask(s, int(record.id or 0), asker, question, now)
            return int(record.id or 0)

    def forget_asker(self, asker: str) -> int:
        """Take `asker`'s questions out of every gap (forget-me). Returns the asks removed."""
        with self.db.session() as s:
            gone = store.remove_asks(s, asker=asker)
            self._settle(s, gone)
        return sum(len(words) for words in gone.values())

    def purge_gaps_before(self, cutoff: datetime) -> int:
        """Log retention for gaps: asks made before `cutoff` go, and so do open gaps last
        asked before it. Returns the asks and gaps removed."""
        with self.db.session() as s:
            gone = store.remove_asks(s, before=cutoff)
            removed = sum(len(words) for words in gone.values())
            self._settle(s, gone)
            stale = store.open_gaps_before(s, cutoff)
            for record in stale:
                store.delete_gap(s, record)
        return removed + len(stale)

    def _settle(self, s, gone: dict[int, list[str]]) -> None:
        """Gaps after some of their asks were deleted: the count falls by as many; an open
        gap left with none is deleted, and so is one worded by a deleted ask with no ask
        left to take its words from (asks made before migration 0020 were not kept); one
        still asked takes the earliest remaining ask's words and dates."""
        for gap_id, words in gone.items():
            record = store.gap(s, gap_id)
            if record is None:
                continue
            left = store.asks_of(s, gap_id)
            record.count = max(len(left), record.count - len(words))
            worded_by_them = record.question in words
            if record.state == "open" and (record.count <= 0 or (worded_by_them and not left)):
                store.delete_gap(s, record)
                continue
            if left:
                record.last_asked = max(a.asked_at for a in left)
                if worded_by_them:
                    record.question, record.first_asked = left[0].question, left[0].asked_at
                    vector = self._vectors([record.question])
                    record.embedding = to_bytes(vector[0]) if vector is not None else None
            s.add(record)

    def open_gaps(self, model_id: int, workspace: str) -> list[KnowledgeGapRecord]:
        with self.db.session() as s:
            return store.open_gaps(s, model_id, workspace)

    def gap(self, gap_id: int) -> Optional[KnowledgeGapRecord]:
        with self.db.session() as s:
            return store.gap(s, gap_id)

    def answer_gap(self, gap_id: int, answer: str, answered_by: str) -> int:
        """Close a gap with its answer, which every version answers from at once. Returns
        the new entry's id."""
        record = self.gap(gap_id)
        if record is None:
            raise LookupError(gap_id)
        entry_id = self.add_answered_gap(record.model_id, record.question, answer, gap_id)
        with self.db.session() as s:
            record = store.gap(s, gap_id)
            if record is not None:
                record.state, record.answer, record.entry_id = "answered", answer, entry_id
                record.answered_by, record.answered_at = answered_by, self.clock()
                s.add(record)
        return entry_id


def _embedded_text(origin: str, question: str, text: str) -> str:
    """What an entry's main vector stands for: its question and its answer (or a passage's
    heading and text); measured better than the question alone (docs/grounding.md)."""
    return f"{question.strip()}\n{text.strip()}".strip()


def _passage(record: KnowledgeEntryRecord, score: float) -> Passage:
    return Passage(ref=record.ref, question=record.question, text=record.text,
                   score=round(max(0.0, min(1.0, score)), 4), origin=record.origin)


def _closest_gap(gaps: list[KnowledgeGapRecord], question: str,
                 vector: Optional[np.ndarray], floor: float) -> Optional[KnowledgeGapRecord]:
    best, found = floor, None
    words = set(terms(question))
    for gap in gaps:
        if vector is not None and gap.embedding:
            similarity = float(from_bytes(gap.embedding, len(vector)) @ vector)
        else:
            theirs = set(terms(gap.question))
            similarity = len(words & theirs) / max(1, len(words | theirs))
        if similarity >= best:
            best, found = similarity, gap
    return found
