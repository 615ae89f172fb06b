"""The tune job body: evaluate the base, train with validation, evaluate held out, then
continue that adapter on every example for the live version (half the epochs: the train
split is learnt already), save it and make it live."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.errors import InvalidInput
from engine.jobs.context import JobContext
from engine.training.checkpoint import trainable_weights
from engine.training.config import TrainConfig, continuation_epochs, grounded_default_epochs
from engine.training.evaluation import evaluate
from engine.training.loop import TrainResult
from engine.views import TuneResult, as_dict
from engine.workflows.grounding import Grounding, grounded_summary
from engine.workflows.steps import (
    Memo,
    answer_budget,
    dataset_filename,
    phase,
    publish,
    score,
    stop_if_cancelled,
    train_reporting,
)

# Share of the job's progress bar each phase ends at.
PHASES = {"base": 0.06, "select": 0.50, "held_out": 0.56, "final": 0.92, "known": 0.98}


def run_tune(ctx: JobContext) -> dict[str, Any]:
    """Tune ctx.model_name on dataset ctx.dataset_id; returns the job's TuneResult as JSON."""
    tune = _Tune(ctx)
    try:
        tune.score_base()
        tune.ground()
        epochs = tune.select_epochs()
        final = tune.train_final(epochs)
        return as_dict(tune.publish(final, epochs))
    except BaseException:
        if tune.grounding is not None:  # the live version's knowledge stays as it was
            tune.grounding.discard()
        raise


class _Tune:
    """The tune job's data, model and figures, passed from one named step to the next."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.config = TrainConfig.from_options(ctx.params)
        if ctx.dataset_id is None:
            raise InvalidInput("This tune job has no dataset; start it again with a Q&A file.")
        self.splits = {s: ctx.datasets.examples(ctx.dataset_id, s)
                       for s in ("train", "validation", "test")}
        self.everything = self.splits["train"] + self.splits["validation"] + self.splits["test"]
        if not self.splits["train"]:
            raise InvalidInput("The dataset has no training examples; upload a file with at "
                               "least 10 question-answer pairs.")
        self.filename = dataset_filename(ctx)
        entry = ctx.catalog.job_model(ctx.model_id, ctx.workspace, ctx.model_name)
        self.system_prompt = entry.system_prompt or ""
        self.grounding: Grounding | None = None
        self.grounded: dict[str, list] = {"train": [], "all": []}
        self.model, self.tokenizer = ctx.hub.load(ctx.catalog.base_target(entry).base_path)
        self.memo = Memo(Path(ctx.checkpoint_dir) / "tune.json")
        self.budget = answer_budget(self.tokenizer, self.everything, ctx.settings.max_new_tokens)
        self.started = time.perf_counter()
        self.history: list = []
        self.best_epoch = 0
        self.seconds, self.tokens = 0.0, 0
        stop_if_cancelled(ctx)

    def score_base(self) -> None:
        """The base model's held-out figures (the "before" of the report)."""
        if "before" not in self.memo:
            phase(self.ctx, 0.01, f"Evaluating the base model {self.ctx.base_name} on "
                                  f"{len(self.splits['test'])} held-out questions.",
                  "evaluating base")
            self.memo["before"] = score(self.model, self.tokenizer, self.splits["test"],
                                        self.budget)
        stop_if_cancelled(self.ctx)

    def ground(self) -> None:
        """Index the file's rows into the model's knowledge (staged until publish), choose
        the decline threshold from retrieval scores, and build the grounded examples that
        train the adapter to answer from its context (engine/workflows/grounding.py)."""
        if self.ctx.knowledge is None:
            return
        phase(self.ctx, PHASES["base"], f"Indexing the {len(self.everything)} entries of "
                                        f"{self.filename} for answers with sources.", "indexing")
        self.grounding = Grounding.prepare(self.ctx, self.ctx.knowledge, self.filename,
                                           self.system_prompt)
        self.grounding.calibrate()
        questions = [m["content"] for ex in self.splits["train"] for m in ex
                     if m.get("role") == "user"]
        self.grounded = {"train": self.grounding.training_examples(questions),
                         "all": self.grounding.training_examples()}
        stop_if_cancelled(self.ctx)

    def select_epochs(self) -> int:
        """Train on the train split with validation, score the held-out test split (the
        "after"), and return the epochs the final pass will run."""
        config = self.config
        if config.epochs is None and self.grounded["train"]:
            config = replace(config, epochs=grounded_default_epochs(
                len(self.splits["train"]), len(self.grounded["train"])))
        select = self._train(self.splits["train"] + self.grounded["train"],
                             self.splits["validation"], config,
                             "select", "Training", (PHASES["base"], PHASES["select"]))
        try:
            epochs = select.epochs_kept
            if "after" not in self.memo:
                phase(self.ctx, PHASES["select"],
                      "Evaluating the tuned adapter on the held-out questions.", "evaluating")
                self.memo["after"] = dict(score(select.model, self.tokenizer, self.splits["test"],
                                                self.budget),
                                          best_epoch=select.best_epoch, epochs=epochs)
            self.history, self.best_epoch = select.history, select.best_epoch
            self.selected = trainable_weights(select.model)  # the final pass goes on from it
        finally:
            self.model = select.model.unload()  # the hub's copy of the base goes back as it came
            self.model.eval()
        stop_if_cancelled(self.ctx)
        return epochs

    def train_final(self, epochs: int) -> TrainResult:
        """The live version: the selection run's adapter, trained on for a few more epochs on
        every example (the held-out figures stay those of the adapter that never saw them)."""
        self.final_epochs = continuation_epochs(epochs)
        config = replace(self.config, epochs=self.final_epochs, early_stopping=0)
        return self._train(self.everything + self.grounded["all"], [], config, "final",
                           f"Final pass on all {len(self.everything)} examples"
                           + (" (and their grounded copies)" if self.grounded["all"] else ""),
                           (PHASES["select"] + 0.06, PHASES["final"]), start_from=self.selected)

    def publish(self, final: TrainResult, epochs: int) -> TuneResult:
        """Score the file's own questions, save the adapter and make it the live version."""
        ctx, memo = self.ctx, self.memo
        try:
            phase(ctx, PHASES["final"], f"Checking the final adapter on the file's "
                                        f"{len(self.everything)} questions.", "evaluating")
            known = evaluate(final.model, self.tokenizer, self.everything, self.budget)
            grounded: dict[str, Any] = {}
            if self.grounding is not None:
                phase(ctx, PHASES["final"] + 0.03,
                      f"Checking the answers to {len(self.grounding.probes)} rephrased "
                      "questions from the file's entries.", "evaluating grounded")
                grounded = self.grounding.figures(final.model, self.tokenizer, self.budget,
                                                  known["token_f1"])
                memo["after"] = dict(memo["after"], grounded=grounded)
            stop_if_cancelled(ctx)
            phase(ctx, PHASES["known"], "Saving the adapter and making it live.", "saving")
            published = publish(ctx, final, self.config, self.history, self.best_epoch, memo,
                                known, self.filename, len(self.everything), epochs,
                                final_epochs=self.final_epochs)
            if self.grounding is not None:
                self.grounding.publish(published.version)
        finally:
            final.model.unload().eval()
        result = TuneResult(
            version=published.version, adapter=published.adapter, plot=published.plot,
            metrics_before=memo["before"], metrics_after=memo["after"],
            trained_questions_f1=known["token_f1"], epochs=epochs, grounded=grounded,
            train_seconds=round(self.seconds, 1),
            tokens_per_s=round(self.tokens / max(1e-9, self.seconds), 1),
            total_seconds=round(time.perf_counter() - self.started, 1))
        ctx.report(1.0, f"Version {result.version} of {ctx.model_name} is live: token F1 "
                        f"{memo['before']['token_f1']:.2f} -> {memo['after']['token_f1']:.2f} "
                        f"held out, {known['token_f1']:.2f} on the file's questions"
                        + grounded_summary(grounded) + ".",
                   {**as_dict(result), "phase": "done"}, kind="metrics")
        return result

    def _train(self, examples: list, validation: list, config: TrainConfig, stage: str,
               label: str, span: tuple[float, float], **more: Any) -> TrainResult:
        result = train_reporting(self.ctx, self.model, self.tokenizer, examples, validation,
                                 config, stage, label, span, **more)
        self.seconds += result.train_seconds
        self.tokens += result.tokens
        return result
