"""The evaluate job body: score a model's live version on a split of one of its datasets."""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidInput
from engine.jobs.context import JobContext
from engine.workflows.steps import answer_budget, phase, score


def run_evaluation(ctx: JobContext) -> dict[str, Any]:
    """The evaluate job body: score a model's live version on a dataset's test split."""
    from peft import PeftModel

    if ctx.dataset_id is None:
        raise InvalidInput("An evaluation needs a dataset; give the job a dataset id.")
    split = str(ctx.params.get("split", "test"))
    examples = ctx.datasets.examples(ctx.dataset_id, split)
    if not examples:
        raise InvalidInput(f"Dataset {ctx.dataset_id} has no {split} examples to evaluate on.")
    target = ctx.catalog.live_target(
        ctx.catalog.job_model(ctx.model_id, ctx.workspace, ctx.model_name))
    base, tokenizer = ctx.hub.load(target.base_path)
    budget = answer_budget(tokenizer, examples, ctx.settings.max_new_tokens)
    phase(ctx, 0.05, f"Evaluating {ctx.model_name} on {len(examples)} {split} examples.",
          "evaluating")
    scored = (PeftModel.from_pretrained(base, ctx.hub.local(target.adapter_path))
              if target.adapter_path else base)
    try:
        scored.eval()
        metrics = score(scored, tokenizer, examples, budget)
    finally:
        if scored is not base:
            scored.unload().eval()
    result = {"model": ctx.model_name, "version": target.version, "split": split,
              "metrics": metrics}
    ctx.report(1.0, f"{ctx.model_name} v{target.version}: token F1 {metrics['token_f1']:.2f}, "
                    f"exact match {metrics['exact_match']:.2f} on {metrics['n']} {split} examples.",
               result, kind="metrics")
    return result
