"""The retrain job body: train a candidate on the model's data plus curated conversation
pairs, compare it with the live version, and make it live only if it is not worse."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import InvalidInput
from engine.jobs.context import JobContext
from engine.retraining.gate import gate
from engine.training.config import TrainConfig
from engine.training.evaluation import evaluate
from engine.training.loop import TrainResult
from engine.views import RetrainVerdict, as_dict
from engine.workflows.steps import (
    Memo,
    answer_budget,
    phase,
    publish,
    score,
    stop_if_cancelled,
    train_reporting,
)

# Share of the job's progress bar each phase ends at.
PHASES = {"live": 0.12, "train": 0.85, "candidate": 0.97}


def run_retrain(ctx: JobContext) -> dict[str, Any]:
    """Retrain ctx.model_name; returns the job's RetrainVerdict as JSON."""
    retrain = _Retrain(ctx)
    retrain.score_live()
    candidate = retrain.train_candidate()
    return as_dict(retrain.decide(candidate))


class _Retrain:
    """The retrain job's inputs and figures, passed from one named step to the next."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        entry = ctx.catalog.job_model(ctx.model_id, ctx.workspace, ctx.model_name)
        self.live = ctx.catalog.live_version(entry)
        self.target = ctx.catalog.live_target(entry)
        since = ctx.params.get("since")
        pairs = ctx.chat.curated_pairs(self.target.model_id,
                                       since=datetime.fromisoformat(since) if since else None)
        self.curated = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                        for q, a, _source in pairs]
        if not self.curated:
            raise InvalidInput(f"No curated pairs for {ctx.model_name} any more (were they "
                               "forgotten?); nothing to retrain on.")
        splits = {s: ctx.datasets.examples(ctx.dataset_id, s) if ctx.dataset_id else []
                  for s in ("train", "validation", "test")}
        self.original = splits["train"] + splits["validation"] + splits["test"]
        self.held_out = splits["test"]
        self.everything = self.original + self.curated
        self.base, self.tokenizer = ctx.hub.load(self.target.base_path)
        self.budget = answer_budget(self.tokenizer, self.everything, ctx.settings.max_new_tokens)
        self.memo = Memo(Path(ctx.checkpoint_dir) / "retrain.json")
        known = {f.name for f in fields(TrainConfig)}
        config = TrainConfig(**{k: (tuple(v) if k == "target_modules" else v)
                                for k, v in self.live.hyperparams.items() if k in known})
        self.config = replace(config, early_stopping=0)

    def _figures(self, model: Any) -> dict[str, Any]:
        return dict(score(model, self.tokenizer, self.held_out, self.budget),
                    new_pairs_f1=evaluate(model, self.tokenizer, self.curated,
                                          self.budget)["token_f1"])

    def score_live(self) -> None:
        """The live version's held-out and new-pair figures (the "before")."""
        from peft import PeftModel

        if "before" not in self.memo:
            phase(self.ctx, 0.02, f"Evaluating live version {self.live.number} on "
                                  f"{len(self.held_out)} held-out questions and "
                                  f"{len(self.curated)} new pairs.", "evaluating live")
            scored = PeftModel.from_pretrained(self.base, self.ctx.hub.local(self.target.adapter_path))
            try:
                scored.eval()
                self.memo["before"] = self._figures(scored)
            finally:
                self.base = scored.unload()
                self.base.eval()
        stop_if_cancelled(self.ctx)

    def train_candidate(self) -> TrainResult:
        """The base retrained on the file's examples plus the curated pairs."""
        return train_reporting(
            self.ctx, self.base, self.tokenizer, self.everything, [], self.config, "retrain",
            f"Retraining on {len(self.original)} file examples + {len(self.curated)} curated "
            "pairs", (PHASES["live"], PHASES["train"]))

    def decide(self, candidate: TrainResult) -> RetrainVerdict:
        """Score the candidate, ask the gate, and publish it only when the gate says so."""
        ctx, memo, name = self.ctx, self.memo, self.ctx.model_name
        try:
            phase(ctx, PHASES["train"], "Evaluating the candidate.", "evaluating")
            after = memo["after"] = self._figures(candidate.model)
            promote, reason = gate(memo["before"], after)
            verdict = RetrainVerdict(promoted=promote, reason=reason, live=memo["before"],
                                     candidate=after, new_pairs=len(self.curated), model=name,
                                     previous_version=self.live.number)
            if promote:
                stop_if_cancelled(ctx)
                known = evaluate(candidate.model, self.tokenizer, self.everything, self.budget)
                saved = publish(ctx, candidate, self.config, candidate.history,
                                candidate.best_epoch, memo, known,
                                f"{name}'s data and {len(self.curated)} curated pairs",
                                len(self.everything),
                                self.config.epochs or candidate.epochs_kept)
                message = (f"Version {saved.version} of {name} is live: {reason}; new-pair F1 "
                           f"{memo['before']['new_pairs_f1']:.2f} -> {after['new_pairs_f1']:.2f}.")
                verdict = replace(verdict, version=saved.version, adapter=saved.adapter,
                                  plot=saved.plot, message=message)
            else:
                verdict = replace(verdict, message=(
                    f"Kept version {self.live.number} of {name} live: {reason}. The candidate "
                    f"scored {after['new_pairs_f1']:.2f} on the new pairs (live "
                    f"{memo['before']['new_pairs_f1']:.2f})."))
            ctx.report(1.0, verdict.message, as_dict(verdict), kind="metrics")
        finally:
            candidate.model.unload().eval()
        return verdict
