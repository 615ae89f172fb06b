"""What the benchmarks share: option parsing, percentiles, the sample FAQ as chat examples,
and the bundled model on the CPU."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from engine.datasets import SAMPLE_FAQ


def options(args: list[str], **defaults: Any) -> dict[str, Any]:
    """`--key value` pairs (dashes in keys become underscores), each converted to the type of
    its default when there is one."""
    found: dict[str, Any] = dict(defaults)
    for i in range(0, len(args) - 1, 2):
        key = args[i].lstrip("-").replace("-", "_")
        default = defaults.get(key)
        found[key] = type(default)(args[i + 1]) if default is not None else args[i + 1]
    return found


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank (0 <= q <= 100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def faq_examples(path: Path = SAMPLE_FAQ) -> list[list[dict[str, str]]]:
    """The sample FAQ's pairs as chat examples."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        pairs = [(row["question"], row["answer"]) for row in csv.DictReader(handle)]
    return [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            for q, a in pairs]


def bundled_model() -> tuple[Any, Any, Any]:
    """(settings, model, tokenizer): the bundled base on the CPU, loaded from its cache."""
    from transformers.utils import logging as hf_logging

    from engine import bundled
    from engine.settings import Settings
    from engine.weights import ModelHub

    hf_logging.disable_progress_bar()
    settings = Settings.from_env().with_(device="cpu")
    model, tokenizer = ModelHub(settings).load(bundled.PATH)
    return settings, model, tokenizer
