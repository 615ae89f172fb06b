"""`gptstore bench retrieval`: which ranking finds the right FAQ entry for a reworded question,
and how well its score separates in-scope from off-topic questions.

The sample FAQ's 46 entries are indexed; its rephrasings (bench/data/sample_faq_rephrased.csv,
each naming the row it rewords) and the off-topic set (bench/data/off_topic.txt) are asked.
For each method (engine/knowledge/ranking.py) and each text an entry's vector stands for
(its question; question and answer; or that with the answer alone weighed in,
ranking.entry_vector, at the chosen ANSWER_WEIGHT and its neighbours):

- `citation`: share of rephrasings whose best entry is the right row;
- the decline threshold chosen on half of the questions (even lines: the threshold that
  maximises off-topic declined minus in-scope declined) and measured on the other half:
  `off_topic_declined` and `in_scope_declined`.

The baseline is keyword ranking (what the store's full-text search does: words, IDF); `ratio`
is the chosen method's citation accuracy over the baseline's. This is the measurement that
chose the method (docs/grounding.md).
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import options
from engine.datasets import SAMPLE_FAQ
from engine.knowledge import ranking
from engine.knowledge.ranking import KeywordIndex, Ranking
from engine.serving.embedder import find_embedder

DATA = Path(__file__).resolve().parent / "data"
METHODS = [("keyword", 0.0), ("embedding", 1.0), ("hybrid", 0.5), ("hybrid", 0.8)]


def load() -> tuple[list[tuple[int, str, str]], list[tuple[int, str]], list[str]]:
    with SAMPLE_FAQ.open(encoding="utf-8-sig", newline="") as handle:
        faq = [(i + 2, r["question"], r["answer"]) for i, r in enumerate(csv.DictReader(handle))]
    with (DATA / "sample_faq_rephrased.csv").open(encoding="utf-8", newline="") as handle:
        reworded = [(int(r["row"]), r["question"]) for r in csv.DictReader(handle)]
    off = [line.strip() for line in (DATA / "off_topic.txt").read_text("utf-8").splitlines()
           if line.strip() and not line.startswith("#")]
    return faq, reworded, off


def pick_threshold(inside: np.ndarray, outside: np.ndarray) -> float:
    """The score that declines the most off-topic and the fewest in-scope questions."""
    best, chosen = -2.0, 0.0
    for t in np.unique(np.concatenate([inside, outside])):
        gain = float(np.mean(outside < t) - np.mean(inside < t))
        if gain > best:
            best, chosen = gain, float(t)
    return chosen


def measure(rank: Ranking, method: str, faq: list, reworded: list, off: list,
            query_in: Any, query_off: Any) -> dict[str, Any]:
    rows = [row for row, _, _ in faq]
    scored = [rank.scores(q, None if query_in is None else query_in[i], method)
              for i, (_, q) in enumerate(reworded)]
    citation = float(np.mean([rows[int(s.argmax())] == row
                              for s, (row, _) in zip(scored, reworded)]))
    inside = np.array([s.max() for s in scored])
    outside = np.array([rank.scores(q, None if query_off is None else query_off[i],
                                    method).max() for i, q in enumerate(off)])
    threshold = pick_threshold(inside[0::2], outside[0::2])
    return {"citation": round(citation, 3), "threshold": round(threshold, 3),
            "off_topic_declined": round(float(np.mean(outside[1::2] < threshold)), 3),
            "in_scope_declined": round(float(np.mean(inside[1::2] < threshold)), 3)}


def run(args: list[str]) -> dict[str, Any]:
    options(args)
    faq, reworded, off = load()
    keyword = KeywordIndex.build([f"{q}\n{a}" for _, q, a in faq])
    with tempfile.TemporaryDirectory() as cache:
        embedder = find_embedder(Path(cache))
        figures: dict[str, Any] = {
            "date": date.today().isoformat(), "load_average": list(os.getloadavg()),
            "entries": len(faq), "rephrased": len(reworded), "off_topic": len(off),
            "embedder": embedder.name if embedder else None}
        query_in = query_off = None
        answer_only = f"question+answer, answer {ranking.ANSWER_WEIGHT:g}"
        vectors: dict[str, Any] = {"question": None, "question+answer": None, answer_only: None}
        if embedder is not None:
            start = time.perf_counter()
            query_in = embedder.embed([q for _, q in reworded])
            figures["embed_ms_per_question"] = round(
                (time.perf_counter() - start) * 1000 / len(reworded), 2)
            query_off = embedder.embed(off)
            both = embedder.embed([f"{q}\n{a}" for _, q, a in faq])
            answers = embedder.embed([a for _, _, a in faq])
            vectors = {"question": embedder.embed([q for _, q, _ in faq]),
                       "question+answer": both}
            # the answer's own share of the vector: the chosen weight and its neighbours
            for w in (0.1, ranking.ANSWER_WEIGHT, 0.2, 0.3):
                vectors[f"question+answer, answer {w:g}"] = ranking.entry_vector(both, answers, w)
        results: dict[str, Any] = {}
        weight = ranking.EMBED_WEIGHT
        try:
            for text, matrix in vectors.items():
                for method, w in METHODS:
                    if method != "keyword" and matrix is None:
                        continue
                    if method == "keyword" and text != "question+answer":
                        continue  # keyword always indexes question and answer
                    ranking.EMBED_WEIGHT = w
                    name = method if method != "hybrid" else f"hybrid {w:.1f}"
                    results[f"{name} ({text})"] = measure(
                        Ranking(keyword, matrix), method, faq, reworded, off, query_in,
                        query_off)
        finally:
            ranking.EMBED_WEIGHT = weight
    figures["methods"] = results
    baseline = results["keyword (question+answer)"]["citation"]
    chosen_name = f"embedding (question+answer, answer {ranking.ANSWER_WEIGHT:g})"
    chosen = results.get(chosen_name)
    if chosen is not None and baseline:
        figures["chosen"] = chosen_name
        figures["ratio"] = round(chosen["citation"] / baseline, 2)
    return figures
