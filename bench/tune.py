"""`gptstore bench tune`: the whole tune job, end to end, against the job as it was.

For each size (`--sizes`, default 46,200: the sample FAQ, engine/datasets/samples/
sample_faq.csv, and a 200-pair file made from it by asking its questions again with other
openings), one temporary store (SQLite) holds the file as an uploaded dataset; then, in the
same process, interleaved (the first arm alternates between sizes):
- `new`: the tune job body itself (engine.workflows.tune.run_tune): evaluation through the
  batched decoder, the final pass continuing the selection run's adapter on every example
  for a third of the epochs, the version saved into the artifact store and made live;
- `baseline`: the job as it was before, rebuilt from the same parts on the same splits:
  evaluation through transformers `generate` in left-padded batches, and a final pass
  trained afresh on every example for all the epochs; the adapter saved to a folder.
Both load the base model from disk (a fresh hub each) and use the same torch thread count
(chosen once per process from the measured load, engine.training.threads).

Figures per arm: wall time by phase (load, evaluating base, select = the selection run's
training, evaluating = held out, final = the final pass, checking = the file's own questions,
saving), this process's CPU seconds in each phase and the cores it used (CPU time / wall
time), training tokens/s, and the quality figures: held-out token F1 before and after,
trained-question token F1 (the file's own questions), and rephrased-question F1 (bench/data/sample_faq_rephrased.csv,
columns question and answer, when the file exists; sample FAQ size only). `ratio` = baseline
wall time / new wall time on the first size (higher is better); `ratio_cpu_total` compares
CPU seconds, which on a shared machine move far less with other processes' load. Goal on
the 2-core CPU: the 46-pair FAQ live in at most 120 s with trained-question F1 >= 0.95.

Options: --sizes 46,200 (pairs per file; at most 46 takes the sample's first rows),
--arms new,baseline, --epochs N (default: picked from the file's size, as `tune` does),
--model bundled|tiny (tiny: the 2-layer test model, seconds, figures without meaning for
quality), --rephrased PATH.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from bench.common import faq_examples, options

REPHRASED = Path(__file__).parent / "data" / "sample_faq_rephrased.csv"
OPENINGS = ["", "Quick question: ", "Hello! ", "Hi team, ", "One more thing: "]
PHASE_OF = {"evaluating base": "evaluating_base", "select": "select", "final": "final",
            "saving": "saving"}


def pairs_for(size: int) -> list[tuple[str, str]]:
    """`size` question-answer pairs: the sample FAQ's, then its questions again with other
    openings (the same answers)."""
    sample = [(ex[0]["content"], ex[1]["content"]) for ex in faq_examples()]
    out: list[tuple[str, str]] = []
    for opening in OPENINGS * (size // (len(sample) * len(OPENINGS)) + 1):
        for question, answer in sample:
            asked = opening + (question[0].lower() + question[1:] if opening else question)
            out.append((asked, answer))
    return out[:size]


def as_csv(pairs: list[tuple[str, str]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["question", "answer"])
    writer.writerows(pairs)
    return text.getvalue().encode()


def rephrased_examples(path: Path) -> list[list[dict[str, str]]]:
    """The rephrased questions with their reference answers, or [] when there is no file."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    key = next((k for k in ("question", "rephrased", "rephrased_question")
                if rows and k in rows[0]), None)
    if key is None or "answer" not in rows[0]:
        return []
    return [[{"role": "user", "content": r[key]}, {"role": "assistant", "content": r["answer"]}]
            for r in rows if r[key].strip() and r["answer"].strip()]


class Clock:
    """Wall time and this process's CPU time per named phase."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}
        self.current: str | None = None
        self.started = self.at = time.perf_counter()
        self.cpu = self._cpu()

    @staticmethod
    def _cpu() -> float:
        times = os.times()
        return times.user + times.system

    def enter(self, name: str) -> None:
        now, cpu = time.perf_counter(), self._cpu()
        if self.current is not None:
            seen = self.phases.setdefault(self.current, {"seconds": 0.0, "cpu": 0.0})
            seen["seconds"] += now - self.at
            seen["cpu"] += cpu - self.cpu
        self.current, self.at, self.cpu = name, now, cpu
        if name:
            print(f"  {time.strftime('%H:%M:%S')} {name} (load {os.getloadavg()[0]:.2f})",
                  file=sys.stderr, flush=True)

    def figures(self) -> dict[str, Any]:
        self.enter("")
        total = sum(p["seconds"] for p in self.phases.values())
        return {"total_s": round(total, 1),
                "cpu_total_s": round(sum(p["cpu"] for p in self.phases.values()), 1),
                "phase_s": {k: round(v["seconds"], 1) for k, v in self.phases.items() if k},
                "phase_cpu_s": {k: round(v["cpu"], 1) for k, v in self.phases.items() if k},
                "cores_used": {k: round(v["cpu"] / max(v["seconds"], 1e-9), 2)
                               for k, v in self.phases.items() if k}}


def new_arm(engine: Any, admin: Any, dataset_id: int, base: str, params: dict,
            home: Path, rephrased: list) -> dict[str, Any]:
    """The tune job body as `gptstore tune` runs it, phases read from its reports."""
    from engine.jobs.context import JobContext
    from engine.training.evaluation import evaluate
    from engine.workflows.tune import run_tune

    engine.catalog.create_or_get_tuned(admin, "faq-bot", base)
    clock = Clock()
    clock.enter("load")
    seen = {"evaluating": 0}

    def report(progress: float, message: str, data: dict | None = None,
               kind: str = "progress") -> None:
        name = (data or {}).get("phase")
        if name == "evaluating":  # the held-out questions, then the file's own
            seen["evaluating"] += 1
            clock.enter("evaluating" if seen["evaluating"] == 1 else "checking")
        elif name in PHASE_OF and clock.current != PHASE_OF[name]:
            clock.enter(PHASE_OF[name])

    ctx = JobContext(
        job_id=1, kind="tune", model_name="faq-bot", base_name=base, dataset_id=dataset_id,
        owner=admin.user, workspace=admin.workspace, params=dict(params),
        checkpoint_dir=home / "ckpt-new", settings=engine.settings, db=engine.db,
        catalog=engine.catalog, datasets=engine.datasets, hub=engine.hub,
        artifacts=engine.artifacts, report=report, should_stop=lambda: False)
    result = run_tune(ctx)
    figures = clock.figures()
    quality = {"held_out_f1_before": result["metrics_before"]["token_f1"],
               "held_out_f1_after": result["metrics_after"]["token_f1"],
               "trained_questions_f1": result["trained_questions_f1"]}
    if rephrased:
        from peft import PeftModel

        model, tokenizer = engine.hub.load(engine.catalog.live_target(
            engine.catalog.resolve(admin, base)).base_path)
        tuned = PeftModel.from_pretrained(model, engine.artifacts.local(result["adapter"]))
        try:
            quality["rephrased_f1"] = _f1(tuned, tokenizer, rephrased, evaluate)
        finally:
            tuned.unload().eval()
    return dict(figures, epochs=result["epochs"],
                final_epochs=engine.catalog.card(admin, "faq-bot").versions[0].hyperparams.get(
                    "final_epochs"),
                train_s=result["train_seconds"], tokens_per_s=result["tokens_per_s"], **quality)


def baseline_arm(settings: Any, splits: dict, base_path: str, params: dict, home: Path,
                 rephrased: list) -> dict[str, Any]:
    """The job as it was: `generate` evaluation, a final pass trained afresh on all."""
    from engine.training.config import TrainConfig
    from engine.training.evaluation import evaluate, validation_loss
    from engine.training.loop import train
    from engine.weights import ModelHub
    from engine.workflows.steps import answer_budget

    def score(model: Any, examples: list) -> float:
        scores = evaluate(model, tokenizer, examples, budget, method="generate")
        validation_loss(model, tokenizer, examples)
        return scores["token_f1"]

    clock = Clock()
    clock.enter("load")
    config = TrainConfig.from_options(params)
    everything = splits["train"] + splits["validation"] + splits["test"]
    model, tokenizer = ModelHub(settings).load(base_path)
    budget = answer_budget(tokenizer, everything, settings.max_new_tokens)
    clock.enter("evaluating_base")
    before = score(model, splits["test"])
    clock.enter("select")
    select = train(model, tokenizer, splits["train"], splits["validation"], config,
                   checkpoint_dir=home / "ckpt-baseline" / "select")
    clock.enter("evaluating")
    after = score(select.model, splits["test"])
    model = select.model.unload()
    model.eval()
    clock.enter("final")
    final = train(model, tokenizer, everything, [],
                  replace(config, epochs=select.epochs_kept, early_stopping=0),
                  checkpoint_dir=home / "ckpt-baseline" / "final")
    clock.enter("checking")
    known = evaluate(final.model, tokenizer, everything, budget, method="generate")
    clock.enter("saving")
    final.model.save_pretrained(home / "baseline-adapter")
    figures = clock.figures()
    quality = {"held_out_f1_before": before, "held_out_f1_after": after,
               "trained_questions_f1": known["token_f1"]}
    if rephrased:
        quality["rephrased_f1"] = _f1(final.model, tokenizer, rephrased, evaluate,
                                      method="generate")
    final.model.unload().eval()
    seconds = select.train_seconds + final.train_seconds
    return dict(figures, epochs=select.epochs_kept, final_epochs=select.epochs_kept,
                train_s=round(seconds, 1),
                tokens_per_s=round((select.tokens + final.tokens) / max(seconds, 1e-9), 1),
                **quality)


def _f1(model: Any, tokenizer: Any, examples: list, evaluate: Callable, **more: Any) -> float:
    from engine.workflows.steps import answer_budget

    budget = answer_budget(tokenizer, examples, 256)
    return evaluate(model, tokenizer, examples, budget, **more)["token_f1"]


def base_folder(kind: str, home: Path) -> str:
    from engine.settings import Settings
    from engine.weights import BUNDLED_NAME, ModelHub

    if kind == "tiny":
        from engine.testing import tiny_model

        folder = home / "tiny-base"
        folder.mkdir(parents=True, exist_ok=True)
        return str(tiny_model(folder))
    if kind != "bundled":
        raise SystemExit("--model must be bundled or tiny")
    # the user's converted cache of the bundled model (converted once if it is missing)
    return str(ModelHub(Settings.from_env().with_(device="cpu")).base_weights_path(
        f"bundled:{BUNDLED_NAME}"))


def one_size(size: int, arms: list[str], kind: str, params: dict,
             rephrased: list) -> dict[str, Any]:
    from engine.app import Engine
    from engine.identity import Caller
    from engine.jobs.backends import ThreadBackend
    from engine.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-tune-") as folder:
        home = Path(folder)
        path = base_folder(kind, home)
        settings = Settings.from_env({"GPTSTORE_HOME": str(home / "store"),
                                      "GPTSTORE_DEVICE": "cpu"})
        engine = Engine.open(settings, job_backend=ThreadBackend(settings))
        try:
            admin = Caller.console("bench")
            engine.catalog.add_base(admin, "base", path, description="benchmark base")
            report = engine.datasets.store(admin, f"faq-{size}.csv", as_csv(pairs_for(size)))
            splits = {s: engine.datasets.examples(report.dataset_id, s)
                      for s in ("train", "validation", "test")}
            figures: dict[str, Any] = {"pairs": size,
                                       "split": {k: len(v) for k, v in splits.items()}}
            for arm in arms:
                load = os.getloadavg()[0]
                started = time.perf_counter()
                if arm == "new":
                    figures[arm] = new_arm(engine, admin, report.dataset_id, "base", params,
                                           home, rephrased)
                else:
                    figures[arm] = baseline_arm(settings, splits, path, params, home,
                                                rephrased)
                figures[arm]["load_average_before"] = round(load, 2)
                print(f"{size} pairs, {arm}: {time.perf_counter() - started:.0f} s, "
                      f"{figures[arm]}", file=sys.stderr, flush=True)
        finally:
            engine.close()
    if "new" in figures and "baseline" in figures:
        new, old = figures["new"], figures["baseline"]
        figures["ratio_total"] = round(old["total_s"] / max(new["total_s"], 1e-9), 2)
        # CPU time is what each arm computed; on a shared machine it moves far less with
        # the other processes' load than wall time does
        figures["ratio_cpu_total"] = round(old["cpu_total_s"] / max(new["cpu_total_s"], 1e-9), 2)
        for part in ("evaluating_base", "evaluating", "checking"):
            if part in new["phase_s"] and part in old["phase_s"]:
                figures[f"ratio_{part}"] = round(old["phase_s"][part]
                                                 / max(new["phase_s"][part], 1e-9), 2)
        train_new = new["phase_s"].get("select", 0) + new["phase_s"].get("final", 0)
        train_old = old["phase_s"].get("select", 0) + old["phase_s"].get("final", 0)
        figures["ratio_training"] = round(train_old / max(train_new, 1e-9), 2)
    return figures


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def run(args: list[str]) -> dict[str, Any]:
    from transformers.utils import logging as hf_logging

    from engine.training import threads

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    given = options(args, sizes="46,200", arms="new,baseline", epochs=0, model="bundled",
                    rephrased=str(REPHRASED))
    sizes = [int(s) for s in given["sizes"].split(",") if s.strip()]
    arms = [a.strip() for a in given["arms"].split(",") if a.strip()]
    if not sizes or any(s < 10 for s in sizes) or not set(arms) <= {"new", "baseline"} \
            or not arms:
        raise SystemExit("--sizes takes pair counts of at least 10; --arms new and/or baseline")
    params = {"epochs": str(given["epochs"])} if given["epochs"] else {}
    rephrased = rephrased_examples(Path(given["rephrased"]))
    load_before = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, Any] = {}
    for i, size in enumerate(sizes):
        order = arms if i % 2 == 0 else list(reversed(arms))  # neither arm always first
        results[f"pairs_{size}"] = one_size(size, order, given["model"], params,
                                            rephrased if size <= 46 else [])
    first = results[f"pairs_{sizes[0]}"]
    figures: dict[str, Any] = {
        "model": given["model"], "machine": machine(),
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "torch_threads": threads._threads_for_this_process(),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rephrased_file": str(given["rephrased"]) if rephrased else "absent: skipped",
        **results,
    }
    if "ratio_total" in first:
        figures["ratio"] = first["ratio_total"]
    if "new" in first:
        figures["goal_met"] = bool(first["new"]["total_s"] <= 120
                                   and (first["new"]["trained_questions_f1"] or 0) >= 0.95)
    return figures
