"""The tune job body: evaluate the base, train with validation, evaluate held out, then train
the live version on every example for the epochs chosen, save it and make it live."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.errors import Cancelled, InvalidInput
from engine.jobs.context import JobContext
from engine.training.config import TrainConfig
from engine.training.evaluation import evaluate
from engine.workflows.steps import (
    Memo,
    answer_budget,
    dataset_filename,
    publish,
    score,
    train_reporting,
)

# Share of the job's progress bar each phase ends at.
PHASES = {"base": 0.06, "select": 0.50, "held_out": 0.56, "final": 0.92, "known": 0.98}


def run_tune(ctx: JobContext) -> dict[str, Any]:
    """Tune ctx.model_name on dataset ctx.dataset_id; returns the job's result dict."""
    config = TrainConfig.from_options(ctx.params)
    if ctx.dataset_id is None:
        raise InvalidInput("This tune job has no dataset; start it again with a Q&A file.")
    splits = {s: ctx.datasets.examples(ctx.dataset_id, s) for s in ("train", "validation", "test")}
    everything = splits["train"] + splits["validation"] + splits["test"]
    if not splits["train"]:
        raise InvalidInput("The dataset has no training examples; upload a file with at least "
                           "10 question-answer pairs.")
    filename = dataset_filename(ctx)
    target = ctx.catalog.live_target(ctx.base_name)
    model, tokenizer = ctx.hub.load(target.base_path)
    memo = Memo(Path(ctx.checkpoint_dir) / "tune.json")
    budget = answer_budget(tokenizer, everything, ctx.settings.max_new_tokens)

    def stop_check() -> None:
        if ctx.should_stop():
            raise Cancelled("Cancelled by the user.")

    started = time.perf_counter()
    stop_check()
    if "before" not in memo:
        ctx.report(0.01, f"Evaluating the base model {ctx.base_name} on "
                         f"{len(splits['test'])} held-out questions.", {"phase": "evaluating base"})
        memo["before"] = score(model, tokenizer, splits["test"], budget)
    stop_check()

    select = train_reporting(ctx, model, tokenizer, splits["train"], splits["validation"], config,
                    "select", "Training", (PHASES["base"], PHASES["select"]))
    try:
        epochs = select.epochs_kept
        if "after" not in memo:
            ctx.report(PHASES["select"], "Evaluating the tuned adapter on the held-out questions.",
                       {"phase": "evaluating"})
            memo["after"] = dict(score(select.model, tokenizer, splits["test"], budget),
                                 best_epoch=select.best_epoch, epochs=epochs)
        history, best_epoch = select.history, select.best_epoch
    finally:
        model = select.model.unload()  # the hub's copy of the base goes back as it came
        model.eval()
    stop_check()

    final_config = replace(config, epochs=epochs, early_stopping=0)
    final = train_reporting(ctx, model, tokenizer, everything, [], final_config, "final",
                   f"Final pass on all {len(everything)} examples", (PHASES["select"] + 0.06,
                                                                      PHASES["final"]))
    try:
        ctx.report(PHASES["final"], f"Checking the final adapter on the file's "
                                    f"{len(everything)} questions.", {"phase": "evaluating"})
        known = evaluate(final.model, tokenizer, everything, budget)
        stop_check()
        version = publish(ctx, final, config, history, best_epoch, memo, known, filename,
                           len(everything), epochs)
    finally:
        final.model.unload().eval()
    seconds = time.perf_counter() - started
    ctx.report(1.0, f"Version {version['version']} of {ctx.model_name} is live: token F1 "
                    f"{memo['before']['token_f1']:.2f} -> {memo['after']['token_f1']:.2f} held out, "
                    f"{known['token_f1']:.2f} on the file's questions.",
               {"phase": "done", **version}, kind="metrics")
    return dict(version, metrics_before=memo["before"], metrics_after=memo["after"],
                trained_questions_f1=known["token_f1"], epochs=epochs,
                train_seconds=round(select.train_seconds + final.train_seconds, 1),
                tokens_per_s=round((select.tokens + final.tokens)
                                   / max(1e-9, select.train_seconds + final.train_seconds), 1),
                total_seconds=round(seconds, 1))
