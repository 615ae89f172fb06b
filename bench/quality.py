"""`gptstore bench quality`: does a tune with the defaults know the sample FAQ's answers?

The bundled SmolLM2-135M (fp32, CPU) answers every question of engine/datasets/samples/sample_faq.csv
greedily before and after training, scored by mean token F1 against the file's answers.
The training is what the live version of `gptstore tune` gets: every example of the file, the
default TrainConfig, for the epochs the default picks for the file's training split.
`ratio` = F1 after / F1 before. Goal: F1 after >= 0.8.

Options (for exploring other settings; the goal is judged on the defaults):
`--epochs N`, `--lr X`, `--lora-r N` override the defaults; `--probe 4,8` also scores the
answers after those epochs while training (costs one evaluation each).
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import bundled_model, faq_examples, options


def run(args: list[str]) -> dict[str, Any]:

    from engine.datasets.splits import split
    from engine.training.config import TrainConfig, default_epochs
    from engine.training.evaluation import evaluate
    from engine.training.loop import train

    given = options(args)
    settings, model, tokenizer = bundled_model()
    examples = faq_examples()
    epochs = int(given.get("epochs", 0)) or default_epochs(len(split(len(examples))["train"]))
    overrides: dict[str, Any] = {"epochs": epochs}
    if "lr" in given:
        overrides["learning_rate"] = float(given["lr"])
    if "lora_r" in given:
        overrides["lora_r"] = int(given["lora_r"])
        overrides["lora_alpha"] = 2 * int(given["lora_r"])
    probes = {int(e) for e in given.get("probe", "").split(",") if e.strip()}
    from engine.workflows.steps import answer_budget

    budget = answer_budget(tokenizer, examples, settings.max_new_tokens)  # as `tune` does
    load_before = os.getloadavg()
    start = time.perf_counter()
    before = evaluate(model, tokenizer, examples, budget)
    eval_s = time.perf_counter() - start
    probed: list[dict[str, Any]] = []
    probe_s = [0.0]

    training_started = time.perf_counter()

    def on_progress(p: Any) -> None:  # a ProgressUpdate
        if p.event == "epoch" and p.epoch in probes:
            began = time.perf_counter()
            scores = evaluate(peft_holder[0], tokenizer, examples, budget)
            probe_s[0] += time.perf_counter() - began
            probed.append({"epoch": p.epoch, "token_f1": scores["token_f1"],
                           "train_loss": round(p.train_loss, 4)})
            print(f"probe: {probed[-1]}", flush=True)
        elif p.event == "epoch":
            print(f"epoch {p.epoch}/{p.epochs}: loss {p.train_loss:.4f}, "
                  f"{time.perf_counter() - training_started:.0f} s so far, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)

    peft_holder: list[Any] = [model]  # evaluate() works on the base object: LoRA is injected
    result = train(model, tokenizer, examples, [], TrainConfig(**overrides),
                   on_progress=on_progress)
    after = evaluate(result.model, tokenizer, examples, budget, with_answers=True)
    worst = sorted(after["answers"], key=lambda a: a["f1"])[:3]
    result.model.unload()
    return {
        "examples": len(examples),
        "epochs": epochs,
        "max_new_tokens": budget,
        "config": {k: v for k, v in TrainConfig(**overrides).as_dict().items()
                   if k in ("learning_rate", "lora_r", "lora_alpha", "batch_size")},
        "base_token_f1": before["token_f1"],
        "tuned_token_f1": after["token_f1"],
        "base_exact_match": before["exact_match"],
        "tuned_exact_match": after["exact_match"],
        "ratio": round(after["token_f1"] / max(before["token_f1"], 1e-9), 2),
        "goal_met": after["token_f1"] >= 0.8,
        "train_seconds": round(result.train_seconds - probe_s[0], 1),
        "train_tokens_per_s": round(result.tokens / max(result.train_seconds - probe_s[0],
                                                        1e-9), 1),
        "evaluate_seconds": round(eval_s, 1),
        "final_train_loss": round(result.history[-1]["train_loss"], 4),
        "probes": probed,
        "worst_answers": worst,
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
        "note": "2 shared CPU cores; other processes competed for them (see load averages)",
    }
