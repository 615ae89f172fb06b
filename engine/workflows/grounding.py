"""The tune job's grounding steps: the file's Q&A rows indexed into the model's knowledge,
grounded training examples (the right entry among distractors, sometimes missing), the
decline threshold calibrated from retrieval scores, and the FAQ figures of the final adapter:
token F1 on rephrased questions, citation accuracy, off-topic declined and in-scope wrongly
declined (docs/grounding.md says how each is measured).

Until the version is published its entries live under a staging version key (-job id), so a
failed or cancelled tune leaves the live version's knowledge as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from engine.datasets import GENERAL_QUESTIONS
from engine.knowledge.prompt import build_prompt_messages
from engine.knowledge.service import CONTEXT_K, Retrieval
from engine.training.evaluation import generate_answers, normalize, token_f1
from engine.training.faq_metrics import (
    Calibration,
    calibrate_threshold,
    citation_accuracy,
    declined_share,
    mean_token_f1,
)
from engine.training.grounded import CONTEXT_SIZES, Entry, grounded_examples, nearest_entries
from engine.training.rephrase import rephrase

if TYPE_CHECKING:
    from engine.jobs.context import JobContext
    from engine.knowledge.service import Knowledge

MAX_PROBES = 60  # rephrased questions scored by the job (generation costs time)
REPHRASED_FROM_FILE = "validation file"
REPHRASED_BY_RULES = "rewording rules"


@dataclass(frozen=True)
class Probe:
    """A question in other words than the file's, and the entry that answers it."""

    question: str
    entry: int


@dataclass
class Grounding:
    """The file's entries in the model's knowledge, and what the job measures with them."""

    knowledge: "Knowledge"
    model_id: int
    filename: str
    staging: int  # the version key the entries live under until the version is published
    rows: list[tuple[int, str, str]]  # (row number, question, answer) as indexed
    entries: list[Entry]
    probes: list[Probe]  # rephrased questions, for the figures and the threshold
    rephrased_from: str
    system: str = ""
    calibration: Optional[Calibration] = None
    calibration_set: list[str] = field(default_factory=list)
    measure_set: list[str] = field(default_factory=list)

    # -- before training -----------------------------------------------------------------------

    @classmethod
    def for_version(cls, ctx: "JobContext", knowledge: "Knowledge", filename: str,
                    version: int, system: str = "") -> Optional["Grounding"]:
        """A retrain's view: the entries `version` answers from as they are (nothing is
        indexed), the model's current threshold, and rephrasings of the file's questions by
        the rewording rules, so the live version and the candidate are measured alike.
        None when the model has no knowledge to answer from."""
        if ctx.model_id is None or ctx.dataset_id is None:
            return None
        model_id = int(ctx.model_id)
        if not knowledge.entry_count(model_id, version):
            return None
        indexed, given = split_rows(ctx.datasets.file_rows(ctx.dataset_id))
        entries = [Entry(entry_ref(filename, n), q, a) for n, q, a in indexed]
        probes = validation_probes(entries, given)
        source = REPHRASED_FROM_FILE
        if not probes:
            probes, source = rule_probes(entries), REPHRASED_BY_RULES
        if not probes:
            return None
        general = general_questions()
        made = cls(knowledge, model_id, filename, version, indexed, entries, probes[:MAX_PROBES],
                   source, system, measure_set=general[1::2])
        made.calibration = Calibration(threshold=knowledge.threshold(model_id),
                                       off_topic_declined=0.0, in_scope_declined=0.0,
                                       n_in_scope=0, n_off_topic=0)
        return made

    @classmethod
    def prepare(cls, ctx: "JobContext", knowledge: "Knowledge", filename: str,
                system: str = "") -> "Grounding":
        """Index the file's rows under the staging key and find the rephrased questions:
        the validation file's (a question the file lacks, with an answer the file has) or,
        without one, rephrasings made by the rewording rules."""
        if ctx.model_id is None:
            entry = ctx.catalog.job_model(ctx.model_id, ctx.workspace, ctx.model_name)
            model_id = int(entry.id)
        else:
            model_id = int(ctx.model_id)
        indexed, given = split_rows(ctx.datasets.file_rows(ctx.dataset_id))
        staging = -abs(int(ctx.job_id or 1))
        knowledge.index_examples(model_id, staging, filename, indexed)
        entries = [Entry(entry_ref(filename, n), q, a) for n, q, a in indexed]
        probes = validation_probes(entries, given)
        source = REPHRASED_FROM_FILE
        if not probes:
            probes, source = rule_probes(entries), REPHRASED_BY_RULES
        general = general_questions()
        return cls(knowledge, model_id, filename, staging, indexed, entries,
                   probes[:MAX_PROBES], source, system,
                   calibration_set=general[0::2], measure_set=general[1::2])

    def training_examples(self, only: Optional[Sequence[str]] = None,
                          seed: int = 0) -> list[list[dict[str, str]]]:
        """Grounded examples for the entries whose question is in `only` (all when None):
        each with the entries retrieval puts beside it, a quarter without it."""
        wanted = None if only is None else {normalize(q) for q in only}
        chosen = [e for e in self.entries if wanted is None or normalize(e.question) in wanted]
        if not chosen:
            return []
        refs = {e.ref for e in chosen}

        def search(question: str) -> list[str]:
            found = self.knowledge.search(self.model_id, self.staging, question, k=CONTEXT_K + 1)
            return [p.ref for p in found if p.ref in refs]

        # Two grounded copies of each entry: one asked in the file's words, one in the words of
        # a rewording rule that the measured rephrasings do not use (training_rephrasing), so
        # that the adapter learns to find the entry a question means, not the same words.
        near = nearest_entries(chosen, search)
        own = grounded_examples(chosen, near, system=self.system, context_entries=CONTEXT_K,
                                context_sizes=CONTEXT_SIZES, seed=seed)
        wordings = {i: [training_rephrasing(e.question)] for i, e in enumerate(chosen)}
        reworded = grounded_examples(chosen, near, system=self.system,
                                     context_entries=CONTEXT_K, context_sizes=CONTEXT_SIZES,
                                     seed=seed + 1, rephrasings=wordings, every_rephrased=True)
        return [b.messages for b in own + reworded]

    def calibrate(self) -> Calibration:
        """The threshold: the best retrieval score of each rephrased question against that of
        each general question of the calibration half, at most 5% in-scope declined."""
        in_scope = [self.best(p.question) for p in self.probes]
        off_topic = [self.best(q) for q in self.calibration_set]
        self.calibration = calibrate_threshold(in_scope, off_topic)
        return self.calibration

    # -- after training ------------------------------------------------------------------------

    def figures(self, model: Any, tokenizer: Any, budget: int,
                recall_f1: Optional[float] = None, copy: bool = True) -> dict[str, Any]:
        """The final adapter answering the rephrased questions from retrieved entries as chat
        answers them (copy=False: without holding an answer to the entry it starts to give),
        and the declines of the threshold on the other half of the general questions."""
        calibration = self.calibration or self.calibrate()
        threshold = calibration.threshold
        found = [self.retrieve(p.question, threshold) for p in self.probes]
        asked = [i for i, r in enumerate(found) if r.in_scope]
        prompts = [build_prompt_messages(self.system, [], self.probes[i].question,
                                         found[i].context) for i in asked]
        generated = generate_answers(model, tokenizer, prompts, budget,
                                     copy_from=[found[i].copyable for i in asked] if copy
                                     else None) if prompts else []
        answers = [""] * len(self.probes)
        for i, text in zip(asked, generated):
            answers[i] = text
        shown = [r.sources_for(a) for r, a in zip(found, answers)]
        cited = [s[0].ref if s else None for s in shown]
        off = [self.retrieve(q, threshold) for q in self.measure_set]
        return {
            "rephrased_f1": mean_token_f1(answers, [self.entries[p.entry].answer
                                                    for p in self.probes]),
            "trained_questions_f1": recall_f1,
            "citation_accuracy": citation_accuracy(cited, [self.entries[p.entry].ref
                                                           for p in self.probes]),
            "off_topic_declined": declined_share([not r.in_scope for r in off]),
            "in_scope_declined": declined_share([not r.in_scope for r in found]),
            "threshold": threshold,
            "threshold_chosen_by": "tuning",
            "rephrased_from": self.rephrased_from,
            "n_rephrased": len(self.probes),
            "n_off_topic": len(off),
            "entries": len(self.entries),
            "method": self.knowledge.method,
        }

    def publish(self, version: int) -> None:
        """The entries under the published version, the staging copy gone, the threshold
        stored for the model."""
        self.knowledge.index_examples(self.model_id, version, self.filename, self.rows)
        self.discard()
        if self.calibration is not None:
            self.knowledge.set_threshold(self.model_id, self.calibration.threshold,
                                         chosen_by="tuning")

    def discard(self) -> None:
        self.knowledge.index_examples(self.model_id, self.staging, self.filename, [])

    # -- helpers -------------------------------------------------------------------------------

    def best(self, question: str) -> float:
        found = self.knowledge.search(self.model_id, self.staging, question, k=1)
        return found[0].score if found else 0.0

    def retrieve(self, question: str, threshold: float) -> Retrieval:
        passages = self.knowledge.search(self.model_id, self.staging, question, k=CONTEXT_K)
        return Retrieval(passages=tuple(passages), best=passages[0].score if passages else 0.0,
                         threshold=threshold, has_knowledge=bool(passages))


def entry_ref(filename: str, row: int) -> str:
    """How an indexed Q&A row is cited (Knowledge.index_examples names its entries so)."""
    return f"{filename}, row {row}"


def question_and_answer(messages: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The last question and its answer of an example ("" when it has none)."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    asked = [m for m in messages[:max(0, last)] if m.get("role") == "user"]
    if last < 0 or not asked:
        return "", ""
    return str(asked[-1]["content"]).strip(), str(messages[last]["content"]).strip()


def split_rows(rows: Sequence[tuple[str, int, list[dict[str, Any]]]]
               ) -> tuple[list[tuple[int, str, str]], list[tuple[str, str]]]:
    """The rows to index, and the validation file's rephrasings (question, answer): a
    validation example whose answer another row holds under a different question is a
    rephrasing, not an entry."""
    pairs = [(split, n, *question_and_answer(m)) for split, n, m in rows]
    pairs = [p for p in pairs if p[2] and p[3]]
    main = [(n, q, a) for split, n, q, a in pairs if split != "validation"]
    answers = {normalize(a) for _, _, a in main}
    questions = {normalize(q) for _, q, _ in main}
    indexed, given = list(main), []
    for split, n, q, a in pairs:
        if split != "validation":
            continue
        if normalize(a) in answers and normalize(q) not in questions:
            given.append((q, a))
        else:
            indexed.append((n, q, a))
    indexed.sort(key=lambda row: row[0])
    return indexed, given


def validation_probes(entries: Sequence[Entry], given: Sequence[tuple[str, str]]
                      ) -> list[Probe]:
    by_answer = {normalize(e.answer): i for i, e in enumerate(entries)}
    probes = []
    for question, answer in given:
        i = by_answer.get(normalize(answer))
        if i is None:  # the closest answer stands in
            i = max(range(len(entries)), key=lambda j: token_f1(entries[j].answer, answer))
        probes.append(Probe(question, i))
    return probes


def rule_probes(entries: Sequence[Entry]) -> list[Probe]:
    """One rewording per entry (the first rule set's), in file order."""
    return [Probe(rephrase(e.question, 1)[0], i) for i, e in enumerate(entries)]


def training_rephrasing(question: str) -> str:
    """A rewording to train a grounded copy on: another rule set's than rule_probes measures
    with, or a plain "Please tell me" wrapping when the rules make only that one."""
    made = rephrase(question, 3)
    if len(made) > 1:
        return made[1]
    body = question.strip().rstrip("?").strip()
    return f"Please tell me: {body[:1].lower() + body[1:]}?"


def general_questions() -> list[str]:
    """The built-in general questions a support bot must decline (one per line)."""
    text = GENERAL_QUESTIONS.read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def grounded_summary(figures: dict[str, Any]) -> str:
    """The report's words for the figures (", rephrased questions 0.84, ..." or "")."""
    if not figures:
        return ""
    return (f", {figures['rephrased_f1']:.2f} on rephrased questions with "
            f"{figures['citation_accuracy']:.0%} of citations right; it declines "
            f"{figures['off_topic_declined']:.0%} of off-topic questions and "
            f"{figures['in_scope_declined']:.0%} of in-scope ones (threshold "
            f"{figures['threshold']:.2f}, chosen by tuning)")
