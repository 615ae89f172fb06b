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
from typing import TYPE_CHECKING, Any, Callable, Protocol

from bot.core.reply import Button, Reply
from engine.views import JobEventView, JobView

if TYPE_CHECKING:
    from engine.app import Engine


class ProgressSink(Protocol):
    def update(self, job: JobView, text: str) -> None:
        """Edit the status message."""

    def finish(self, job: JobView, reply: Reply) -> None:
        """Post the final reply (metrics, loss plot in reply.image, buttons)."""


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
                sink.finish(job, final_reply(job))
                return
            text = progress_text(job)
            now = self.clock()
            if text != last_text and (last_at is None or now - last_at >= self.min_interval_s):
                sink.update(job, text)
                last_text, last_at = text, now
            self.sleep(self.poll_s)
            job = self._read(job_id, events)

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
    data = latest_progress(job)
    phase = PHASES.get(str(data.get("phase", "")), data.get("phase")) or _phase(job)
    parts = [f"Job {job.id} ({job.model_name}): {phase}", bar(job.progress)]
    epoch, epochs = data.get("epoch"), data.get("epochs")
    if data.get("event") == "epoch" and epoch is not None:  # an epoch just ended
        parts.append(f"epoch {epoch}/{epochs} done" if epochs else f"epoch {epoch} done")
        for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
            if isinstance(data.get(key), (int, float)):
                parts.append(f"{label} {data[key]:.3f}")
        return " | ".join(parts)
    if epoch is not None:
        parts.append(f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}")
    step, steps = data.get("step"), data.get("steps") or data.get("total_steps")
    if step is not None:
        parts.append(f"step {step}/{steps}" if steps else f"step {step}")
    loss = data.get("loss", data.get("train_loss"))
    if isinstance(loss, (int, float)):
        parts.append(f"loss {loss:.3f}")
    eta = data.get("eta_s", data.get("eta"))
    if isinstance(eta, (int, float)) and eta >= 0:
        parts.append(f"about {duration(eta)} left")
    return " | ".join(parts)


PHASES = {"select": "training", "final": "final pass on every example",
          "evaluating base": "evaluating the base model", "evaluating": "evaluating",
          "done": "done"}


def latest_progress(job: JobView) -> dict[str, Any]:
    for event in reversed(job.events):
        if event.kind == "progress" and event.data:
            return dict(event.data)
    return {}


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


def _first(metrics: dict[str, Any], keys: str | tuple[str, ...]) -> Any:
    for key in (keys,) if isinstance(keys, str) else keys:
        if metrics.get(key) is not None:
            return metrics[key]
    return None


def _fmt(fmt: str, value: Any) -> str:
    return fmt.format(value) if isinstance(value, (int, float)) else "n/a"


def trained_f1(result: dict[str, Any]) -> float | None:
    for key in ("trained_questions_f1", "trained_token_f1", "train_token_f1", "trained_f1"):
        if isinstance(result.get(key), (int, float)):
            return float(result[key])
    for key in ("trained", "metrics_trained", "trained_metrics"):
        value = result.get(key)
        if isinstance(value, dict) and isinstance(value.get("token_f1"), (int, float)):
            return float(value["token_f1"])
    after = result.get("metrics_after") or {}
    for key in ("trained_questions_f1", "trained_token_f1", "train_token_f1"):
        if isinstance(after.get(key), (int, float)):
            return float(after[key])
    return None


def final_reply(job: JobView) -> Reply:
    """The end of a job: metrics, plot and buttons on success; the reason otherwise."""
    if job.state == "failed":
        doing = "Retraining" if job.kind == "retrain" else "Tuning"
        return Reply(title=f"Job {job.id} failed", kind="error", job_id=job.id,
                     text=f"{doing} {job.model_name} failed: {job.error or 'no reason recorded'}")
    if job.state == "cancelled":
        return Reply(title=f"Job {job.id} cancelled", job_id=job.id,
                     text=f"Tuning {job.model_name} was cancelled; no new version was stored.")
    result = job.result or {}
    if job.kind == "retrain" and "promoted" in result:
        return _retrain_reply(job, result)
    version = result.get("version")
    name = job.model_name
    fields = list(metric_fields(result.get("metrics_before") or {},
                                result.get("metrics_after") or {}))
    f1 = trained_f1(result)
    if f1 is not None:
        fields.append(("Token F1 on the trained questions", f"{f1:.2f}"))
    for key, label in (("train_seconds", "Training time"), ("total_seconds", "Job time")):
        if isinstance(result.get(key), (int, float)):
            fields.append((label, duration(result[key])))
    plot = result.get("plot") or result.get("plot_path") or result.get("loss_plot")
    from pathlib import Path
    image = Path(plot) if plot else None
    text = f"{name} version {version} is live." if version else f"{name} is ready."
    if image is not None:
        text += f" Loss plot: {image}"
    return Reply(title=f"Job {job.id} finished: {name}" + (f" v{version}" if version else ""),
                 text=text, fields=tuple(fields), image=image, kind="success", job_id=job.id,
                 buttons=(Button("Deploy", f"deploy {name}", "primary"),
                          Button("Publish to workspace", f"publish {name} workspace")))


def _retrain_reply(job: JobView, result: dict) -> Reply:
    """A retrain's verdict with both sets of figures: live version against the candidate."""
    live, candidate = result.get("live") or {}, result.get("candidate") or {}
    fields = []
    for key, label in (("token_f1", "Held-out token F1"), ("exact_match", "Held-out exact match"),
                       ("new_pairs_f1", "Token F1 on the new pairs")):
        if live.get(key) is not None and candidate.get(key) is not None:
            fields.append((label, f"live {live[key]:.2f} / candidate {candidate[key]:.2f}"))
    fields.append(("New curated pairs", str(result.get("new_pairs", 0))))
    title = (f"Job {job.id}: {job.model_name} v{result.get('version')} is live"
             if result.get("promoted") else f"Job {job.id}: {job.model_name} kept its live version")
    return Reply(title=title, text=str(result.get("message") or result.get("reason") or ""),
                 fields=tuple(fields), kind="success" if result.get("promoted") else "info",
                 job_id=job.id)
