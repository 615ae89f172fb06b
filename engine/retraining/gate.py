"""The gate: whether a retrained candidate may replace the live version.

It reads a list of named figures (engine.views.Figure), each measured for the live version
and for the candidate, higher is better. The workflow (engine/workflows/retrain.py) decides
which figures exist; new ones (rephrased questions, off-topic refusal) plug in by being added
to that list. The rule:

1. Refuse when any figure falls below the live version's by more than its tolerance (file
   recall and the live version's own lessons may fall by GPTSTORE_RETRAIN_TOLERANCE, 0.05
   token F1 by default; the new pairs by nothing).
2. Refuse when no figure is better by more than MIN_GAIN: a tie keeps the live version, so a
   candidate that is merely "not measurably worse" never replaces it blindly.
3. Otherwise promote, saying which figures improved.

A figure missing on either side (nothing to measure it on) is listed and takes no part.
"""

from __future__ import annotations

from engine.views import Figure

MIN_GAIN = 0.01
"""A figure counts as improved only when it rises by more than this."""


def gate(figures: list[Figure]) -> tuple[bool, str]:
    """(promote, reason): the reason names every figure that decided it."""
    measured = [f for f in figures if f.live is not None and f.candidate is not None]
    if not measured:
        return False, "there was nothing to compare the candidate with the live version on"
    fell = [f for f in measured if f.candidate < f.live - f.tolerance - 1e-9]
    if fell:
        return False, "; ".join(
            f"{f.name} fell from {f.live:.2f} to {f.candidate:.2f} (at most {f.tolerance:.2f} "
            "allowed)" for f in fell)
    rose = [f for f in measured if f.candidate > f.live + MIN_GAIN]
    if not rose:
        return False, ("no figure improved on the live version by more than "
                       f"{MIN_GAIN:.2f}, and a tie keeps the live version")
    return True, "; ".join(f"{f.name} rose from {f.live:.2f} to {f.candidate:.2f}"
                           for f in rose) + "; nothing fell beyond its tolerance"
