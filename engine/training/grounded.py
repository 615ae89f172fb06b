"""Grounded training examples: a file's Q&A entries put into the model's context the way the
chat path puts retrieved entries there (`build_prompt_messages`), so that the adapter learns
to copy an answer from its context, and, with the right entry missing, still to answer from
what it was trained on.

For each entry the tune job adds one grounded example beside the plain one:
- mostly the right entry among the entries nearest to it (the distractors that retrieval
  returns with it), first (as a good retrieval puts it) or at a random place;
- in a share of `missing_share` (a fifth), only the distractors, and the same answer.
The question is the entry's own or one of its rephrasings, alternately.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from engine.knowledge.prompt import Passage, build_prompt_messages

MISSING_SHARE = 0.2  # examples trained with the right entry left out of the context
CONTEXT_ENTRIES = 3  # entries in a grounded example's context, at most
# How many entries a grounded example's context holds, drawn per example. Chat puts the
# entries within a small margin of the best into the context, which is one entry for most
# questions (docs/grounding.md), so training sees one as often as two or three.
CONTEXT_SIZES = (1, 1, 2, 3)


@dataclass(frozen=True)
class Entry:
    """One Q&A entry of a tuned file, as cited ("faq.csv, row 12")."""

    ref: str
    question: str
    answer: str

    def passage(self, score: float = 0.0) -> Passage:
        return Passage(ref=self.ref, question=self.question, text=self.answer, score=score,
                       origin="file")


@dataclass(frozen=True)
class GroundedExample:
    """A training conversation and what it was built from (for tests and the report)."""

    messages: list[dict[str, str]]
    entry: int  # index of the entry whose answer it trains
    context: tuple[int, ...]  # indices of the entries put into its context, in order
    question: str

    @property
    def has_entry(self) -> bool:
        return self.entry in self.context


def grounded_examples(entries: Sequence[Entry], neighbours: Mapping[int, Sequence[int]],
                      *, system: str = "", rephrasings: Mapping[int, Sequence[str]] | None = None,
                      context_entries: int = CONTEXT_ENTRIES,
                      context_sizes: Sequence[int] | None = None,
                      missing_share: float = MISSING_SHARE, seed: int = 0,
                      every_rephrased: bool = False) -> list[GroundedExample]:
    """One grounded example per entry.

    neighbours: for each entry index, the other entries nearest to it, best first (the
    distractors; the entry itself is skipped if present). rephrasings: other wordings of
    each entry's question, used for every other example (for every example with
    every_rephrased). context_sizes: the context's size is drawn from these per example
    (None: always context_entries); a context without the entry keeps at least one."""
    if not 0.0 <= missing_share <= 1.0:
        raise ValueError(f"missing_share must be within 0..1, not {missing_share}")
    rng = random.Random(seed)
    n = len(entries)
    missing = set(rng.sample(range(n), round(missing_share * n))) if n else set()
    out: list[GroundedExample] = []
    for i, entry in enumerate(entries):
        others = [j for j in neighbours.get(i, ()) if j != i and 0 <= j < n]
        others = list(dict.fromkeys(others))
        if len(others) < context_entries:  # too few neighbours: fill with random entries
            pool = [j for j in range(n) if j != i and j not in others]
            rng.shuffle(pool)
            others += pool
        size = min(context_entries, rng.choice(list(context_sizes))) if context_sizes \
            else context_entries
        if i in missing:
            context = others[:max(1, size)]
        else:
            context = others[:size - 1]
            place = 0 if rng.random() < 0.5 else rng.randrange(len(context) + 1)
            context.insert(place, i)
        wordings = list((rephrasings or {}).get(i, ()))
        rephrased = wordings and (every_rephrased or i % 2)
        question = wordings[(i // 2) % len(wordings)] if rephrased else entry.question
        passages = [entries[j].passage() for j in context]
        messages = build_prompt_messages(system, [], question, passages)
        messages.append({"role": "assistant", "content": entry.answer})
        out.append(GroundedExample(messages=messages, entry=i, context=tuple(context),
                                   question=question))
    return out


def nearest_entries(entries: Sequence[Entry], search: Callable[[str], Sequence[str]],
                    limit: int = CONTEXT_ENTRIES) -> dict[int, list[int]]:
    """For each entry, the indices of the other entries that `search` (question -> refs,
    best first) returns for its question: the distractors retrieval would show with it."""
    index = {entry.ref: i for i, entry in enumerate(entries)}
    found: dict[int, list[int]] = {}
    for i, entry in enumerate(entries):
        refs = search(entry.question)
        found[i] = [index[r] for r in refs if r in index and index[r] != i][:limit]
    return found
