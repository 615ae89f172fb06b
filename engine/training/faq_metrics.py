"""The figures that mean something for an FAQ bot: token F1 on the file's own and on
rephrased questions, citation accuracy, and declines (off-topic declined against in-scope
wrongly declined), plus the decline threshold calibrated from retrieval scores.

Pure functions over plain values; the tune job and `gptstore bench grounded` both use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from engine.training.evaluation import token_f1

MAX_WRONGLY_DECLINED = 0.05  # the share of in-scope questions a threshold may turn away


def mean_token_f1(answers: Sequence[str], references: Sequence[str]) -> float:
    """Mean token F1 of the answers against their references (0.0 for no answers)."""
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers for {len(references)} references")
    if not answers:
        return 0.0
    return round(sum(token_f1(a, r) for a, r in zip(answers, references)) / len(answers), 4)


def citation_accuracy(cited: Sequence[Optional[str]], expected: Sequence[str]) -> float:
    """Share of answers whose first cited entry is the entry that holds the answer. An
    answer without a citation (declined, or nothing retrieved) counts as wrong."""
    if len(cited) != len(expected):
        raise ValueError(f"{len(cited)} citations for {len(expected)} questions")
    if not expected:
        return 0.0
    return round(sum(c is not None and c == e for c, e in zip(cited, expected))
                 / len(expected), 4)


def declined_share(declined: Sequence[bool]) -> float:
    """Share of questions that were declined (0.0 for none)."""
    return round(sum(bool(d) for d in declined) / len(declined), 4) if declined else 0.0


@dataclass(frozen=True)
class Calibration:
    """A decline threshold chosen from data: a question whose best retrieval score is below
    `threshold` is declined."""

    threshold: float
    off_topic_declined: float  # share of the off-topic questions it declines
    in_scope_declined: float  # share of the in-scope questions it wrongly declines
    n_in_scope: int
    n_off_topic: int


def declines(scores: Sequence[float], threshold: float) -> list[bool]:
    """Which questions a threshold declines (score below it)."""
    return [s < threshold for s in scores]


def calibrate_threshold(in_scope: Sequence[float], off_topic: Sequence[float], *,
                        max_wrongly_declined: float = MAX_WRONGLY_DECLINED,
                        ) -> Calibration:
    """The threshold that declines the most off-topic questions while declining at most
    `max_wrongly_declined` of the in-scope ones; among equally good thresholds, the middle
    of their range (the widest margin on both sides).

    in_scope / off_topic: the best retrieval score of each question (0..1)."""
    if not in_scope:
        raise ValueError("calibration needs at least one in-scope score")
    values = sorted(set(float(s) for s in list(in_scope) + list(off_topic)))
    # Every distinct outcome is reached by a cut between two neighbouring scores (or
    # outside them all).
    cuts = [0.0] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1e-6]
    best: list[float] = []
    best_off = -1.0
    for cut in cuts:
        wrong = declined_share(declines(in_scope, cut))
        if wrong > max_wrongly_declined + 1e-9:
            continue
        off = declined_share(declines(off_topic, cut))
        if off > best_off + 1e-9:
            best, best_off = [cut], off
        elif abs(off - best_off) <= 1e-9:
            best.append(cut)
    chosen = (best[0] + best[-1]) / 2 if best else 0.0
    if best and best_off <= 0.0:
        chosen = 0.0  # nothing off-topic can be told apart: decline nothing
    chosen = round(min(1.0, max(0.0, chosen)), 4)
    return Calibration(threshold=chosen,
                       off_topic_declined=declined_share(declines(off_topic, chosen)),
                       in_scope_declined=declined_share(declines(in_scope, chosen)),
                       n_in_scope=len(in_scope), n_off_topic=len(off_topic))
