"""Plain values the engine hands to the chat adapters: cards, versions, jobs, answers.

They are frozen dataclasses with no database or torch attached, so the bot layer can render
them anywhere and `--json` can print them with `as_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


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
    origin: dict[str, Any]
    result: dict[str, Any]  # on success: version, metrics_before/after, plot path, ...
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    events: list[JobEventView] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")


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
class ChatAnswer:
    text: str
    model_name: str
    version: int | None  # None when a base model answered
    message_id: int | None  # the logged answer's id (feedback and corrections point here)
    latency_ms: int
    tokens: int = 0


@dataclass(frozen=True)
class ScheduleView:
    model_name: str
    spec: str  # daily|weekly|off|cron
    min_new_examples: int
    last_run_at: datetime | None
    last_outcome: str
    next_run_at: datetime | None = None


@dataclass(frozen=True)
class Target:
    """What the runner needs to answer with a model's live version (or a base model)."""

    model_name: str
    base_name: str
    base_path: str  # a Hugging Face folder, or "bundled:smollm2-135m-instruct" (hub converts it)
    adapter_path: str | None  # PEFT adapter folder; None for a base model
    version: int | None
    version_id: int | None
    system_prompt: str = ""
    model_id: int | None = None
