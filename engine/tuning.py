"""The tune job body: evaluate the base, train with validation, evaluate held out, then train
the live version on every example for the epochs chosen, save it and make it live."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.errors import InvalidInput
from engine.evaluation import evaluate, validation_loss
from engine.identity import Caller
from engine.jobcontext import Cancelled, JobContext
from engine.plots import loss_plot
from engine.training import TrainConfig, TrainResult, train

# Share of the job's progress bar each phase ends at.
PHASES = {"base": 0.06, "select": 0.50, "held_out": 0.56, "final": 0.92, "known": 0.98}
REPORT_EVERY_S = 5.0  # step progress is written at most this often (epochs always)


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
    filename = _filename(ctx)
    target = ctx.catalog.live_target(ctx.base_name)
    model, tokenizer = ctx.hub.load(target.base_path)
    memo = _Memo(Path(ctx.checkpoint_dir) / "tune.json")
    budget = _answer_budget(tokenizer, everything, ctx.settings.max_new_tokens)

    def stop_check() -> None:
        if ctx.should_stop():
            raise Cancelled("Cancelled by the user.")

    started = time.perf_counter()
    stop_check()
    if "before" not in memo:
        ctx.report(0.01, f"Evaluating the base model {ctx.base_name} on "
                         f"{len(splits['test'])} held-out questions.", {"phase": "evaluating base"})
        memo["before"] = _metrics(model, tokenizer, splits["test"], budget)
    stop_check()

    select = _train(ctx, model, tokenizer, splits["train"], splits["validation"], config,
                    "select", "Training", (PHASES["base"], PHASES["select"]))
    try:
        epochs = select.epochs_kept
        if "after" not in memo:
            ctx.report(PHASES["select"], "Evaluating the tuned adapter on the held-out questions.",
                       {"phase": "evaluating"})
            memo["after"] = dict(_metrics(select.model, tokenizer, splits["test"], budget),
                                 best_epoch=select.best_epoch, epochs=epochs)
        history, best_epoch = select.history, select.best_epoch
    finally:
        model = select.model.unload()  # the hub's copy of the base goes back as it came
        model.eval()
    stop_check()

    final_config = replace(config, epochs=epochs, early_stopping=0)
    final = _train(ctx, model, tokenizer, everything, [], final_config, "final",
                   f"Final pass on all {len(everything)} examples", (PHASES["select"] + 0.06,
                                                                      PHASES["final"]))
    try:
        ctx.report(PHASES["final"], f"Checking the final adapter on the file's "
                                    f"{len(everything)} questions.", {"phase": "evaluating"})
        known = evaluate(final.model, tokenizer, everything, budget)
        stop_check()
        version = _publish(ctx, final, config, history, best_epoch, memo, known, filename,
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


def _train(ctx: JobContext, model: Any, tokenizer: Any, examples: list, validation: list,
           config: TrainConfig, stage: str, label: str, span: tuple[float, float]) -> TrainResult:
    low, high = span
    last = {"at": 0.0}

    def on_progress(p: dict) -> None:
        now = time.monotonic()
        if p["event"] == "step" and now - last["at"] < REPORT_EVERY_S:
            return
        last["at"] = now
        share = round(low + (high - low) * p["step"] / max(1, p["total_steps"]), 4)
        if p["event"] == "epoch":
            val = "" if p.get("val_loss") is None else f", validation loss {p['val_loss']:.3f}"
            message = (f"{label}: epoch {p['epoch']}/{p['epochs']} done, train loss "
                       f"{p['train_loss']:.3f}{val}.")
            data = {"phase": stage, **p}
        else:
            message = (f"{label}: epoch {p['epoch']}/{p['epochs']}, step {p['step']}/"
                       f"{p['total_steps']}, loss {p['loss']:.3f}, {_eta(p['eta_s'])} left.")
            data = {"phase": stage, **{k: p[k] for k in ("epoch", "epochs", "step", "total_steps",
                                                         "loss", "eta_s", "tokens_per_s")}}
        ctx.report(share, message, data)

    return train(model, tokenizer, examples, validation, config, on_progress=on_progress,
                 should_stop=ctx.should_stop, checkpoint_dir=Path(ctx.checkpoint_dir) / stage)


def _publish(ctx: JobContext, final: TrainResult, config: TrainConfig, history: list,
             best_epoch: int, memo: "_Memo", known: dict, filename: str, n: int,
             epochs: int) -> dict[str, Any]:
    """Save the adapter and plot as adapters_dir/<model>/v<N> (temp folder, then rename) and
    record the live version. A failure or cancel before the record leaves nothing behind."""
    from storage import catalog as rows

    owner = Caller(platform=ctx.owner.split(":", 1)[0], workspace=ctx.workspace, user=ctx.owner)
    record = ctx.catalog.create_or_get_tuned(owner, ctx.model_name, ctx.base_name)
    with ctx.db.session() as session:
        number = 1 + max((v.number for v in rows.versions_of(session, record.id)), default=0)
    parent = ctx.settings.adapters_dir / record.name
    parent.mkdir(parents=True, exist_ok=True)
    temp = parent / f".tmp-v{number}-{uuid.uuid4().hex[:8]}"
    folder = parent / f"v{number}"
    try:
        final.model.save_pretrained(temp)
        chose = ("chosen by validation" if config.early_stopping
                 else "as requested" if config.epochs else "picked from the file's size")
        loss_plot(history, temp / "loss.png", best_epoch=best_epoch,
                  title=f"{record.name}: loss per epoch (validation best at epoch {best_epoch})")
        if ctx.should_stop():
            raise Cancelled("Cancelled by the user.")
        if folder.exists():  # left by a run that died before recording its version
            shutil.rmtree(folder)
        temp.rename(folder)
        hyperparams = dict(config.as_dict(), epochs=epochs, final_examples=n)
        view = ctx.catalog.add_version(
            record.id, path=str(folder), hyperparams=hyperparams, dataset_id=ctx.dataset_id,
            job_id=ctx.job_id, metrics_before=memo["before"],
            metrics_after=dict(memo["after"], trained_questions_f1=known["token_f1"],
                               trained_questions_em=known["exact_match"]),
            notes=(f"Trained on all {n} examples of {filename} for {epochs} epochs ({chose}); "
                   "held-out figures are from a run that did not see the test split."),
            live=True)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return {"version": view.number, "adapter": str(folder), "plot": str(folder / "loss.png")}


def _metrics(model: Any, tokenizer: Any, examples: list, budget: int) -> dict[str, Any]:
    if not examples:
        return {"exact_match": None, "token_f1": None, "n": 0, "loss": None}
    scores = evaluate(model, tokenizer, examples, budget)
    return dict(scores, loss=round(validation_loss(model, tokenizer, examples), 4))


def _answer_budget(tokenizer: Any, examples: list, ceiling: int) -> int:
    """New tokens to generate: the longest reference answer plus some slack, at most ceiling."""
    longest = max((len(tokenizer(ex[-1]["content"], add_special_tokens=False)["input_ids"])
                   for ex in examples if ex and ex[-1].get("role") == "assistant"), default=64)
    return max(8, min(ceiling, longest + 16))


def _filename(ctx: JobContext) -> str:
    report = getattr(ctx.datasets, "report", None)
    try:
        return report(ctx.dataset_id).filename if report else f"dataset {ctx.dataset_id}"
    except Exception:  # a missing summary must not fail a finished training
        return f"dataset {ctx.dataset_id}"


def _eta(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"


class _Memo:
    """Figures already computed by this job, kept beside its checkpoints so that a resumed
    job does not evaluate the base model again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps(self.data))
        temp.replace(self.path)

