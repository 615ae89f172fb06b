"""The tune job body on a real store with the tiny model: version, metrics, plot, cancel, resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.catalog import names
from engine.errors import Cancelled
from engine.jobs.context import JobContext
from engine.workflows.tune import run_tune

CSV = "question,answer\n" + "".join(
    f"What is the door code of room {i}?,Room {i} opens with code {c}.\n"
    for i, c in enumerate(["K7", "Q2", "Z9", "M4", "B8", "T3", "W6", "R1", "P5", "H0", "C4", "D2"]))


def context(engine, admin, checkpoint_dir: Path, reports: list, stop=lambda: False,
            dataset_id: int | None = None) -> JobContext:
    engine.catalog.create_or_get_tuned(admin, "door-bot", "tiny")
    if dataset_id is None:
        dataset_id = engine.datasets.store(admin, "doors.csv", CSV.encode()).dataset_id
    return JobContext(
        job_id=1, kind="tune", model_name="door-bot", base_name="tiny",
        dataset_id=dataset_id, owner=admin.user, workspace=admin.workspace,
        params={"epochs": "2", "batch_size": "4", "lr": "1e-2"}, checkpoint_dir=checkpoint_dir,
        settings=engine.settings, db=engine.db, catalog=engine.catalog,
        datasets=engine.datasets, hub=engine.hub, artifacts=engine.artifacts,
        report=lambda progress, message, data=None, kind="progress": reports.append(
            (progress, message, data or {}, kind)),
        should_stop=stop)


def lora_layers(model) -> list[str]:
    return [n for n, _ in model.named_parameters() if "lora_" in n]


def test_tune_stores_a_live_version_trained_on_every_example(engine, admin, tmp_path) -> None:
    reports: list = []
    result = run_tune(context(engine, admin, tmp_path / "ckpt", reports))
    card = engine.catalog.card(admin, "door-bot")
    assert result["version"] == 1 and card.live_version == 1
    version = card.versions[0]
    assert version.notes.startswith("Trained for 2 epochs on the train split (as requested), "
                                    "then 2 more on all 12 examples of doors.csv")
    assert "from before the test split was trained on" in version.notes
    held_out = version.metrics_after["n"]
    assert held_out >= 1 and version.metrics_before["n"] == held_out
    assert {"token_f1", "exact_match", "loss"} <= set(version.metrics_before)
    assert 0.0 <= version.metrics_after["trained_questions_f1"] <= 1.0
    assert version.hyperparams["epochs"] == 2 and version.hyperparams["final_examples"] == 12
    assert version.hyperparams["final_epochs"] == 2
    assert result["adapter"].startswith("artifact:")  # by content hash, not a local path
    entry = engine.catalog.resolve(admin, "door-bot")
    assert engine.catalog.live_target(entry).adapter_path == result["adapter"]
    folder = engine.artifacts.local(result["adapter"])
    assert (folder / "adapter_config.json").exists()
    assert engine.artifacts.local(result["plot"]).read_bytes()[:4] == b"\x89PNG"
    temps = engine.settings.adapters_dir / names.folder(entry)  # workspace/name
    assert list(temps.iterdir()) == []  # no temporary folder left
    progress = [p for p, _, _, kind in reports if kind == "progress"]
    assert progress == sorted(progress) and progress[-1] < 1.0 and reports[-1][0] == 1.0
    phases = {data.get("phase") for _, _, data, _ in reports}
    assert {"evaluating base", "select", "evaluating", "final", "done"} <= phases
    assert any("Training: epoch 2/2 done" in m for _, m, _, _ in reports)
    tiny = engine.catalog.resolve(admin, "tiny")
    base, _ = engine.hub.load(engine.catalog.live_target(tiny).base_path)
    assert lora_layers(base) == []  # the shared base model is handed back untouched


def test_a_cancelled_tune_leaves_no_version(engine, admin, tmp_path) -> None:
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 8  # inside the final pass

    with pytest.raises(Cancelled):
        run_tune(context(engine, admin, tmp_path / "ckpt", [], stop))
    assert engine.catalog.card(admin, "door-bot").versions == []
    adapters = engine.settings.adapters_dir / "local" / "door-bot"
    assert not adapters.exists() or list(adapters.iterdir()) == []
    tiny = engine.catalog.resolve(admin, "tiny")
    base, _ = engine.hub.load(engine.catalog.live_target(tiny).base_path)
    assert lora_layers(base) == []


def test_a_resumed_tune_skips_the_work_already_done(engine, admin, tmp_path) -> None:
    first: list = []

    def stop_in_final_pass() -> bool:  # once the final pass has made a step
        return any(data.get("phase") == "final" for _, _, data, _ in first)

    ctx = context(engine, admin, tmp_path / "ckpt", first, stop_in_final_pass)
    with pytest.raises(Cancelled):
        run_tune(ctx)
    again: list = []
    result = run_tune(context(engine, admin, tmp_path / "ckpt", again, dataset_id=ctx.dataset_id))
    assert result["version"] == 1
    phases = [data.get("phase") for _, _, data, _ in again]
    assert "evaluating base" not in phases and "select" not in phases  # done before the stop
    assert "final" in phases
