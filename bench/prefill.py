"""`gptstore bench prefill`: time to the first token of an answer with retrieved passages in
the prompt, against plain transformers.

The prompt is what a grounded answer sends: the bundled SmolLM2's chat template with a system
prompt, sample-FAQ entries as retrieved passages and a few turns, about `--tokens` (600)
tokens in all; one request at a time (no other load from this process). Arms, interleaved
in each of `--rounds` (5) rounds, all on the runner's worker thread:
- `runner`: ChatRunner.answer(max_new_tokens=1), the time the runner reports to the first
  token (queue, tokenizing with the chat template, prefill, first token);
- `decoder`: BatchDecoder.add on the token ids (the prefill alone, one forward pass);
- `forward`: the transformers model's own forward over the ids with a cache (its prefill);
- `generate`: transformers `generate` with max_new_tokens=1 (the baseline).
Medians in ms; `ratio` = generate / runner (higher is better). Goal: runner under 300 ms
p50 on an idle 2-core machine.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import datetime, timezone
from typing import Any

from bench.common import faq_examples, options
from engine.weights import BUNDLED_NAME

BUNDLED = f"bundled:{BUNDLED_NAME}"
SYSTEM = ("You are the support assistant of Acme. Answer from the passages below; when they "
          "do not hold the answer, say you do not know.")


def messages_of(tokenizer: Any, tokens: int) -> list[dict[str, str]]:
    """System prompt with FAQ passages, two earlier turns and a question: about `tokens`."""
    faq = faq_examples()
    turns = [{"role": "user", "content": faq[0][0]["content"]},
             {"role": "assistant", "content": faq[0][1]["content"]},
             {"role": "user", "content": faq[1][0]["content"]}]
    passages: list[str] = []
    for example in faq[2:] * 3:
        passages.append(f"[{len(passages) + 1}] {example[0]['content']} "
                        f"{example[1]['content']}")
        system = SYSTEM + "\n\nPassages:\n" + "\n".join(passages)
        messages = [{"role": "system", "content": system}, *turns]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                            tokenize=True, return_dict=False)
        if len(ids) >= tokens:
            return messages
    return messages


def run(args: list[str]) -> dict[str, Any]:
    import torch
    from transformers.utils import logging as hf_logging

    from engine.serving.decoder import BatchDecoder
    from engine.serving.runner import ChatRunner
    from engine.settings import Settings
    from engine.views import Target
    from engine.weights import ModelHub

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    given = options(args, tokens=600, rounds=5)
    settings = Settings.from_env().with_(speculation="off")
    hub = ModelHub(settings)
    runner = ChatRunner(hub, settings)
    target = Target(model_name="bench", base_name=BUNDLED_NAME, base_path=BUNDLED,
                    adapter_path=None, version=None, version_id=None)
    load = [round(x, 2) for x in os.getloadavg()]
    try:
        model, tokenizer = runner.call(lambda: hub.load(BUNDLED)).result()
        messages = messages_of(tokenizer, given["tokens"])
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                            return_dict=False)
        decoder = BatchDecoder(model, max_rows=1, max_len=len(ids) + 8)

        def timed(fn: Any) -> float:
            start = time.perf_counter()
            fn()
            return (time.perf_counter() - start) * 1000

        def decoder_add() -> None:
            decoder.add(ids, None)
            decoder.drop(0)

        def forward() -> None:
            with torch.inference_mode():
                model(torch.tensor([ids]), use_cache=True)

        def generate() -> None:
            with torch.inference_mode():
                model.generate(torch.tensor([ids]), max_new_tokens=1, do_sample=False)

        times: dict[str, list[float]] = {"runner": [], "decoder": [], "forward": [],
                                         "generate": []}
        runner.answer(target, messages, max_new_tokens=1)  # warm up every path once
        for fn in (decoder_add, forward, generate):
            runner.call(lambda fn=fn: fn()).result()
        for r in range(given["rounds"]):
            order = list(times) if r % 2 == 0 else list(reversed(times))
            for arm in order:
                if arm == "runner":
                    times[arm].append(float(runner.answer(target, messages,
                                                          max_new_tokens=1).first_token_ms))
                else:
                    fn = {"decoder": decoder_add, "forward": forward, "generate": generate}[arm]
                    times[arm].append(runner.call(lambda fn=fn: timed(fn)).result())
        threads = runner.call(torch.get_num_threads).result()
    finally:
        runner.close()
    median = {arm: statistics.median(values) for arm, values in times.items()}
    return {
        "prompt_tokens": len(ids),
        "rounds": given["rounds"],
        "threads": threads,
        **{f"{arm}_ms_p50": round(value) for arm, value in median.items()},
        **{f"{arm}_ms": [round(v) for v in values] for arm, values in times.items()},
        "prefill_tokens_per_s": round(len(ids) / (median["decoder"] / 1000), 1),
        "ratio": round(median["generate"] / median["runner"], 2),
        "goal_met": median["runner"] < 300,
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "load_average_before": load,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
