"""The phases that the tune and retrain job bodies share: train with progress reports, score,
publish a version (adapter and loss plot saved, then recorded live), and the memo of figures
that lets a resumed job skip what it already computed."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.artifacts.refs import parse
from engine.catalog import names
from engine.errors import Cancelled, NotFound
from engine.identity import Caller
from engine.jobs.context import JobContext
from engine.training.config import TrainConfig
from engine.training.evaluation import evaluate, validation_loss
from engine.training.loop import TrainResult, train
from engine.training.plots import loss_plot
from engine.views import ProgressUpdate, as_dict

PLOT = "loss.png"  # the loss plot's name inside a version's stored folder
REPORT_EVERY_S = 5.0  # step progress is written at most this often (epochs always)


def train_reporting(ctx: JobContext, model: Any, tokenizer: Any, examples: list,
                    validation: list, config: TrainConfig, stage: str, label: str,
                    span: tuple[float, float], start_from: dict | None = None) -> TrainResult:
    """train(), with its progress written to the job: every epoch, and steps at most every
    REPORT_EVERY_S seconds, mapped onto the share `span` of the job's progress bar."""
    low, high = span
    last = {"at": 0.0}

    def on_progress(p: ProgressUpdate) -> None:
        now = time.monotonic()
        if p.event == "step" and now - last["at"] < REPORT_EVERY_S:
            return
        last["at"] = now
        share = round(low + (high - low) * (p.step or 0) / max(1, p.total_steps or 1), 4)
        if p.event == "start":
            message = f"{label}: started." if not p.step else (
                f"{label}: going on from step {p.step}/{p.total_steps}.")
        elif p.event == "epoch":
            val = "" if p.val_loss is None else f", validation loss {p.val_loss:.3f}"
            message = (f"{label}: epoch {p.epoch}/{p.epochs} done, train loss "
                       f"{p.train_loss:.3f}{val}.")
        else:
            message = (f"{label}: epoch {p.epoch}/{p.epochs}, step {p.step}/{p.total_steps}, "
                       f"loss {p.loss:.3f}, {eta_text(p.eta_s or 0.0)} left.")
        ctx.report(share, message, as_dict(replace(p, phase=stage)))

    def on_checkpoint(note: dict[str, Any]) -> None:
        message = (f"{label}: checkpoint after step {note['to_step']}/{note['total_steps']} "
                   f"(epoch {note['epoch']}/{note['epochs']}).")
        ctx.checkpoint_saved({**note, "stage": stage, "message": message})

    return train(model, tokenizer, examples, validation, config, on_progress=on_progress,
                 should_stop=ctx.should_stop, checkpoint_dir=Path(ctx.checkpoint_dir) / stage,
                 checkpoint_every=ctx.settings.checkpoint_steps, on_checkpoint=on_checkpoint,
                 start_from=start_from)


def phase(ctx: JobContext, share: float, message: str, name: str) -> None:
    """Report the start of a phase of the job (a ProgressUpdate with only the phase set)."""
    ctx.report(share, message, as_dict(ProgressUpdate(phase=name)))


def stop_if_cancelled(ctx: JobContext) -> None:
    if ctx.should_stop():
        raise Cancelled("Cancelled by the user.")


@dataclass(frozen=True)
class Published:
    """A version that went live: its number and its stored files (artifact references)."""

    version: int
    adapter: str
    plot: str


def publish(ctx: JobContext, final: TrainResult, config: TrainConfig, history: list,
            best_epoch: int, memo: "Memo", known: dict, filename: str, n: int,
            epochs: int, final_epochs: int | None = None, *, file_examples: int | None = None,
            curated_ids: list[int] = (), gate: list[dict[str, Any]] | None = None) -> Published:
    """Save the adapter and plot into a temporary folder, store it in the artifact store (by
    content hash, reachable from every host) and record the live version with exactly what
    trained it (`file_examples` of its file, the approved `curated_ids`). A failure or
    cancel before the record leaves no version behind. `final_epochs`: the epochs a final
    pass continued the selection run's adapter on all n examples (None: it trained afresh
    on all of them for `epochs`). `gate`: a retrain's figures."""
    try:
        record = ctx.catalog.job_model(ctx.model_id, ctx.workspace, ctx.model_name)
    except NotFound:  # a job from before its entry was recorded: make the entry again
        record = ctx.catalog.create_or_get_tuned(Caller.job_owner(ctx.owner, ctx.workspace),
                                                 ctx.model_name, ctx.base_name)
    parent = ctx.settings.adapters_dir / names.folder(record)
    parent.mkdir(parents=True, exist_ok=True)
    temp = parent / f".tmp-{uuid.uuid4().hex[:8]}"
    try:
        final.model.save_pretrained(temp)
        chose = ("chosen by validation" if config.early_stopping
                 else "as requested" if config.epochs else "picked from the file's size")
        loss_plot(history, temp / PLOT, best_epoch=best_epoch,
                  title=f"{record.name}: loss per epoch (validation best at epoch {best_epoch})")
        stop_if_cancelled(ctx)
        adapter = ctx.artifacts.put_folder(temp, move=True)  # the folder becomes the cache
        hyperparams = dict(config.as_dict(), epochs=epochs, final_examples=n)
        if final_epochs is not None:
            hyperparams["final_epochs"] = final_epochs
            trained = (f"Trained for {epochs} epochs on the train split ({chose}), then "
                       f"{final_epochs} more on all {n} examples of {filename}; held-out "
                       "figures are from before the test split was trained on.")
        else:
            trained = (f"Trained on all {n} examples of {filename} for {epochs} epochs "
                       f"({chose}); held-out figures are from a run that did not see the test "
                       "split.")
        view = ctx.catalog.add_version(
            record.id, path=adapter, hyperparams=hyperparams, dataset_id=ctx.dataset_id,
            job_id=ctx.job_id, metrics_before=memo["before"],
            metrics_after=dict(memo["after"], trained_questions_f1=known["token_f1"],
                               trained_questions_em=known["exact_match"],
                               **({"gate": gate} if gate else {})),
            notes=trained,
            live=True, file_examples=n if file_examples is None else file_examples,
            curated_ids=list(curated_ids))
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return Published(view.number, adapter, str(parse(adapter).file(PLOT)))


def score(model: Any, tokenizer: Any, examples: list, budget: int) -> dict[str, Any]:
    if not examples:
        return {"exact_match": None, "token_f1": None, "n": 0, "loss": None}
    scores = evaluate(model, tokenizer, examples, budget)
    return dict(scores, loss=round(validation_loss(model, tokenizer, examples), 4))


def answer_budget(tokenizer: Any, examples: list, ceiling: int) -> int:
    """New tokens to generate: the longest reference answer plus some slack, at most ceiling."""
    longest = max((len(tokenizer(ex[-1]["content"], add_special_tokens=False)["input_ids"])
                   for ex in examples if ex and ex[-1].get("role") == "assistant"), default=64)
    return max(8, min(ceiling, longest + 16))


def dataset_filename(ctx: JobContext) -> str:
    report = getattr(ctx.datasets, "report", None)
    try:
        return report(ctx.dataset_id).filename if report else f"dataset {ctx.dataset_id}"
    except Exception:  # a missing summary must not fail a finished training
        return f"dataset {ctx.dataset_id}"


def eta_text(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"


class Memo:
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

