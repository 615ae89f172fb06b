"""Seeded train / validation / test splits, sized so that small Q&A files still get held-out
examples to measure on."""

from __future__ import annotations

import random

SHARE = 0.10  # of the examples held out for each of validation and test
CAP = 200  # more held-out examples only slow evaluation down


def held_out(n: int) -> int:
    """How many examples each held-out split gets from a file of n."""
    if n < 3:
        return 0  # nothing to spare: everything trains
    if n < 20:
        return 1
    return min(CAP, max(2, round(n * SHARE)))


def split(n: int, seed: int = 0, validation: int | bool | None = None) -> dict[str, list[int]]:
    """Indices 0..n-1 split into train, validation and test, the same for the same seed.

    `validation` is given (a count or True) when a separate validation file came with the
    upload: then no validation examples are carved out of this one.
    """
    if n < 0:
        raise ValueError(f"cannot split {n} examples")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = held_out(n)
    n_validation = k if validation is None or validation is False else 0
    test = sorted(order[:k])
    valid = sorted(order[k:k + n_validation])
    train = sorted(order[k + n_validation:])
    return {"train": train, "validation": valid, "test": test}
