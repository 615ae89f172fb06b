"""`gptstore bench serve`: chat throughput of the ChatRunner against plain transformers + PEFT.

One run with the real bundled SmolLM2 on the machine's device:
- batched: 16 concurrent requests over 4 random LoRA adapters (r=16, all projections,
  init_lora_weights=False so they change the answers), served by ChatRunner, against a
  baseline that answers them one at a time with PEFT `set_adapter` + `generate`;
  `ratio` = our tokens/s / baseline tokens/s (goal >= 4), and how many answers are identical;
- single stream: a set of support questions (FAQ entries as context, and plain questions),
  one request at a time on the base model, ChatRunner (lean loop + speculation with the 4-bit
  draft where it is faster, else prompt lookup) against plain `generate`, interleaved per
  prompt so every method sees the same machine load; best of `--rounds` runs per prompt and
  method; identical answers required; goal >= 2x. Prompt lookup alone and the lean loop
  without speculation are timed alongside;
- time to first token p50/p95 of the batched requests, and adapter cold-load time.
Options: --tokens N (new tokens per batched answer, default 48; single stream uses 2N),
--rounds N (single-stream rounds, default 2), --single-only (skip the batched part).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentile
from engine.datasets import SAMPLE_FAQ
from engine.serving.runner import ChatRunner
from engine.settings import Settings
from engine.views import Target
from engine.weights import BUNDLED_NAME, ModelHub

BUNDLED = f"bundled:{BUNDLED_NAME}"
QUESTIONS = [
    "What is the capital of France?", "How do I reset my password?",
    "Give me three tips for writing clear emails.", "What is a LoRA adapter?",
    "Explain photosynthesis in one paragraph.", "Why is the sky blue?",
    "Write a haiku about the sea.", "How do I make a cup of tea?",
    "What is the difference between a list and a tuple in Python?",
    "Name three planets of the solar system.", "How can I stay focused while studying?",
    "What does a database index do?", "Suggest a name for a bakery.",
    "What is machine learning?", "How do vaccines work?", "What should I pack for a hike?",
]
SINGLE_PLAIN = ["How do I reset my password?", "What is a LoRA adapter?",
                "Give me three tips for writing clear emails.",
                "Write a short story about a robot learning to paint."]
FAQ_ROWS = 4  # sample FAQ entries asked with the entry as context


def run(args: list[str]) -> dict[str, Any]:
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    new_tokens = int(args[args.index("--tokens") + 1]) if "--tokens" in args else 48
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 2
    settings = Settings.from_env().with_(max_batch=16, queue_size=64, speculation="auto")
    hub = ModelHub(settings)
    # Every torch call runs on the runner's one worker thread (runner.call): torch's CPU
    # thread pool belongs to the calling thread, and a second pool (say, the main thread's,
    # after it ran a baseline) halves the speed of the runner's small operations on 2 cores.
    runner = ChatRunner(hub, settings)
    try:
        model, tokenizer = runner.call(lambda: hub.load(BUNDLED)).result()
        if "--single-only" in args:
            return {"device": str(hub.device()), "threads": torch.get_num_threads(),
                    "single_stream": _single_stream(runner, hub, model, new_tokens * 2,
                                                    rounds)}
        folder = hub.base_weights_path(BUNDLED)
        with tempfile.TemporaryDirectory() as temp:
            adapters = runner.call(lambda: _make_adapters(folder, Path(temp), hub)).result()
            requests = [(QUESTIONS[i], adapters[i % len(adapters)])
                        for i in range(len(QUESTIONS))]
            cold = runner.call(lambda: _cold_load(hub, adapters[0])).result()
            ours_tps, ours_answers, ttft = _ours_batch(runner, requests, new_tokens)
            base_tps, base_answers = runner.call(lambda: _baseline_batch(
                folder, hub, tokenizer, requests, new_tokens)).result()
            single = _single_stream(runner, hub, model, new_tokens * 2, rounds)
    finally:
        runner.close()
    same = sum(a == b for a, b in zip(ours_answers, base_answers))
    return {
        "device": str(hub.device()),
        "threads": torch.get_num_threads(),
        "new_tokens": new_tokens,
        "requests": len(requests),
        "adapters": len(adapters),
        "baseline_tokens_per_s": round(base_tps, 2),
        "ours_tokens_per_s": round(ours_tps, 2),
        "ratio": round(ours_tps / base_tps, 2),
        "identical_answers": f"{same}/{len(requests)}",
        "first_token_ms_p50": round(statistics.median(ttft)),
        "first_token_ms_p95": round(percentile(ttft, 95)),
        "adapter_cold_load_ms": cold,
        "single_stream": single,
    }


def _make_adapters(folder: Path, temp: Path, hub: ModelHub) -> list[str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    for i in range(4):
        torch.manual_seed(100 + i)
        base = AutoModelForCausalLM.from_pretrained(folder, dtype=hub.dtype())
        config = LoraConfig(r=16, lora_alpha=32, init_lora_weights=False, task_type="CAUSAL_LM",
                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                            "up_proj", "down_proj"])
        peft_model = get_peft_model(base, config)
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # small, so answers change but stay sentences
                param.data.normal_(0, 0.002)
        path = temp / f"adapter-{i}"
        peft_model.save_pretrained(path)
        paths.append(str(path))
    return paths


def _cold_load(hub: ModelHub, adapter: str) -> dict[str, float]:
    from engine.serving.lora import load_lora

    model, _ = hub.load(BUNDLED)
    start = time.perf_counter()
    load_lora(adapter, model.device, model.dtype)
    return {"ours": round((time.perf_counter() - start) * 1000, 1)}


def _prompt(tokenizer: Any, question: str) -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                         add_generation_prompt=True, tokenize=True,
                                         return_dict=False)


def _new_text(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)


def _baseline_batch(folder: Path, hub: ModelHub, tokenizer: Any, requests: list,
                    new_tokens: int) -> tuple[float, list[str]]:
    """One request at a time: PEFT set_adapter + generate (a separate copy of the base)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(folder, dtype=hub.dtype()).to(hub.device())
    paths = sorted({adapter for _, adapter in requests})
    peft_model = PeftModel.from_pretrained(base, paths[0], adapter_name="a0")
    for i, path in enumerate(paths[1:], start=1):
        peft_model.load_adapter(path, adapter_name=f"a{i}")
    peft_model.eval()
    answers, tokens = [], 0
    start = time.perf_counter()
    for question, adapter in requests:
        peft_model.set_adapter(f"a{paths.index(adapter)}")
        ids = _prompt(tokenizer, question)
        with torch.inference_mode():
            out = peft_model.generate(input_ids=torch.tensor([ids], device=hub.device()),
                                      max_new_tokens=new_tokens, do_sample=False)
        produced = [t for t in out[0, len(ids):].tolist() if t != tokenizer.eos_token_id]
        tokens += len(produced)
        answers.append(_new_text(tokenizer, produced))
    return tokens / (time.perf_counter() - start), answers


def _target(adapter: str | None) -> Target:
    return Target(model_name="bench", base_name=BUNDLED_NAME, base_path=BUNDLED,
                  adapter_path=adapter, version=1, version_id=None)


def _ours_batch(runner: ChatRunner, requests: list,
                new_tokens: int) -> tuple[float, list[str], list[int]]:
    runner.answer(_target(None), [{"role": "user", "content": "Hi"}], max_new_tokens=2)  # warm
    start = time.perf_counter()
    futures = [runner.submit(_target(adapter), [{"role": "user", "content": question}],
                             max_new_tokens=new_tokens, timeout=600)
               for question, adapter in requests]
    results = [future.result() for future in futures]
    elapsed = time.perf_counter() - start
    total = sum(r.tokens for r in results)
    return total / elapsed, [r.text for r in results], [r.first_token_ms for r in results]


def _single_conversations() -> list[list[dict[str, str]]]:
    """FAQ questions with their entry as context (support answers), then plain questions."""
    import csv

    faq = SAMPLE_FAQ
    with faq.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:FAQ_ROWS]
    chats = [[{"role": "system", "content": "You are the Acme Cloud Notes support assistant. "
               f"Answer from this FAQ entry.\nQ: {row['question']}\nA: {row['answer']}"},
              {"role": "user", "content": row["question"]}] for row in rows]
    return chats + [[{"role": "user", "content": q}] for q in SINGLE_PLAIN]


def _single_stream(runner: ChatRunner, hub: ModelHub, model: Any, new_tokens: int,
                   rounds: int) -> dict[str, Any]:
    """One request at a time on the base model; every method interleaved per prompt, all on
    the runner's thread. The runner's speculation mode is switched between requests."""
    import os

    import torch

    _, tokenizer = hub.load(BUNDLED)
    chats = _single_conversations()
    modes = {"ours": "auto", "prompt_lookup": "lookup", "lean_loop": "off"}
    runner.answer(_target(None), [{"role": "user", "content": "Hi"}], max_new_tokens=2)  # warm

    def generate(ids: list[int]) -> list[int]:
        with torch.inference_mode():
            out = model.generate(torch.tensor([ids], device=hub.device()),
                                 max_new_tokens=new_tokens, do_sample=False)
        return [t for t in out[0, len(ids):].tolist() if t != tokenizer.eos_token_id]

    names = ("ours", "generate", "prompt_lookup", "lean_loop")
    best: dict[str, list[float]] = {name: [float("inf")] * len(chats) for name in names}
    tokens: dict[str, list[int]] = {name: [0] * len(chats) for name in names}
    texts: dict[str, list[str]] = {name: [""] * len(chats) for name in names}
    for _ in range(rounds):
        for i, chat in enumerate(chats):
            for name in names:
                start = time.perf_counter()
                if name == "generate":
                    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True,
                                                        tokenize=True, return_dict=False)
                    produced = runner.call(lambda: generate(ids)).result()
                    count, text = len(produced), _new_text(tokenizer, produced)
                else:
                    runner.speculation = modes[name]
                    answer = runner.answer(_target(None), chat, max_new_tokens=new_tokens,
                                           timeout=600)
                    count, text = answer.tokens, answer.text
                best[name][i] = min(best[name][i], time.perf_counter() - start)
                tokens[name][i], texts[name][i] = count, text
    runner.speculation = "auto"
    drafted = runner.call(lambda: runner.draft_for(BUNDLED)).result() is not None

    def speed(name: str, part: slice = slice(None)) -> float:
        return sum(tokens[name][part]) / sum(best[name][part])

    faq, plain = slice(0, FAQ_ROWS), slice(FAQ_ROWS, None)
    figures: dict[str, Any] = {
        "prompts": len(chats),
        "with_faq_context": FAQ_ROWS,
        "new_tokens": new_tokens,
        "rounds": rounds,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "speculation": "4-bit draft" if drafted else "prompt lookup (no fast 4-bit kernels)",
        "generate_tokens_per_s": round(speed("generate"), 2),
        "ours_tokens_per_s": round(speed("ours"), 2),
        "ratio": round(speed("ours") / speed("generate"), 2),
        "ratio_faq_context": round(speed("ours", faq) / speed("generate", faq), 2),
        "ratio_plain_questions": round(speed("ours", plain) / speed("generate", plain), 2),
        "identical_answers": f"{sum(a == b for a, b in zip(texts['ours'], texts['generate']))}"
                             f"/{len(chats)}",
    }
    for name in ("prompt_lookup", "lean_loop"):
        figures[f"{name}_tokens_per_s"] = round(speed(name), 2)
        figures[f"ratio_{name}"] = round(speed(name) / speed("generate"), 2)
        same = sum(a == b for a, b in zip(texts[name], texts["generate"]))
        figures[f"identical_answers_{name}"] = f"{same}/{len(chats)}"
    return figures
