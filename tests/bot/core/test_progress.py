"""Following a job: throttled progress updates, then one final reply with metrics or the reason."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from bot.core.progress import JobWatcher, final_reply, progress_text
from bot.core.reply import Reply
from engine.views import JobEventView, JobView, Origin

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def job(state: str, progress: float = 0.0, data: dict | None = None, result: dict | None = None,
        error: str = "") -> JobView:
    events = [JobEventView(id=1, at=T0, kind="state", message=state)]
    if data:
        events.append(JobEventView(id=2, at=T0, kind="progress", message="training", data=data))
    return JobView(id=7, kind="tune", state=state, model_name="acme", base_name="tiny",
                   owner="console:a", workspace="local", progress=progress, params={},
                   origin=Origin(), result=result or {}, error=error, created_at=T0,
                   started_at=None, finished_at=None, events=events)


@dataclass
class ScriptedJobs:
    """A job service whose job moves through a fixed list of states, one per read."""

    script: list[JobView]
    reads: int = 0

    def view(self, job_id: int) -> JobView:
        view = self.script[min(self.reads, len(self.script) - 1)]
        self.reads += 1
        return replace(view, events=[])

    def events_since(self, job_id: int, after_id: int = 0) -> list[JobEventView]:
        view = self.script[min(self.reads - 1, len(self.script) - 1)]
        return [JobEventView(id=after_id + 1 + i, at=e.at, kind=e.kind, message=e.message,
                             data=e.data) for i, e in enumerate(view.events)]


@dataclass
class FakeEngine:
    jobs: ScriptedJobs


@dataclass
class Recorder:
    updates: list[str] = field(default_factory=list)
    finished: list[Reply] = field(default_factory=list)

    def update(self, job: JobView, text: str) -> None:
        self.updates.append(text)

    def finish(self, job: JobView, reply: Reply) -> None:
        self.finished.append(reply)


SUCCESS = {"version": 1, "metrics_before": {"exact_match": 0.0, "token_f1": 0.14,
                                            "validation_loss": 3.2},
           "metrics_after": {"exact_match": 0.5, "token_f1": 0.65, "validation_loss": 1.1},
           "trained_questions_f1": 0.91, "plot": "/store/jobs/7/loss.png"}


def test_progress_text_shows_phase_epoch_step_loss_and_eta() -> None:
    text = progress_text(job("running", 0.5, {"phase": "training", "epoch": 2, "epochs": 4,
                                              "step": 10, "total_steps": 20, "loss": 1.23456,
                                              "eta_s": 95}))
    assert "training" in text and "epoch 2/4" in text and "step 10/20" in text
    assert "loss 1.235" in text and "1m 35s left" in text and "50%" in text


def test_an_epoch_end_shows_train_and_validation_loss() -> None:
    text = progress_text(job("running", 0.5, {"event": "epoch", "epoch": 2, "epochs": 4,
                                              "train_loss": 1.5, "val_loss": 1.75}))
    assert "epoch 2/4 done" in text and "train loss 1.500" in text
    assert "validation loss 1.750" in text


def test_watcher_throttles_updates_then_finishes_once() -> None:
    script = [job("queued"), job("running", 0.1, {"epoch": 1, "epochs": 2, "loss": 2.0}),
              job("running", 0.2, {"epoch": 1, "epochs": 2, "loss": 1.5}),
              job("running", 0.6, {"epoch": 2, "epochs": 2, "loss": 1.0}),
              job("succeeded", 1.0, result=SUCCESS)]
    now = [0.0]
    sink = Recorder()
    watcher = JobWatcher(FakeEngine(ScriptedJobs(script)), poll_s=1.0, min_interval_s=2.0,
                         clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    watcher.run(7, sink)
    # reads at t=0,1,2,3,4: updates allowed at t=0 and t=2 only (2 s apart)
    assert len(sink.updates) == 2
    assert "loss 1.500" in sink.updates[1]
    assert len(sink.finished) == 1 and sink.finished[0].kind == "success"


def test_final_reply_has_before_after_metrics_plot_and_buttons() -> None:
    reply = final_reply(job("succeeded", 1.0, result=SUCCESS))
    fields = dict(reply.fields)
    assert fields["Token F1"] == "0.14 -> 0.65"
    assert fields["Exact match"] == "0% -> 50%"
    assert fields["Validation loss"] == "3.200 -> 1.100"
    assert fields["Token F1 on the trained questions"] == "0.91"
    assert reply.image == Path("/store/jobs/7/loss.png")
    assert [(b.label, b.command) for b in reply.buttons] == [
        ("Deploy", "deploy acme"), ("Publish to workspace", "publish acme workspace")]


def test_a_failed_job_says_why() -> None:
    reply = final_reply(job("failed", error="The file has only 3 examples; 10 are needed."))
    assert reply.kind == "error" and "only 3 examples" in reply.text and not reply.buttons


def test_a_watcher_error_does_not_escape_its_thread() -> None:
    class Broken:
        def view(self, job_id):
            raise RuntimeError("database gone")

    sink = Recorder()
    thread = JobWatcher(FakeEngine(Broken())).follow(7, sink)
    thread.join()
    assert sink.finished == []
