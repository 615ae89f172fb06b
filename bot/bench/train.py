"""`gptstore bench train`: training tokens/s of our loop against transformers Trainer + PEFT.

Both runs, in one process: the bundled SmolLM2-135M (fp32, CPU), the sample FAQ
(engine/data/sample_faq.csv) in the chat template with the loss on answer tokens only, LoRA
r=16 / alpha=32 on all linear projections, AdamW at lr 2e-3, batch 8, one epoch. The baseline
pads per batch (DataCollatorForSeq2Seq), as FACTS measured it (~77 tokens/s).

tokens/s counts real tokens (no padding) over the epoch's wall time (load excluded).
`ratio` = ours / Trainer (goal >= 2). Peak FLOP/s is measured in the same run with a
2048 x 2048 fp32 matmul. FLOPs per token: `6N` is the usual training convention (forward 2N,
activation gradients 2N, weight gradients 2N); with frozen base weights only 4N is needed,
and our loop also skips the output layer on prompt positions. N = all parameters (134.5M,
the output layer shares the embedding).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

FALLBACK = [("How do I reset my password?", "Click Forgot password on the sign-in page."),
            ("Which plans do you offer?", "Free, Pro at 8 euros a month and Team at 15.")] * 20
SAMPLE = Path(__file__).resolve().parents[2] / "engine" / "data" / "sample_faq.csv"


def faq_examples(path: Path = SAMPLE) -> list[list[dict[str, str]]]:
    pairs = FALLBACK
    if path.exists():
        with path.open(encoding="utf-8-sig", newline="") as handle:
            pairs = [(row["question"], row["answer"]) for row in csv.DictReader(handle)]
    return [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            for q, a in pairs]


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


def ours(model: Any, tokenizer: Any, examples: list, lr: float) -> tuple[float, int]:
    from engine.training import TrainConfig, train

    result = train(model, tokenizer, examples, [], TrainConfig(epochs=1, learning_rate=lr))
    result.model.unload()
    return result.train_seconds, result.tokens


def trainer_baseline(model: Any, tokenizer: Any, examples: list, lr: float,
                     folder: Path) -> tuple[float, int]:
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from engine.training_config import LLAMA_LINEAR, encode_all

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
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    peft_model.unload()
    return seconds, sum(len(r["input_ids"]) for r in rows)


def run(args: list[str]) -> dict[str, Any]:
    import tempfile

    import torch
    from transformers.utils import logging as hf_logging

    from engine.hub import BUNDLED_NAME, ModelHub
    from engine.settings import Settings

    hf_logging.disable_progress_bar()
    settings = Settings.from_env().with_(device="cpu")
    model, tokenizer = ModelHub(settings).load(f"bundled:{BUNDLED_NAME}")
    n_params = sum(p.numel() for p in model.parameters())
    examples = faq_examples()
    lr = 2e-3
    peak = peak_flops()
    with tempfile.TemporaryDirectory() as folder:
        base_s, base_tokens = trainer_baseline(model, tokenizer, examples, lr, Path(folder))
    our_s, tokens = ours(model, tokenizer, examples, lr)
    our_rate, base_rate = tokens / our_s, base_tokens / base_s
    return {
        "examples": len(examples),
        "tokens_per_epoch": tokens,
        "threads": torch.get_num_threads(),
        "ours_tokens_per_s": round(our_rate, 1),
        "trainer_tokens_per_s": round(base_rate, 1),
        "ratio": round(our_rate / base_rate, 2),
        "ours_seconds": round(our_s, 1),
        "trainer_seconds": round(base_s, 1),
        "peak_gflops_fp32_matmul": round(peak / 1e9, 1),
        "params": n_params,
        "ours_share_of_peak_6N": round(our_rate * 6 * n_params / peak, 3),
        "ours_share_of_peak_4N": round(our_rate * 4 * n_params / peak, 3),
        "trainer_share_of_peak_6N": round(base_rate * 6 * n_params / peak, 3),
        "note": "2 shared CPU cores; other processes may have competed for them",
    }
