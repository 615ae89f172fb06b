"""The retrain job body: train a candidate on the model's data plus curated conversation
pairs, compare it with the live version, and make it live only if it is not worse."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import Cancelled, InvalidInput, NotFound
from engine.jobs.context import JobContext
from engine.retraining.gate import gate
from engine.training.config import TrainConfig
from engine.training.evaluation import evaluate
from engine.workflows.steps import Memo, answer_budget, publish, score, train_reporting

# Share of the job's progress bar each phase ends at.
PHASES = {"live": 0.12, "train": 0.85, "candidate": 0.97}


def run_retrain(ctx: JobContext) -> dict[str, Any]:
    """Retrain ctx.model_name; returns the job's result (both sets of figures, the verdict)."""
    from peft import PeftModel

    from storage import catalog as catalog_rows
    from storage import conversations
    from storage.tables import ModelVersionRecord

    with ctx.db.session() as session:
        model = catalog_rows.get_model(session, ctx.model_name)
        if model is None:
            raise NotFound(f"The model {ctx.model_name} no longer exists; nothing to retrain.")
        live = session.get(ModelVersionRecord, model.live_version_id) if model.live_version_id else None
        if live is None or not live.path:
            raise InvalidInput(f"{ctx.model_name} has no live version to improve; tune it first.")
        since = ctx.params.get("since")
        pairs = conversations.curated_pairs(
            session, model.id, since=datetime.fromisoformat(since) if since else None)
        hyperparams = dict(live.hyperparams or {})
        model_id = model.id
    curated = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
               for q, a, _source in pairs]
    if not curated:
        raise InvalidInput(f"No curated pairs for {ctx.model_name} any more (were they forgotten?); "
                           "nothing to retrain on.")
    splits = {s: ctx.datasets.examples(ctx.dataset_id, s) if ctx.dataset_id else []
              for s in ("train", "validation", "test")}
    original = splits["train"] + splits["validation"] + splits["test"]
    held_out = splits["test"]
    target = ctx.catalog.live_target(ctx.model_name)
    base, tokenizer = ctx.hub.load(target.base_path)
    budget = answer_budget(tokenizer, original + curated, ctx.settings.max_new_tokens)
    memo = Memo(Path(ctx.checkpoint_dir) / "retrain.json")

    if "before" not in memo:
        ctx.report(0.02, f"Evaluating live version {live.number} on {len(held_out)} held-out "
                         f"questions and {len(curated)} new pairs.", {"phase": "evaluating live"})
        scored = PeftModel.from_pretrained(base, target.adapter_path)
        try:
            scored.eval()
            memo["before"] = dict(score(scored, tokenizer, held_out, budget),
                                  new_pairs_f1=evaluate(scored, tokenizer, curated, budget)["token_f1"])
        finally:
            base = scored.unload()
            base.eval()
    _stop(ctx)

    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: (tuple(v) if k == "target_modules" else v)
                            for k, v in hyperparams.items() if k in known})
    config = replace(config, early_stopping=0)
    everything = original + curated
    result = train_reporting(ctx, base, tokenizer, everything, [], config, "retrain",
                    f"Retraining on {len(original)} file examples + {len(curated)} curated pairs",
                    (PHASES["live"], PHASES["train"]))
    try:
        ctx.report(PHASES["train"], "Evaluating the candidate.", {"phase": "evaluating"})
        after = dict(score(result.model, tokenizer, held_out, budget),
                     new_pairs_f1=evaluate(result.model, tokenizer, curated, budget)["token_f1"])
        memo["after"] = after
        promote, reason = gate(memo["before"], after)
        verdict: dict[str, Any] = {"promoted": promote, "reason": reason,
                                   "live": memo["before"], "candidate": after,
                                   "new_pairs": len(curated), "model": ctx.model_name,
                                   "previous_version": live.number}
        if promote:
            _stop(ctx)
            known_scores = evaluate(result.model, tokenizer, everything, budget)
            saved = publish(ctx, result, config, result.history, result.best_epoch, memo,
                             known_scores, f"{ctx.model_name}'s data and {len(curated)} curated pairs",
                             len(everything), config.epochs or result.epochs_kept)
            verdict.update(saved)
            message = (f"Version {saved['version']} of {ctx.model_name} is live: {reason}; "
                       f"new-pair F1 {memo['before']['new_pairs_f1']:.2f} -> {after['new_pairs_f1']:.2f}.")
        else:
            message = (f"Kept version {live.number} of {ctx.model_name} live: {reason}. "
                       f"The candidate scored {after['new_pairs_f1']:.2f} on the new pairs "
                       f"(live {memo['before']['new_pairs_f1']:.2f}).")
        verdict["message"] = message
        ctx.report(1.0, message, verdict, kind="metrics")
    finally:
        result.model.unload().eval()
    return verdict


def _stop(ctx: JobContext) -> None:
    if ctx.should_stop():
        raise Cancelled("Cancelled by the user.")
