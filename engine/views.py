"""Plain values the engine hands to the chat adapters: cards, versions, jobs, answers.

They are frozen dataclasses with no database or torch attached, so the bot layer can render
them anywhere and `--json` can print them with `as_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

V = TypeVar("V")


def as_dict(value: Any) -> Any:
    """A JSON-ready form of a view (datetimes as ISO strings)."""
    if hasattr(value, "__dataclass_fields__"):
        value = asdict(value)
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_dict(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def from_dict(cls: type[V], data: dict[str, Any] | None) -> V:
    """A view from its JSON form, ignoring keys it does not know (older or newer writers)."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in (data or {}).items() if k in known})


@dataclass(frozen=True)
class Origin:
    """Where a job or a schedule was started: its progress and outcome are reported there."""

    platform: str = ""  # slack|discord|console|cli
    channel: str = ""
    thread: str = ""  # Slack thread ts, Discord thread id
    message: str = ""  # platform id of the message that asked
    interaction: str = ""  # Discord interaction id
    idempotency_key: str = ""  # a platform retry of the same request submits nothing new
    scheduled: bool = False  # started by a schedule: the adapter announces it

    def stored(self) -> dict[str, Any]:
        """The JSON kept with the job: only the fields that are set."""
        return {k: v for k, v in asdict(self).items() if v not in ("", False, None)}


@dataclass(frozen=True)
class ProgressUpdate:
    """One progress report of a running job, as its latest progress event holds it."""

    phase: str = ""  # select|final|retrain|evaluating base|evaluating|saving|done
    event: str = ""  # start|step|epoch ("" for a phase change)
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None  # mean training loss of the epoch so far
    train_loss: float | None = None  # at the end of an epoch
    val_loss: float | None = None
    eta_s: float | None = None
    tokens_per_s: float | None = None


@dataclass(frozen=True)
class TuneResult:
    """What a finished tune job produced (JobView.result of a succeeded tune)."""

    version: int | None = None
    adapter: str = ""
    plot: str = ""  # the loss plot (PNG)
    metrics_before: dict[str, Any] = field(default_factory=dict)  # base model, held out
    metrics_after: dict[str, Any] = field(default_factory=dict)  # tuned, held out
    trained_questions_f1: float | None = None  # the file's own questions, final adapter
    epochs: int | None = None
    grounded: dict[str, Any] = field(default_factory=dict)
    """Answers with sources (docs/grounding.md): rephrased_f1, citation_accuracy,
    off_topic_declined, in_scope_declined, threshold (chosen by tuning), rephrased_from,
    n_rephrased, n_off_topic, entries, method; empty when the file was not indexed."""
    train_seconds: float | None = None
    tokens_per_s: float | None = None
    total_seconds: float | None = None


@dataclass(frozen=True)
class Figure:
    """One named figure the retrain gate compares, for the live version and the candidate
    (engine/retraining/gate.py). Higher is better; `tolerance` is how far the candidate may
    fall below the live version before the gate refuses it."""

    name: str  # "file recall", "held-out new pairs", "rephrased questions", ...
    live: float | None
    candidate: float | None
    n: int = 0  # questions it was measured on
    tolerance: float = 0.0
    meaning: str = ""  # one line: what it measures and on which model run


@dataclass(frozen=True)
class RetrainVerdict:
    """What a finished retrain decided, with both sets of figures."""

    promoted: bool = False
    reason: str = ""
    message: str = ""
    model: str = ""
    live: dict[str, Any] = field(default_factory=dict)  # the live version's figures
    candidate: dict[str, Any] = field(default_factory=dict)
    new_pairs: int = 0
    previous_version: int | None = None
    version: int | None = None  # the new live version, when promoted
    adapter: str = ""
    plot: str = ""
    figures: list[dict[str, Any]] = field(default_factory=list)  # Figure values, as JSON
    file_examples: int = 0  # the candidate's training data: file examples + curated pairs
    curated: int = 0

    def figure_values(self) -> list[Figure]:
        return [from_dict(Figure, f) for f in self.figures]


@dataclass(frozen=True)
class VersionView:
    number: int
    status: str  # candidate|live|retired
    kind: str  # adapter|weights
    created_at: datetime
    hyperparams: dict[str, Any] = field(default_factory=dict)
    metrics_before: dict[str, Any] = field(default_factory=dict)
    metrics_after: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    job_id: int | None = None
    dataset_id: int | None = None
    file_examples: int | None = None  # what trained it (None: recorded before 0017)
    curated: int | None = None  # approved curated pairs among them

    @property
    def data_text(self) -> str:
        """ "312 file examples + 41 curated", or "" when not recorded."""
        if self.file_examples is None:
            return ""
        return f"{self.file_examples} file examples + {self.curated or 0} curated"


@dataclass(frozen=True)
class ModelCard:
    name: str
    description: str
    tags: list[str]
    base: str | None  # None for a base model
    is_base: bool
    owner: str
    workspace: str
    visibility: str
    usage_count: int
    rating_up: int
    rating_down: int
    live_version: int | None
    versions: list[VersionView] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)  # channels, in the caller's workspace
    system_prompt: str = ""
    score: float | None = None  # search relevance, when it came from a search
    knowledge: KnowledgeView | None = None  # what it answers from now (the full card only)


@dataclass(frozen=True)
class JobEventView:
    id: int
    at: datetime
    kind: str  # state|progress|metrics|warning|error
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobView:
    id: int
    kind: str  # tune|retrain|evaluate
    state: str  # validating|queued|running|succeeded|failed|cancelled
    model_name: str
    base_name: str
    owner: str
    workspace: str
    progress: float
    params: dict[str, Any]
    origin: Origin
    result: dict[str, Any]  # on success: a TuneResult or RetrainVerdict (see below), as JSON
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    events: list[JobEventView] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    def latest_progress(self) -> ProgressUpdate | None:
        """The newest progress report among the events read, if any."""
        for event in reversed(self.events):
            if event.kind == "progress" and event.data:
                return from_dict(ProgressUpdate, event.data)
        return None

    def tune_result(self) -> TuneResult:
        return from_dict(TuneResult, self.result)

    def verdict(self) -> RetrainVerdict | None:
        """A retrain's decision; None for other jobs or before it decided."""
        if self.kind != "retrain" or "promoted" not in (self.result or {}):
            return None
        return from_dict(RetrainVerdict, self.result)


@dataclass(frozen=True)
class DatasetReport:
    """What validation of an uploaded Q&A file found (the --dry-run output)."""

    filename: str
    format: str
    n_examples: int
    n_multi_turn: int
    split_sizes: dict[str, int]  # {"train": 32, "validation": 4, "test": 4}
    warnings: list[str]
    dataset_id: int | None = None  # set once stored


@dataclass(frozen=True)
class Source:
    """An entry of a model's knowledge that an answer was drawn from."""

    ref: str  # where it is: "faq.csv, row 12", "handbook.md, passage 3", "gap 7"
    question: str  # the entry's question (a passage's heading for documents)
    text: str  # the entry's answer or the passage
    score: float  # retrieval score, 0..1


@dataclass(frozen=True)
class ChatAnswer:
    text: str
    model_name: str
    version: int | None  # None when a base model answered
    message_id: int | None  # the logged answer's id (feedback and corrections point here)
    latency_ms: int
    tokens: int = 0
    chosen_by: str = "named"  # named (asked by name)|channel|workspace|store: who picked the model
    sources: tuple[Source, ...] = ()  # the entries the answer was drawn from, best first
    grounded: bool = True  # False exactly when the model declined: its sources do not cover it


@dataclass(frozen=True)
class ForgetReport:
    """What `/store forget-me` deleted, what it kept and why (engine/privacy.py)."""

    messages: int  # the user's logged questions and the answers they got
    feedback: int  # the user's votes and corrections
    uploads: tuple[str, ...]  # file names of the deleted uploads (stored copies and examples)
    examples: int  # examples of those uploads
    files: int  # stored copies removed from the uploads folder
    kept_uploads: tuple[str, ...]  # uploads an unfinished job still reads: kept this time
    trained: tuple[str, ...]  # "acme-bot v1": versions already trained, whose weights stay
    freed_bytes: int | None  # space the SQLite file gave back (VACUUM); None: not compacted
    gap_questions: int = 0  # the user's declined questions taken out of the models' gaps


@dataclass(frozen=True)
class ScheduleView:
    model_name: str
    spec: str  # daily|weekly|off|cron
    min_new_examples: int
    last_run_at: datetime | None
    last_outcome: str
    next_runs: tuple[datetime, ...] = ()  # the next three fire times, UTC

    @property
    def next_run_at(self) -> datetime | None:
        return self.next_runs[0] if self.next_runs else None


@dataclass(frozen=True)
class CuratedView:
    """A curated pair: a suggestion in the review inbox, or an approved/rejected pair."""

    id: int
    model_name: str
    status: str  # pending|approved|rejected
    origin: str  # correction|thumbs-down|thumbs-up|gap
    ref: str  # where it came from: "message 12", "gap 3"
    question: str
    bot_answer: str  # what the model said ("" for a gap)
    answer: str  # the suggested (or approved) answer; "" for a thumbs-down not yet edited
    suggested_by: str
    agreed: int  # users who made the same suggestion, the first one included
    workspace: str  # where it was suggested
    approved_by: str = ""


@dataclass(frozen=True)
class ReviewInbox:
    """`/store review MODEL`: the pending suggestions and the owner's choices."""

    model_name: str
    pending: tuple[CuratedView, ...]
    total_pending: int
    approved: int
    thumbs_up_approves: bool
    outside_suggestions: bool


@dataclass(frozen=True)
class Target:
    """What the runner needs to answer with a model's live version (or a base model)."""

    model_name: str
    base_name: str
    base_path: str  # a Hugging Face folder, or engine.bundled.PATH (hub converts it)
    adapter_path: str | None  # PEFT adapter folder; None for a base model
    version: int | None
    version_id: int | None
    system_prompt: str = ""
    model_id: int | None = None
    tenant: str = ""  # the asking workspace: the runner shares its queue fairly among them


@dataclass(frozen=True)
class GapView:
    """A question a model declined (`/store gaps`), its rephrasings counted in."""

    id: int
    model_name: str
    question: str
    count: int  # how often it (or a rephrasing) was asked
    first_asked: datetime
    last_asked: datetime


@dataclass(frozen=True)
class KnowledgeView:
    """What a model answers from, shown by `/store docs` and the model card."""

    model_name: str
    entries: int  # every entry a live answer may cite
    documents: tuple[tuple[str, int], ...]  # (file name, passages)
    threshold: float  # the retrieval score under which it declines
    threshold_by: str  # tuning|admin|default
    handoff: str  # who to ask when it declines ("" unset)
    method: str  # hybrid|keyword
