"""`gptstore bench [NAME] [--json]`: runs bench/NAME.py's run(args) and prints its figures."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

KNOWN = {
    "search": "search latency p50/p95 over 100,000 store entries",
    "load": "base model load time: GGUF against the safetensors cache",
    "serve": "chat speed: batched answers against one-at-a-time generate, one stream against "
             "plain generate",
    "train": "training tokens/s: our loop against transformers Trainer + PEFT",
    "tune": "the whole tune job by phase (sample FAQ and a 200-pair file) against the job as "
            "it was: wall time, cores, tokens/s, quality",
    "prefill": "time to first token with ~600 tokens of retrieved passages, against "
               "transformers generate",
    "quality": "token F1 on the sample FAQ after tuning, against the base model",
    "grounded": "answers with sources on the sample FAQ's rephrasings against fine-tune-only; "
                "declines, citations, retrieval time at 100 to 100,000 entries",
    "retrieval": "citation accuracy and decline separation on the sample FAQ's rephrasings: "
                 "sentence embeddings and hybrid against keyword ranking",
    "slack": "Slack adapter: acknowledgement latency under a burst of commands and of mentions, "
             "time to an answer's first characters streamed natively against edits",
    "soak": "two serve + two workers on PostgreSQL and Redis under chat and tune traffic, "
            "a worker, a serve and Redis killed once each",
}


def run_bench(name: str | None, args: list[str], *, as_json: bool = False) -> int:
    if not name:
        if as_json:
            print(json.dumps({"benchmarks": KNOWN}, indent=2))
        else:
            print("Benchmarks (gptstore bench NAME [--json]):")
            for known, what in KNOWN.items():
                print(f"  {known:<8} {what}")
        return 0
    if name not in KNOWN:
        import difflib
        close = difflib.get_close_matches(name, KNOWN, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"Error: there is no benchmark {name!r}.{hint} Known: {', '.join(KNOWN)}.",
              file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"bench.{name}":
            raise
        print(f"Error: the {name} benchmark is not installed in this build.", file=sys.stderr)
        return 1
    figures: dict[str, Any] = module.run(args)
    if as_json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        print(f"bench {name}: {KNOWN[name]}")
        for key, value in _flat(figures):
            print(f"  {key:<34} {_show(value)}")
        if isinstance(figures.get("ratio"), (int, float)):
            print(f"  ours / baseline: {figures['ratio']:.2f}x (higher is better)")
    return 0


def _flat(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested figures as (dotted.key, value) rows, so each sits on its own line."""
    rows: list[tuple[str, Any]] = []
    for key, value in figures.items():
        if isinstance(value, dict) and value:
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)
