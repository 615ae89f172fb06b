"""`gptstore bench train`: training tokens/s of our loop against transformers Trainer + PEFT.

All runs, in one process: the bundled SmolLM2-135M (fp32, CPU), the sample FAQ
(engine/datasets/samples/sample_faq.csv) in the chat template with the loss on answer tokens only, LoRA
r=16 / alpha=32 on all linear projections, AdamW at lr 2e-3, batch 8. The baseline pads per
batch (DataCollatorForSeq2Seq), as FACTS measured it (~77 tokens/s).

The machine is shared, so the arms are INTERLEAVED: each round trains every arm on the same
chunk of examples (`--chunk`, 16 by default: two optimizer steps), round after round
(`--rounds`, 3), each arm from a fresh adapter; figures are medians over the rounds.
Arms: `ours` (engine.training.loop.train, which picks its torch thread count from the load),
`ours_full_prefix` (the same loop with the shared system prompt computed for every row, as
before it was computed once per batch: `ratio_prefix` = ours / ours_full_prefix),
`trainer` (Trainer as it comes: torch's default thread count) and `trainer_same_threads`
(Trainer run with the thread count ours picked, to separate the loop from the threads).

tokens/s counts real tokens (no padding) over the training call's wall time (model load
excluded). `ratio` = ours / trainer (goal >= 2); `ratio_same_threads` = ours /
trainer_same_threads. Peak FLOP/s: best 2048 x 2048 fp32 matmul seen in the run at either
thread count. FLOPs per token: `6N` is the usual training convention; with frozen base
weights only 4N is needed. N = all parameters (134.5M, the output layer shares the
embedding).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import bundled_model, faq_examples, options


def peak_flops(n: int = 2048, repeat: int = 10) -> float:
    """fp32 matmul FLOP/s on this machine's torch threads (best of `repeat`)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def ours(model: Any, tokenizer: Any, examples: list, lr: float,
         share_prefix: bool = True) -> tuple[float, int]:
    from engine.training import loop
    from engine.training.config import TrainConfig

    least = loop.SHARED_PREFIX_MIN
    loop.SHARED_PREFIX_MIN = least if share_prefix else 0
    try:
        result = loop.train(model, tokenizer, examples, [],
                            TrainConfig(epochs=1, learning_rate=lr))
    finally:
        loop.SHARED_PREFIX_MIN = least
    result.model.unload()
    return result.train_seconds, result.tokens


def trainer_baseline(model: Any, tokenizer: Any, examples: list, lr: float,
                     folder: Path, threads: int | None = None) -> tuple[float, int]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from engine.training.config import LLAMA_LINEAR
    from engine.training.encoding import encode_all

    encoded = encode_all(tokenizer, examples, 1024)
    rows = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}
            for ids, labels in encoded]
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                                  target_modules=list(LLAMA_LINEAR),
                                                  task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(folder), per_device_train_batch_size=8,
                             num_train_epochs=1, learning_rate=lr, warmup_steps=0.1,
                             lr_scheduler_type="cosine", save_strategy="no", report_to=[],
                             logging_strategy="no", use_cpu=True, dataloader_num_workers=0,
                             disable_tqdm=True, seed=0)
    trainer = Trainer(model=peft_model, args=args, train_dataset=rows,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True))
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
        peft_model.unload()
    return seconds, sum(len(r["input_ids"]) for r in rows)


def run(args: list[str]) -> dict[str, Any]:
    import tempfile

    import torch

    from engine.training.threads import busy_threads

    given = options(args, rounds=3, chunk=16)
    settings, model, tokenizer = bundled_model()
    n_params = sum(p.numel() for p in model.parameters())
    examples = faq_examples()
    lr = 2e-3
    default_threads = torch.get_num_threads()
    rates: dict[str, list[float]] = {"ours": [], "ours_full_prefix": [], "trainer": [],
                                     "trainer_same_threads": []}
    peaks, loads, picked = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for r in range(given["rounds"]):
            start = (r * given["chunk"]) % len(examples)
            chunk = (examples + examples)[start:start + given["chunk"]]
            loads.append(round(os.getloadavg()[0], 1))
            same = busy_threads()
            picked.append(same)
            for threads in {default_threads, same}:
                torch.set_num_threads(threads)
                peaks.append(peak_flops(repeat=5))
            torch.set_num_threads(default_threads)
            order = ["trainer", "ours", "trainer_same_threads", "ours_full_prefix"]
            if r % 2:
                order.reverse()  # neither arm always runs first
            for arm in order:
                if arm.startswith("ours"):
                    seconds, tokens = ours(model, tokenizer, chunk, lr, arm == "ours")
                else:
                    seconds, tokens = trainer_baseline(
                        model, tokenizer, chunk, lr, Path(folder),
                        threads=same if arm == "trainer_same_threads" else None)
                rates[arm].append(tokens / seconds)
                print(f"round {r + 1}: {arm} {tokens / seconds:.1f} tokens/s "
                      f"({seconds:.1f} s), load {os.getloadavg()[0]:.1f}", flush=True)
    median = {arm: statistics.median(values) for arm, values in rates.items()}
    peak = max(peaks)
    return {
        "examples_per_round": given["chunk"],
        "rounds": given["rounds"],
        "torch_default_threads": default_threads,
        "threads_ours_picked": picked,
        "load_average_per_round": loads,
        "ours_tokens_per_s": [round(x, 1) for x in rates["ours"]],
        "trainer_tokens_per_s": [round(x, 1) for x in rates["trainer"]],
        "trainer_same_threads_tokens_per_s": [round(x, 1) for x in rates["trainer_same_threads"]],
        "ours_full_prefix_tokens_per_s": [round(x, 1) for x in rates["ours_full_prefix"]],
        "median_ours": round(median["ours"], 1),
        "median_trainer": round(median["trainer"], 1),
        "median_trainer_same_threads": round(median["trainer_same_threads"], 1),
        "ratio": round(median["ours"] / median["trainer"], 2),
        "ratio_same_threads": round(median["ours"] / median["trainer_same_threads"], 2),
        "ratio_prefix": round(median["ours"] / median["ours_full_prefix"], 2),
        "median_ours_full_prefix": round(median["ours_full_prefix"], 1),
        "peak_gflops_fp32_matmul": round(peak / 1e9, 1),
        "params": n_params,
        "ours_share_of_peak_6N": round(median["ours"] * 6 * n_params / peak, 3),
        "ours_share_of_peak_4N": round(median["ours"] * 4 * n_params / peak, 3),
        "trainer_share_of_peak_6N": round(median["trainer"] * 6 * n_params / peak, 3),
        "ours_full_prefix_share_of_peak_4N": round(median["ours_full_prefix"] * 4 * n_params
                                                   / peak, 3),
        "flops_note": "tokens counted are real tokens: with the shared prefix computed "
                                "once, ours does less work per token than 4N",
        "note": "2 shared CPU cores; other processes competed for them (see the load averages)",
    }
