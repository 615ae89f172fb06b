"""Ranking a model's entries for a question: keyword (IDF-weighted word coverage, BM25 to
break ties), sentence embeddings (cosine), or both (hybrid). numpy only; the embedder is
passed in. Measured on the sample FAQ's rephrasings (`gptstore bench retrieval`), embeddings
alone ranked best, so the service uses "embedding" when the embedder is installed and
"keyword" when it is not; "hybrid" stays for the measurement.

Every method returns scores in 0..1 so one decline threshold means the same thing whatever
ranked the entries:
- keyword: the share of the question's informative words (IDF-weighted, stop words left
  out, light stemming) that the entry holds; words the model's files never use count in full,
  so an off-topic question scores low. BM25 breaks ties between entries.
- embedding: the question's vector against the entry's, clipped at 0. An entry's vector
  (entry_vector) is (1 - ANSWER_WEIGHT) * the unit vector of its question and answer plus
  ANSWER_WEIGHT * the unit vector of its answer alone, so one product gives both
  similarities, weighted: a question asked in other words than the entry's question often
  shares the answer's words instead (FAQ retrieval's query-answer relevance).
- hybrid: EMBED_WEIGHT * embedding + (1 - EMBED_WEIGHT) * keyword.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence

import numpy as np

EMBED_WEIGHT = 0.8  # chosen by measurement: docs/grounding.md
# The answer's own share of an entry's vector, chosen by measurement on the sample FAQ's
# rephrasings (`gptstore bench retrieval`): right entry first 90.2% at 0, 92.4% at 0.15-0.2,
# 89.1% at 0.3 (docs/grounding.md).
ANSWER_WEIGHT = 0.15
K1, B = 1.2, 0.75  # BM25's usual constants

STOP = frozenset("""a an and are as at be been but by can could do does did for from had has
have how i if in into is it its me my of on or our please should so than that the their them
then there these they this to us was we were what when where which who why will with would
you your yours i'm im don't dont can't cant get got want need tell know about any some""".split())


class Embeds(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def stem(word: str) -> str:
    """A light suffix strip, enough for plural and tense rephrasings (reset/resets/resetting)."""
    for suffix in ("ing", "edly", "ed", "ies", "es", "s", "ly"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if suffix == "ies":
                word += "y"
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # resett -> reset
    return word


def terms(text: str) -> list[str]:
    return [stem(w) for w in re.findall(r"[0-9a-z]+(?:'[a-z]+)?", (text or "").lower())
            if w not in STOP]


@dataclass
class KeywordIndex:
    """An inverted index of the entries' words (question and answer)."""

    postings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    size: int = 0

    @classmethod
    def build(cls, documents: Sequence[str]) -> "KeywordIndex":
        found: dict[str, tuple[list[int], list[int]]] = {}
        lengths = np.zeros(len(documents), np.float32)
        for row, document in enumerate(documents):
            words = terms(document)
            lengths[row] = len(words)
            for word, tf in Counter(words).items():
                docs, tfs = found.setdefault(word, ([], []))
                docs.append(row)
                tfs.append(tf)
        postings = {w: (np.asarray(d, np.int64), np.asarray(t, np.float32))
                    for w, (d, t) in found.items()}
        return cls(postings, lengths, len(documents))

    def idf(self, word: str) -> float:
        n = len(self.postings[word][0]) if word in self.postings else 0
        return math.log(1.0 + (self.size - n + 0.5) / (n + 0.5))

    def scores(self, question: str) -> np.ndarray:
        """Per entry: IDF-weighted share of the question's words it holds (0..1), plus a
        BM25 tie-breaker smaller than any coverage step."""
        words = list(dict.fromkeys(terms(question)))
        coverage = np.zeros(self.size, np.float32)
        if not words or self.size == 0:
            return coverage
        weights = {w: self.idf(w) for w in words}
        total = sum(weights.values()) or 1.0
        bm25 = np.zeros(self.size, np.float32)
        mean_length = float(self.lengths.mean()) or 1.0
        for word in words:
            if word not in self.postings:
                continue
            docs, tfs = self.postings[word]
            coverage[docs] += weights[word] / total
            norm = K1 * (1 - B + B * self.lengths[docs] / mean_length)
            bm25[docs] += weights[word] * tfs * (K1 + 1) / (tfs + norm)
        if bm25.max() > 0:
            coverage += 1e-3 * bm25 / bm25.max()
        return np.clip(coverage, 0.0, 1.0)


@dataclass
class Ranking:
    """A version's entries, ready to be ranked: the keyword index and the vectors."""

    keyword: KeywordIndex
    vectors: Optional[np.ndarray]  # (entries, dimensions) unit rows, or None: keyword only

    def scores(self, question: str, query_vector: Optional[np.ndarray], method: str
               ) -> np.ndarray:
        keyword = self.keyword.scores(question)
        if method == "keyword" or self.vectors is None or query_vector is None:
            return keyword
        cosine = np.clip(self.vectors @ query_vector, 0.0, 1.0)
        if method == "embedding":
            return cosine
        return EMBED_WEIGHT * cosine + (1.0 - EMBED_WEIGHT) * keyword


def entry_vector(both: np.ndarray, answers: np.ndarray, weight: Optional[float] = None
                 ) -> np.ndarray:
    """Entries' ranking vectors from the unit vectors of question + answer (`both`) and of
    the answer alone: a weighted sum, so a question's product with it is the weighted sum of
    the two cosines (at most 1)."""
    w = ANSWER_WEIGHT if weight is None else weight
    return ((1.0 - w) * np.asarray(both, np.float32) + w * np.asarray(answers, np.float32)
            ).astype(np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, np.float32).tobytes()


def from_bytes(data: Optional[bytes], dimensions: int) -> np.ndarray:
    if not data:
        return np.zeros(dimensions, np.float32)
    return np.frombuffer(data, np.float32)
