"""The retrain job body: train a candidate on the model's whole training set (its file's
examples plus every approved curated pair so far), compare it with the live version on named
figures, and make it live only when the gate (engine/retraining/gate.py) says so.

1. The live version is scored: recall of the file's questions, of the curated pairs it was
   trained on (its lessons), of the new approved pairs, and of a held-out share of them.
2. A selection run trains on everything except that held-out share and the file's test split
   (the fixed regression set), with the live version's settings, and is scored on the
   held-out new pairs it never saw ("held-out new pairs": the one figure no run memorised).
   Its epochs are the live version's: early stopping on a handful of unrelated questions
   would pick too few epochs for the file's answers to be recalled.
3. The final candidate trains on everything with the same settings; recall figures are its.
4. The gate compares, and the version records exactly which examples trained it.

EXTRA_FIGURES is where further figures plug in (rephrased questions, off-topic refusal):
each is measured for the live version and the final candidate and goes to the gate.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

from engine.errors import InvalidInput
from engine.jobs.context import JobContext
from engine.retraining.gate import gate
from engine.training.config import TrainConfig
from engine.training.evaluation import evaluate
from engine.training.loop import TrainResult
from engine.views import CuratedView, Figure, RetrainVerdict, as_dict
from engine.workflows.grounding import Grounding
from engine.workflows.steps import (
    dataset_filename,
    Memo,
    answer_budget,
    phase,
    publish,
    stop_if_cancelled,
    train_reporting,
)

# Share of the job's progress bar each phase ends at.
PHASES = {"live": 0.12, "select": 0.50, "final": 0.85, "candidate": 0.97}
HOLD_OUT_EVERY = 4  # every 4th new pair (at least one, when there are two or more)


@dataclass(frozen=True)
class FigureSource:
    """A figure measured on the live version and the final candidate: `measure(model,
    tokenizer, retrain)` (the retrain's `_Retrain`) returns (value, n) or None when there is
    nothing to measure it on."""

    name: str
    tolerance: float | None  # None: GPTSTORE_RETRAIN_TOLERANCE
    measure: Callable[[Any, Any, Any], tuple[float, int] | None]
    meaning: str = ""
    size: Callable[[Any], int] = lambda retrain: 0  # the questions it is measured on


def _rephrased(model: Any, tokenizer: Any, retrain: Any) -> tuple[float, int] | None:
    """Token F1 on rephrasings of the file's questions, answered from retrieved entries as
    users are answered (engine/workflows/grounding.py); None without knowledge."""
    grounding = retrain.grounding
    if grounding is None:
        return None
    figures = grounding.figures(model, tokenizer, retrain.budget)
    return float(figures["rephrased_f1"]), int(figures["n_rephrased"])


# Off-topic refusal is decided by retrieval and the model's threshold, which a retrain does
# not change, so it is the same for both and not a figure of the gate.
EXTRA_FIGURES: tuple[FigureSource, ...] = (
    FigureSource("rephrased questions", None, _rephrased,
                 "token F1 on rephrasings of the file's questions, answered from its entries",
                 lambda retrain: len(retrain.grounding.probes) if retrain.grounding else 0),
)


def run_retrain(ctx: JobContext) -> dict[str, Any]:
    """Retrain ctx.model_name; returns the job's RetrainVerdict as JSON."""
    retrain = _Retrain(ctx)
    retrain.score_live()
    epochs = retrain.select_epochs()
    candidate = retrain.train_final(epochs)
    return as_dict(retrain.decide(candidate))


def chat(pair: CuratedView) -> list[dict[str, str]]:
    return [{"role": "user", "content": pair.question}, {"role": "assistant", "content": pair.answer}]


def held_out(new: list[CuratedView]) -> list[CuratedView]:
    """The share of the new pairs the selection run does not see (fixed by their order)."""
    if len(new) < 2:
        return []
    held = [p for i, p in enumerate(new) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
    return held or [new[-1]]


class _Retrain:
    """The retrain job's inputs and figures, passed from one named step to the next."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        entry = ctx.catalog.job_model(ctx.model_id, ctx.workspace, ctx.model_name)
        self.live = ctx.catalog.live_version(entry)
        self.target = ctx.catalog.live_target(entry)
        curation = ctx.chat.curation
        approved = curation.training_pairs(self.target.model_id)
        trained = curation.live_curated_ids(self.target.model_id)
        self.curated_ids = [p.id for p in approved]
        self.earlier = [chat(p) for p in approved if p.id in trained]
        new = [p for p in approved if p.id not in trained]
        if not new:
            raise InvalidInput(f"No new approved pairs for {ctx.model_name} any more (were "
                               "they rejected or forgotten?); nothing to retrain on.")
        held = held_out(new)
        held_ids = {p.id for p in held}
        self.new = [chat(p) for p in new]
        self.held = [chat(p) for p in held]
        splits = {s: ctx.datasets.examples(ctx.dataset_id, s) if ctx.dataset_id else []
                  for s in ("train", "validation", "test")}
        self.original = splits["train"] + splits["validation"] + splits["test"]
        self.regression = splits["test"] or splits["validation"]
        curated = self.earlier + self.new
        self.everything = self.original + curated
        self.selection_train = ([ex for ex in self.original if ex not in self.regression]
                                + self.earlier
                                + [chat(p) for p in new if p.id not in held_ids])
        self.base, self.tokenizer = ctx.hub.load(self.target.base_path)
        self.budget = answer_budget(self.tokenizer, self.everything, ctx.settings.max_new_tokens)
        self.extra_figures = [f for f in EXTRA_FIGURES
                              if f.name in ctx.settings.retrain_extra_figures]
        knowledge = getattr(ctx, "knowledge", None)
        self.grounding = (Grounding.for_version(ctx, knowledge, dataset_filename(ctx),
                                                self.live.number, self.target.system_prompt)
                          if knowledge is not None else None)
        self.memo = Memo(Path(ctx.checkpoint_dir) / "retrain.json")
        known = {f.name for f in fields(TrainConfig)}
        config = TrainConfig(**{k: (tuple(v) if k == "target_modules" else v)
                                for k, v in self.live.hyperparams.items() if k in known})
        self.config = replace(config, early_stopping=0)

    def _f1(self, model: Any, examples: list) -> float | None:
        if not examples:
            return None
        return round(evaluate(model, self.tokenizer, examples, self.budget)["token_f1"], 4)

    def _recall(self, model: Any) -> dict[str, Any]:
        """The figures both the live version and the final candidate are measured on."""
        scores = {"file recall": self._f1(model, self.original),
                  "earlier lessons": self._f1(model, self.earlier),
                  "new pairs": self._f1(model, self.new)}
        for source in self.extra_figures:
            measured = source.measure(model, self.tokenizer, self)
            scores[source.name] = None if measured is None else round(measured[0], 4)
        return scores

    def score_live(self) -> None:
        """The live version's figures (the "before")."""
        from peft import PeftModel

        if "before" not in self.memo:
            phase(self.ctx, 0.02, f"Evaluating live version {self.live.number} on "
                                  f"{len(self.original)} file questions and {len(self.new)} "
                                  "new approved pairs.", "evaluating live")
            scored = PeftModel.from_pretrained(self.base, self.ctx.hub.local(self.target.adapter_path))
            try:
                scored.eval()
                self.memo["before"] = dict(self._recall(scored),
                                           **{"held-out new pairs": self._f1(scored, self.held)})
            finally:
                self.base = scored.unload()
                self.base.eval()
        stop_if_cancelled(self.ctx)

    def select_epochs(self) -> int:
        """The selection run: trained without the held-out new pairs and the regression set
        (its validation loss is reported on them); scores the held-out new pairs."""
        validation = self.held + self.regression
        if "selection" not in self.memo:
            select = train_reporting(
                self.ctx, self.base, self.tokenizer, self.selection_train, validation, self.config,
                "select", f"Selection run on {len(self.selection_train)} examples "
                          f"({len(self.held)} new pairs and {len(self.regression)} file "
                          "questions held out)", (PHASES["live"], PHASES["select"]))
            try:
                self.memo["selection"] = {"epochs": select.epochs_kept,
                                          "held-out new pairs": self._f1(select.model, self.held)}
            finally:
                self.base = select.model.unload()
                self.base.eval()
        stop_if_cancelled(self.ctx)
        return int(self.memo["selection"]["epochs"])

    def train_final(self, epochs: int) -> TrainResult:
        """The candidate: the whole training set, for the epochs the selection run kept."""
        self.config = replace(self.config, epochs=max(1, epochs))
        return train_reporting(
            self.ctx, self.base, self.tokenizer, self.everything, [], self.config, "retrain",
            f"Retraining on {len(self.original)} file examples + "
            f"{len(self.earlier) + len(self.new)} curated pairs",
            (PHASES["select"], PHASES["final"]))

    def figures(self) -> list[Figure]:
        before, after = self.memo["before"], self.memo["after"]
        tolerance = self.ctx.settings.retrain_tolerance
        meaning = {
            "file recall": ("token F1 on the uploaded file's questions (final candidate)",
                            tolerance, len(self.original)),
            "earlier lessons": ("token F1 on the curated pairs the live version learnt",
                                tolerance, len(self.earlier)),
            "new pairs": ("token F1 on the new approved pairs (final candidate)", 0.0,
                          len(self.new)),
            "held-out new pairs": ("token F1 on new pairs the selection run never saw",
                                   tolerance, len(self.held)),
        }
        for source in self.extra_figures:
            meaning[source.name] = (source.meaning, tolerance if source.tolerance is None
                                    else source.tolerance, source.size(self))
        return [Figure(name=name, live=before.get(name), candidate=after.get(name), n=n,
                       tolerance=tolerance, meaning=text)
                for name, (text, tolerance, n) in meaning.items()]

    def decide(self, candidate: TrainResult) -> RetrainVerdict:
        """Score the candidate, ask the gate, and publish it only when the gate says so."""
        ctx, memo, name = self.ctx, self.memo, self.ctx.model_name
        try:
            phase(ctx, PHASES["final"], "Evaluating the candidate.", "evaluating")
            memo["after"] = dict(self._recall(candidate.model),
                                 **{"held-out new pairs": memo["selection"]["held-out new pairs"]})
            figures = self.figures()
            promote, reason = gate(figures)
            curated = len(self.earlier) + len(self.new)
            verdict = RetrainVerdict(
                promoted=promote, reason=reason, live=memo["before"], candidate=memo["after"],
                new_pairs=len(self.new), model=name, previous_version=self.live.number,
                figures=[as_dict(f) for f in figures], file_examples=len(self.original),
                curated=curated)
            shown = "; ".join(f"{f.name} {_two(f.live)} -> {_two(f.candidate)}" for f in figures
                              if f.live is not None or f.candidate is not None)
            if promote:
                stop_if_cancelled(ctx)
                known = evaluate(candidate.model, self.tokenizer, self.everything, self.budget)
                saved = publish(ctx, candidate, self.config, candidate.history,
                                candidate.best_epoch, memo, known,
                                f"{name}'s file ({len(self.original)} examples) and "
                                f"{curated} approved curated pairs", len(self.everything),
                                self.config.epochs or candidate.epochs_kept,
                                file_examples=len(self.original), curated_ids=self.curated_ids,
                                gate=verdict.figures)
                message = (f"Version {saved.version} of {name} is live (trained on "
                           f"{len(self.original)} file examples + {curated} curated): {reason}. "
                           f"Live -> candidate: {shown}.")
                verdict = replace(verdict, version=saved.version, adapter=saved.adapter,
                                  plot=saved.plot, message=message)
            else:
                verdict = replace(verdict, message=(
                    f"Kept version {self.live.number} of {name} live: {reason}. "
                    f"Live -> candidate: {shown}."))
            ctx.report(1.0, verdict.message, as_dict(verdict), kind="metrics")
        finally:
            candidate.model.unload().eval()
        return verdict


def _two(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
