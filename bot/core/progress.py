"""Following a job for the place it was started: progress text while it runs, then its end.

A JobWatcher polls the job (engine.jobs.get / events_since) and calls a ProgressSink: update()
at most every `min_interval_s` when the text changed, then finish() exactly once with
final_reply(job): the metrics, the loss plot and Deploy / Publish buttons, or the reason it
failed. The clock and sleep are injected so tests follow a job without waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from bot.core.reply import Button, Reply
from engine.artifacts.refs import is_ref
from engine.errors import StoreError
from engine.views import (
    Figure,
    JobEventView,
    JobView,
    ModelCard,
    ProgressUpdate,
    RetrainVerdict,
    from_dict,
)

if TYPE_CHECKING:
    from engine.app import Engine


class ProgressSink(Protocol):
    def update(self, job: JobView, text: str) -> None:
        """Edit the status message."""

    def finish(self, job: JobView, reply: Reply) -> None:
        """Post the final reply (metrics, loss plot in reply.image, buttons)."""


class Follower(Protocol):
    """Something that reports a job to a sink: JobWatcher (in this process) or
    bot.core.delivery.Deliveries (from the database, by any serve process)."""

    def follow(self, job_id: int, sink: ProgressSink) -> Any: ...


class JobWatcher:
    def __init__(self, engine: "Engine", *, poll_s: float = 1.0, min_interval_s: float = 3.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 log: logging.Logger | None = None) -> None:
        self.engine = engine
        self.poll_s = poll_s
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.sleep = sleep
        self.log = log or logging.getLogger("gptstore.progress")

    def follow(self, job_id: int, sink: ProgressSink) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(job_id, sink), daemon=True,
                                  name=f"follow-job-{job_id}")
        thread.start()
        return thread

    def run(self, job_id: int, sink: ProgressSink) -> None:
        try:
            self._run(job_id, sink)
        except Exception:  # a watcher must never kill its thread silently
            self.log.exception("stopped following job %s", job_id)

    def _run(self, job_id: int, sink: ProgressSink) -> None:
        events: list[JobEventView] = []
        job = self._read(job_id, events)
        last_text, last_at = None, None
        while True:
            if job.finished:
                sink.finish(job, final_reply(job, files=self.local_file))
                return
            text = progress_text(job)
            now = self.clock()
            if text != last_text and (last_at is None or now - last_at >= self.min_interval_s):
                sink.update(job, text)
                last_text, last_at = text, now
            self.sleep(self.poll_s)
            job = self._read(job_id, events)

    def local_file(self, location: str) -> Path | None:
        return stored_file(self.engine, location, self.log)

    def _read(self, job_id: int, events: list[JobEventView]) -> JobView:
        """The job's state plus its events, reading only the events not seen yet.

        The adapter checked the caller's right to the job when it started it, so the watcher
        reads without a permission check (engine.jobs.view)."""
        view = self.engine.jobs.view(job_id)
        events += self.engine.jobs.events_since(job_id, events[-1].id if events else 0)
        return replace(view, events=list(events))


# -- texts ------------------------------------------------------------------------------
def progress_text(job: JobView) -> str:
    """One or two lines: phase, bar, epoch x/y, step, loss, ETA."""
    update = job.latest_progress() or ProgressUpdate()
    phase = PHASES.get(update.phase, update.phase) or _phase(job)
    parts = [f"Job {job.id} ({job.model_name}): {phase}", bar(job.progress)]
    if update.event == "epoch" and update.epoch is not None:  # an epoch just ended
        parts.append(f"epoch {update.epoch}/{update.epochs} done" if update.epochs
                     else f"epoch {update.epoch} done")
        for value, label in ((update.train_loss, "train loss"),
                             (update.val_loss, "validation loss")):
            if value is not None:
                parts.append(f"{label} {value:.3f}")
        return " | ".join(parts)
    if update.epoch is not None:
        parts.append(f"epoch {update.epoch}/{update.epochs}" if update.epochs
                     else f"epoch {update.epoch}")
    if update.step is not None:
        parts.append(f"step {update.step}/{update.total_steps}" if update.total_steps
                     else f"step {update.step}")
    if update.loss is not None:
        parts.append(f"loss {update.loss:.3f}")
    if update.eta_s is not None and update.eta_s >= 0:
        parts.append(f"about {duration(update.eta_s)} left")
    return " | ".join(parts)


PHASES = {"select": "training", "final": "final pass on every example",
          "retrain": "retraining", "evaluating base": "evaluating the base model",
          "evaluating live": "evaluating the live version", "evaluating": "evaluating",
          "saving": "saving the version", "done": "done"}


def _phase(job: JobView) -> str:
    for event in reversed(job.events):
        if event.kind in ("progress", "state") and event.message:
            return event.message
    return job.state


def bar(fraction: float, width: int = 20) -> str:
    fraction = min(max(float(fraction or 0.0), 0.0), 1.0)
    filled = int(round(fraction * width))
    return f"[{'#' * filled}{'-' * (width - filled)}] {fraction * 100:3.0f}%"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


METRICS = (("exact_match", "Exact match", "{:.0%}"), ("token_f1", "Token F1", "{:.2f}"),
           (("validation_loss", "loss"), "Validation loss", "{:.3f}"))


def metric_fields(before: dict[str, Any], after: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """("Token F1", "0.14 -> 0.65") rows for the metrics either side has."""
    rows = []
    for keys, label, fmt in METRICS:
        b, a = _first(before, keys), _first(after, keys)
        if b is None and a is None:
            continue
        rows.append((label, f"{_fmt(fmt, b)} -> {_fmt(fmt, a)}"))
    return tuple(rows)


def grounded_fields(figures: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """The answers-with-sources figures of a tune (TuneResult.grounded) as field rows."""
    if not figures or figures.get("rephrased_f1") is None:
        return ()
    return (
        ("Token F1 on rephrased questions",
         f"{figures['rephrased_f1']:.2f} ({figures.get('n_rephrased', 0)} from the "
         f"{figures.get('rephrased_from', 'rewording rules')})"),
        ("Citations right", f"{figures['citation_accuracy']:.0%}"),
        ("Declined", f"{figures['off_topic_declined']:.0%} of off-topic questions, "
                     f"{figures['in_scope_declined']:.0%} of in-scope ones"),
        ("Decline threshold", f"{figures['threshold']:.2f} (chosen by "
                              f"{figures.get('threshold_chosen_by', 'tuning')})"),
    )


def _first(metrics: dict[str, Any], keys: str | tuple[str, ...]) -> Any:
    for key in (keys,) if isinstance(keys, str) else keys:
        if metrics.get(key) is not None:
            return metrics[key]
    return None


def _fmt(fmt: str, value: Any) -> str:
    return fmt.format(value) if isinstance(value, (int, float)) else "n/a"


def final_reply(job: JobView, *, files: Callable[[str], Path | None] | None = None) -> Reply:
    """The end of a job: metrics, plot and buttons on success; the reason otherwise.
    `files` turns a stored plot (an artifact reference) into a file on this host."""
    if job.state == "failed":
        doing = "Retraining" if job.kind == "retrain" else "Tuning"
        return Reply(title=f"Job {job.id} failed", kind="error", job_id=job.id,
                     text=f"{doing} {job.model_name} failed: {job.error or 'no reason recorded'}")
    if job.state == "cancelled":
        return Reply(title=f"Job {job.id} cancelled", job_id=job.id,
                     text=f"Tuning {job.model_name} was cancelled; no new version was stored.")
    verdict = job.verdict()
    if verdict is not None:
        return _retrain_reply(job, verdict)
    result = job.tune_result()
    version = result.version
    name = job.model_name
    fields = list(metric_fields(result.metrics_before, result.metrics_after))
    if result.trained_questions_f1 is not None:
        fields.append(("Token F1 on the trained questions", f"{result.trained_questions_f1:.2f}"))
    fields.extend(grounded_fields(result.grounded))
    for seconds, label in ((result.train_seconds, "Training time"),
                           (result.total_seconds, "Job time")):
        if seconds is not None:
            fields.append((label, duration(seconds)))
    image = plot_file(result.plot, files)
    text = f"{name} version {version} is live." if version else f"{name} is ready."
    if image is not None:
        text += f" Loss plot: {image}"
    return Reply(title=f"Job {job.id} finished: {name}" + (f" v{version}" if version else ""),
                 text=text, fields=tuple(fields), image=image, kind="success", job_id=job.id,
                 card=True, buttons=(Button("Deploy", f"deploy {name}", "primary"),
                          Button("Publish to workspace", f"publish {name} workspace")))


def stored_file(engine: "Engine", location: str, log: logging.Logger) -> Path | None:
    """A stored file (a loss plot) on this host, fetched from the artifact store; None when it
    cannot be had (the metrics are posted anyway)."""
    try:
        return engine.artifacts.local(location)
    except StoreError as exc:
        log.warning("cannot fetch %s: %s", location, exc)
        return None


def live_plot(engine: "Engine", card: ModelCard,
              log: logging.Logger | None = None) -> Path | None:
    """The loss plot of the job that trained a card's live version, on this host (None for a
    base model, a retrain's version, or a job no longer stored)."""
    live = next((v for v in card.versions if v.number == card.live_version), None)
    if live is None or live.job_id is None:
        return None
    try:
        plot = engine.jobs.view(live.job_id).tune_result().plot
    except StoreError:
        return None
    log = log or logging.getLogger("gptstore.progress")
    return plot_file(plot, lambda ref: stored_file(engine, ref, log))


def plot_file(location: str, files: Callable[[str], Path | None] | None) -> Path | None:
    if not location:
        return None
    if is_ref(location):
        return files(location) if files is not None else None
    return Path(location)  # a store from before the artifact store


def _retrain_reply(job: JobView, verdict: RetrainVerdict) -> Reply:
    """A retrain's verdict with every figure the gate read: live version against candidate."""
    fields = figure_fields(verdict.figures)
    if not fields:  # a verdict written before the gate had named figures
        live, candidate = verdict.live, verdict.candidate
        for key, label in (("token_f1", "Held-out token F1"),
                           ("exact_match", "Held-out exact match"),
                           ("new_pairs_f1", "Token F1 on the new pairs")):
            if live.get(key) is not None and candidate.get(key) is not None:
                fields.append((label, f"live {live[key]:.2f} / candidate {candidate[key]:.2f}"))
    fields.append(("New curated pairs", str(verdict.new_pairs)))
    if verdict.file_examples or verdict.curated:
        fields.append(("Trained on", f"{verdict.file_examples} file examples + "
                                     f"{verdict.curated} curated"))
    fields.append(("Why", verdict.reason))
    title = (f"Job {job.id}: {job.model_name} v{verdict.version} is live"
             if verdict.promoted else f"Job {job.id}: {job.model_name} kept its live version")
    return Reply(title=title, text=verdict.message or verdict.reason, fields=tuple(fields),
                 kind="success" if verdict.promoted else "info", job_id=job.id, card=True)


def figure_fields(figures: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """("File recall", "live 0.82 / candidate 0.80 (may fall 0.05; 12 questions)") rows."""
    rows = []
    for figure in (from_dict(Figure, f) for f in figures or []):
        if figure.live is None and figure.candidate is None:
            continue
        extra = [f"may fall {figure.tolerance:.2f}"] if figure.tolerance else []
        if figure.n:
            extra.append(f"{figure.n} questions")
        rows.append((figure.name[:1].upper() + figure.name[1:],
                     f"live {_fmt('{:.2f}', figure.live)} / candidate "
                     f"{_fmt('{:.2f}', figure.candidate)}"
                     + (f" ({'; '.join(extra)})" if extra else "")))
    return rows
