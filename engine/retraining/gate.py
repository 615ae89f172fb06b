"""The gate: whether a retrained candidate may replace the live version."""

from __future__ import annotations

from typing import Any


def gate(live: dict[str, Any], candidate: dict[str, Any]) -> tuple[bool, str]:
    """Whether the candidate may go live: not worse than the live version on the held-out
    set (token F1; exact match breaks nothing when F1 ties). Returns (promote, reason)."""
    live_f1, cand_f1 = live.get("token_f1"), candidate.get("token_f1")
    if live_f1 is None or cand_f1 is None:
        return True, "there is no held-out set to compare on"
    if cand_f1 + 1e-9 >= live_f1:
        return True, f"held-out token F1 {cand_f1:.3f} is not worse than the live {live_f1:.3f}"
    return False, f"held-out token F1 {cand_f1:.3f} is worse than the live version's {live_f1:.3f}"
