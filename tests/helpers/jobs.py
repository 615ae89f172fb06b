"""A fast, checkpointing fake job body and a bare engine, for the queue-mechanics tests.

The body runs `steps` steps; after each it appends "STEP PID" to params["log"] and then
saves the next step to its checkpoint, so a resumed run continues where the last one stopped
and the log shows whether any step ran twice. With `block_at`, the first run that reaches
that step writes params["marker"] and waits (until cancelled, or until its process is
killed); later runs go on. The "version" file is written only at the very end.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine.errors import Cancelled
from engine.jobs.context import JobContext
from engine.settings import Settings
from storage.db import Database


def bare_engine(settings: Settings) -> Any:
    """Just the database: the fake body needs nothing else."""
    db = Database(settings.database_url)
    return SimpleNamespace(db=db, catalog=None, datasets=None, hub=None, close=db.close)


def stepping(ctx: JobContext) -> dict:
    params = ctx.params
    steps = int(params.get("steps", 5))
    log = Path(params["log"])
    checkpoint = ctx.checkpoint_dir / "next_step.txt"
    start = int(checkpoint.read_text()) if checkpoint.exists() else 0
    block_at = params.get("block_at")
    marker = Path(params["marker"]) if params.get("marker") else None
    for step in range(start, steps):
        if ctx.should_stop():
            raise Cancelled()
        if step == block_at and marker is not None and not marker.exists():
            marker.write_text(str(os.getpid()))
            while not ctx.should_stop():
                time.sleep(0.02)
            raise Cancelled()
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{step} {os.getpid()}\n")
        tmp = checkpoint.with_suffix(".tmp")
        tmp.write_text(str(step + 1))
        tmp.replace(checkpoint)
        ctx.report((step + 1) / steps, f"Step {step + 1} of {steps}.", {"step": step + 1})
    if params.get("version"):
        Path(params["version"]).write_text("adapter")
    return {"steps": steps, "resumed_from": start}


def failing(ctx: JobContext) -> dict:
    raise RuntimeError("boom: a bug in the job body")


BLOCK_MARKER = "GPTSTORE_TEST_BLOCK_MARKER"  # env of the test's workers: where to say "blocked"
RELEASE = "GPTSTORE_TEST_RELEASE"  # env: a model named "gated" waits for this file to exist


def tune_blocking(ctx: JobContext) -> dict:
    """The real tune body; for a model named "killed", the first run stops dead right after
    its first checkpoint inside an epoch past step 1 (it writes the marker with its pid and
    waits to be killed), so a test can SIGKILL its worker mid-epoch at a known step. A model
    named "gated" waits after its first checkpoint until the RELEASE file exists."""
    from dataclasses import replace

    from engine.workflows.tune import run_tune

    marker = Path(os.environ[BLOCK_MARKER]) if os.environ.get(BLOCK_MARKER) else None
    saved = ctx.checkpoint_saved

    def checkpoint_saved(note: dict) -> None:
        saved(note)
        release = Path(os.environ.get(RELEASE, "/nonexistent"))
        if ctx.model_name == "gated" and marker is not None and not release.exists():
            marker.write_text(f"{os.getpid()} {note['stage']} {note['to_step']}")
            while not release.exists():  # the test lets the job go on
                time.sleep(0.05)
        if (marker is not None and ctx.model_name == "killed" and not marker.exists()
                and note.get("mid_epoch") and note.get("to_step", 0) >= 2):
            marker.write_text(f"{os.getpid()} {note['stage']} {note['to_step']}")
            while True:  # until SIGKILL
                time.sleep(0.05)

    return run_tune(replace(ctx, checkpoint_saved=checkpoint_saved))
