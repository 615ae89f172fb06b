"""`gptstore bench quality`: does a tune with the defaults know the sample FAQ's answers?

The bundled SmolLM2-135M (fp32, CPU) answers every question of engine/data/sample_faq.csv
greedily before and after training, scored by mean token F1 against the file's answers.
The training is what the live version of `gptstore tune` gets: every example of the file, the
default TrainConfig, for the epochs the default picks for the file's training split.
`ratio` = F1 after / F1 before. Goal: F1 after >= 0.8.
"""

from __future__ import annotations

import time
from typing import Any

from bot.bench.train import faq_examples


def run(args: list[str]) -> dict[str, Any]:
    from transformers.utils import logging as hf_logging

    from engine.evaluation import evaluate
    from engine.hub import BUNDLED_NAME, ModelHub
    from engine.settings import Settings
    from engine.splits import split
    from engine.training import TrainConfig, default_epochs, train

    hf_logging.disable_progress_bar()
    settings = Settings.from_env().with_(device="cpu")
    model, tokenizer = ModelHub(settings).load(f"bundled:{BUNDLED_NAME}")
    examples = faq_examples()
    epochs = default_epochs(len(split(len(examples))["train"]))
    budget = 96
    start = time.perf_counter()
    before = evaluate(model, tokenizer, examples, budget)
    eval_s = time.perf_counter() - start
    result = train(model, tokenizer, examples, [], TrainConfig(epochs=epochs))
    after = evaluate(result.model, tokenizer, examples, budget, with_answers=True)
    worst = sorted(after["answers"], key=lambda a: a["f1"])[:3]
    result.model.unload()
    return {
        "examples": len(examples),
        "epochs": epochs,
        "base_token_f1": before["token_f1"],
        "tuned_token_f1": after["token_f1"],
        "base_exact_match": before["exact_match"],
        "tuned_exact_match": after["exact_match"],
        "ratio": round(after["token_f1"] / max(before["token_f1"], 1e-9), 2),
        "goal_met": after["token_f1"] >= 0.8,
        "train_seconds": round(result.train_seconds, 1),
        "train_tokens_per_s": round(result.tokens_per_s, 1),
        "evaluate_seconds": round(eval_s, 1),
        "final_train_loss": round(result.history[-1]["train_loss"], 4),
        "worst_answers": worst,
        "note": "2 shared CPU cores; other processes may have competed for them",
    }
