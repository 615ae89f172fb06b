"""`gptstore bench load`: how long loading takes, against its baseline.

model_load(): the bundled SmolLM2 read from its GGUF (transformers de-quantizes every tensor,
the baseline) against the safetensors cache that ModelHub writes once under GPTSTORE_HOME.
`ratio` = GGUF load time / cached load time (higher is better). Goal: cached under 1 s.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from engine.settings import Settings
from engine.weights import BUNDLED_NAME, ModelHub, bundled_gguf

BUNDLED = f"bundled:{BUNDLED_NAME}"


def model_load(settings: Settings | None = None) -> dict[str, Any]:
    """GGUF de-quantizing load against the cached safetensors load (fresh hub each time)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    settings = settings or Settings.from_env().with_(device="cpu")
    gguf = bundled_gguf()
    ModelHub(settings).base_weights_path(BUNDLED)  # make sure the cache exists (converts once)

    start = time.perf_counter()
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    gguf_s = time.perf_counter() - start
    del model
    gc.collect()

    cached = []
    for _ in range(3):
        start = time.perf_counter()
        model, _tokenizer = ModelHub(settings).load(BUNDLED)
        cached.append(time.perf_counter() - start)
        del model
        gc.collect()
    cached_s = min(cached)
    return {
        "gguf_load_s": round(gguf_s, 3),
        "cached_load_s": round(cached_s, 3),
        "cached_load_runs_s": [round(c, 3) for c in cached],
        "cached_under_1s": cached_s < 1.0,
        "ratio": round(gguf_s / cached_s, 1),
    }


def run(args: list[str]) -> dict[str, Any]:
    """Both load benchmarks: the base model's load (issue 2) and chat load over the Slack
    HTTP endpoint (issue 9). `--part model` or `--part chat` runs one of them."""
    part = args[args.index("--part") + 1] if "--part" in args[:-1] else "all"
    figures: dict[str, Any] = {}
    if part in ("all", "model"):
        figures["model"] = model_load()
        figures["ratio"] = figures["model"]["ratio"]
    if part in ("all", "chat"):
        from bench.chat_load import chat_load

        figures["chat"] = chat_load()
    return figures
