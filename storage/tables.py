"""The store's tables: every object of DESIGN.md as a SQLModel record.

Records are named `...Record` so they never collide with ML "models". JSON columns hold
small structured values (hyperparameters, metrics, chat messages); anything that is
searched or joined on is a real column with an index.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ModelRecord(SQLModel, table=True):
    """A store entry: a base model or a tuned model. Its name is unique within its owner
    workspace (migration 0022); "" is the store's own workspace (the bundled base)."""

    __tablename__ = "models"
    __table_args__ = (Index("uq_models_workspace_name", "workspace", "name", unique=True),)

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=64)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    tags: str = Field(default="", max_length=512)  # space separated task tags: "support faq"
    base_name: Optional[str] = Field(default=None, index=True, max_length=64)  # None for bases
    base_id: Optional[int] = Field(default=None, index=True)  # the base entry (names repeat)
    is_base: bool = Field(default=False, index=True)
    owner: str = Field(default="", index=True, max_length=128)  # "slack:T1:U1", "console:alice"
    workspace: str = Field(default="", index=True, max_length=128)  # "slack:T1", "discord:G1", "local"
    visibility: str = Field(default="private", index=True, max_length=16)  # private|workspace|public
    system_prompt: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    usage_count: int = Field(default=0)
    rating_up: int = Field(default=0)
    rating_down: int = Field(default=0)
    live_version_id: Optional[int] = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ModelVersionRecord(SQLModel, table=True):
    """One trained adapter (or, for a base model, its full weights) of a store entry."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "number"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True, ondelete="CASCADE")
    number: int  # 1, 2, 3 ... per model
    status: str = Field(default="candidate", index=True, max_length=16)  # candidate|live|retired
    kind: str = Field(default="adapter", max_length=16)  # adapter|weights
    path: str = Field(default="", max_length=1024)  # PEFT adapter folder or HF weights folder
    hyperparams: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    dataset_id: Optional[int] = Field(default=None, foreign_key="datasets.id", ondelete="SET NULL")
    job_id: Optional[int] = Field(default=None, index=True)
    metrics_before: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    metrics_after: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)


class DatasetRecord(SQLModel, table=True):
    """An uploaded Q&A file after validation."""

    __tablename__ = "datasets"

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(default="", max_length=256)  # original file name
    format: str = Field(default="", max_length=32)  # csv|tsv|jsonl|json|openai|sharegpt|alpaca
    owner: str = Field(default="", index=True, max_length=128)
    workspace: str = Field(default="", index=True, max_length=128)
    model_id: Optional[int] = Field(default=None, foreign_key="models.id", ondelete="SET NULL")
    path: str = Field(default="", max_length=1024)  # stored copy of the upload
    sha256: str = Field(default="", index=True, max_length=64)
    n_examples: int = Field(default=0)
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class ExampleRecord(SQLModel, table=True):
    """One question-answer example (or a multi-turn chat) of a dataset."""

    __tablename__ = "examples"

    id: Optional[int] = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", index=True, ondelete="CASCADE")
    split: str = Field(default="train", index=True, max_length=16)  # train|validation|test
    position: int = Field(default=0)  # row or line number in the uploaded file
    messages: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    source: str = Field(default="file", max_length=16)  # file|feedback|correction


class JobRecord(SQLModel, table=True):
    """A fine-tune, retrain or evaluation run."""

    __tablename__ = "jobs"

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(default="tune", index=True, max_length=16)  # tune|retrain|evaluate
    state: str = Field(default="validating", index=True, max_length=16)
    model_name: str = Field(default="", index=True, max_length=64)  # shown; model_id finds it
    model_id: Optional[int] = Field(default=None, index=True)  # the entry the job is for
    base_name: str = Field(default="", max_length=64)
    dataset_id: Optional[int] = Field(default=None, foreign_key="datasets.id", ondelete="SET NULL")
    owner: str = Field(default="", index=True, max_length=128)
    workspace: str = Field(default="", index=True, max_length=128)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # Where the job was started, so its progress is reported back there:
    # {"platform": "slack", "channel": "C1", "thread": "123.45", "message": "123.46"}
    origin: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    progress: float = Field(default=0.0)  # 0..1
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    checkpoint_path: str = Field(default="", max_length=1024)
    idempotency_key: Optional[str] = Field(default=None, unique=True, max_length=128)
    worker: str = Field(default="", max_length=128)
    attempts: int = Field(default=0)
    cancel_requested: bool = Field(default=False)
    heartbeat_at: Optional[datetime] = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: Optional[datetime] = Field(default=None)
    finished_at: Optional[datetime] = Field(default=None)


class JobEventRecord(SQLModel, table=True):
    """A timestamped event of a job: state change, progress, metrics, warning, error."""

    __tablename__ = "job_events"

    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True, ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow)
    kind: str = Field(default="progress", max_length=16)  # state|progress|metrics|warning|error
    message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class DeploymentRecord(SQLModel, table=True):
    """A model bound to a channel (or, with channel "dm:<user>", a user's DM default)."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("workspace", "channel"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    workspace: str = Field(index=True, max_length=128)
    channel: str = Field(max_length=128)
    model_id: int = Field(foreign_key="models.id", index=True, ondelete="CASCADE")
    created_by: str = Field(default="", max_length=128)
    created_at: datetime = Field(default_factory=utcnow)


class ConversationRecord(SQLModel, table=True):
    """A thread, reply chain, DM or console session."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "workspace", "channel", "thread"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)  # slack|discord|console
    workspace: str = Field(default="", index=True, max_length=128)
    channel: str = Field(default="", max_length=128)
    thread: str = Field(default="", max_length=128)
    created_at: datetime = Field(default_factory=utcnow)


class MessageRecord(SQLModel, table=True):
    """One logged chat message, the question or the answer."""

    __tablename__ = "messages"

    id: Optional[int] = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True, ondelete="CASCADE")
    role: str = Field(max_length=16)  # user|assistant
    user: str = Field(default="", index=True, max_length=128)  # platform user id of the asker
    content: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    model_id: Optional[int] = Field(default=None, index=True)
    model_version_id: Optional[int] = Field(default=None, index=True)
    reply_to_id: Optional[int] = Field(default=None)  # the question an answer answers
    platform_message_id: str = Field(default="", index=True, max_length=128)
    latency_ms: Optional[int] = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class FeedbackRecord(SQLModel, table=True):
    """A thumbs up/down or a correction on an answer."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("message_id", "user", "kind"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", index=True, ondelete="CASCADE")
    user: str = Field(default="", index=True, max_length=128)
    kind: str = Field(max_length=16)  # up|down|correction
    correction: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)


class ScheduleRecord(SQLModel, table=True):
    """When a model is retrained, and how that went last time."""

    __tablename__ = "schedules"

    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", unique=True, ondelete="CASCADE")
    spec: str = Field(default="off", max_length=128)  # daily|weekly|off|<5-field cron>
    min_new_examples: int = Field(default=10)
    created_by: str = Field(default="", max_length=128)
    # Where the schedule was set: scheduled runs report there (platform, channel, thread).
    origin: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    last_run_at: Optional[datetime] = Field(default=None)
    last_outcome: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)


class RetrainRunRecord(SQLModel, table=True):
    """One firing of a schedule; the unique (model, slot) pair keeps two processes from both
    running the same retrain."""

    __tablename__ = "retrain_runs"
    __table_args__ = (UniqueConstraint("model_id", "slot"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True, ondelete="CASCADE")
    slot: str = Field(max_length=64)  # ISO time the schedule fired for, or "now:<uuid>"
    job_id: Optional[int] = Field(default=None)
    outcome: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)


class ProcessedEventRecord(SQLModel, table=True):
    """Platform event ids already handled, so retries never act twice (across processes)."""

    __tablename__ = "processed_events"

    key: str = Field(primary_key=True, max_length=191)  # "slack:Ev123"
    created_at: datetime = Field(default_factory=utcnow, index=True)


class RateLimitRecord(SQLModel, table=True):
    """One rate limit's state (storage/limits.py): for a chat rate the "theoretical arrival
    time" of the generic cell rate algorithm, in epoch seconds; for a job limit a row that is
    locked while jobs are counted and inserted. One row per key that was used lately."""

    __tablename__ = "rate_limits"

    key: str = Field(primary_key=True, max_length=191)  # "chat:user:slack:T1:U1"
    tat: float = Field(default=0.0, index=True)


# -- past one machine: artifacts, the job outbox, durable notifications ------------------------


class ArtifactBlobRecord(SQLModel, table=True):
    """One file's bytes, named by their SHA-256; present only once all its chunks are."""

    __tablename__ = "artifact_blobs"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class ArtifactChunkRecord(SQLModel, table=True):
    """A piece of a blob kept in the database backend (rows in chunks, the same on SQLite
    and PostgreSQL)."""

    __tablename__ = "artifact_chunks"

    sha256: str = Field(primary_key=True, max_length=64)
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ArtifactTreeRecord(SQLModel, table=True):
    """A folder (an adapter, a checkpoint, base weights): relative path -> blob, named by the
    SHA-256 of that manifest."""

    __tablename__ = "artifact_trees"

    sha256: str = Field(primary_key=True, max_length=64)
    manifest: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    size: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class JobOutboxRecord(SQLModel, table=True):
    """The broker message a queued job still owes: committed with the job, sent by a
    dispatcher until the broker acknowledges it, and due again while the job stays queued
    (its message may have vanished)."""

    __tablename__ = "job_outbox"

    job_id: int = Field(primary_key=True)
    kind: str = Field(default="tune", max_length=16)
    due_at: datetime = Field(default_factory=utcnow, index=True)
    sent_at: Optional[datetime] = Field(default=None)
    attempts: int = Field(default=0)
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)


class JobWatchRecord(SQLModel, table=True):
    """Someone in chat waits for a job: where to report (`place`, platform-specific), what
    was shown last, and which serve process delivers it now (a lease, so another takes over
    when that one dies). `state`: following -> finishing -> delivered."""

    __tablename__ = "job_watches"

    id: Optional[int] = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=191)  # one watch per place: "slack:C1:123.45"
    job_id: int = Field(index=True)
    platform: str = Field(index=True, max_length=16)
    place: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    state: str = Field(default="following", index=True, max_length=16)
    owner: str = Field(default="", max_length=128)
    lease_until: Optional[datetime] = Field(default=None)
    last_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    updated_at: Optional[datetime] = Field(default=None)
    delivered_at: Optional[datetime] = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)


class InstallationRecord(SQLModel, table=True):
    """A chat app installed into a workspace (Slack OAuth): its bot token and who installed it.
    One row per platform, enterprise and team; uninstalling deletes it."""

    __tablename__ = "installations"
    __table_args__ = (UniqueConstraint("platform", "enterprise_id", "team_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(default="slack", max_length=16)
    enterprise_id: str = Field(default="", max_length=64)
    team_id: str = Field(default="", index=True, max_length=64)
    team_name: str = Field(default="", max_length=200)
    app_id: str = Field(default="", max_length=64)
    bot_token: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    bot_id: str = Field(default="", max_length=64)
    bot_user_id: str = Field(default="", max_length=64)
    bot_scopes: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    installer: str = Field(default="", max_length=64)
    is_enterprise_install: bool = Field(default=False)
    installed_at: datetime = Field(default_factory=utcnow)


class KnowledgeEntryRecord(SQLModel, table=True):
    """One entry a model answers from: a Q&A row of a tuned file, a document passage, an
    answered gap or a curated pair. `version` None: every version answers from it (documents,
    gaps); a number: the entries of the file that version was tuned on."""

    __tablename__ = "knowledge_entries"
    __table_args__ = (Index("ix_knowledge_entries_model_version", "model_id", "version"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", ondelete="CASCADE")
    version: Optional[int] = Field(default=None)
    origin: str = Field(default="file", max_length=16)  # file|document|gap|curated
    source: str = Field(default="", max_length=255)  # the file name ("" for gaps)
    position: int = Field(default=0)  # row, passage or gap number
    ref: str = Field(default="", max_length=300)  # "faq.csv, row 12"
    question: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    embedding: Optional[bytes] = Field(default=None, sa_column=Column(LargeBinary))  # float32
    created_at: datetime = Field(default_factory=utcnow)


class KnowledgeGapRecord(SQLModel, table=True):
    """A question a model declined, with its rephrasings folded in (`count`); answered once
    an admin gives the answer, which becomes a knowledge entry."""

    __tablename__ = "knowledge_gaps"

    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True, ondelete="CASCADE")
    workspace: str = Field(default="", index=True, max_length=128)  # the model's workspace
    question: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    count: int = Field(default=1)
    first_asked: datetime = Field(default_factory=utcnow)
    last_asked: datetime = Field(default_factory=utcnow)
    embedding: Optional[bytes] = Field(default=None, sa_column=Column(LargeBinary))
    state: str = Field(default="open", index=True, max_length=16)  # open|answered
    answer: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    entry_id: Optional[int] = Field(default=None)
    answered_by: str = Field(default="", max_length=128)
    answered_at: Optional[datetime] = Field(default=None)


class KnowledgeGapAskRecord(SQLModel, table=True):
    """One ask folded into a gap: who asked, in what words, when. `forget-me` and log
    retention delete these; a gap left with no asks goes too, and one whose words were a
    deleted ask's takes the words of the earliest ask left."""

    __tablename__ = "knowledge_gap_asks"

    id: Optional[int] = Field(default=None, primary_key=True)
    gap_id: int = Field(foreign_key="knowledge_gaps.id", index=True, ondelete="CASCADE")
    asker: str = Field(default="", index=True, max_length=128)  # Caller.user
    question: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    asked_at: datetime = Field(default_factory=utcnow)


class KnowledgeSettingsRecord(SQLModel, table=True):
    """Per model: the retrieval score under which it declines, who chose it, the handoff
    text it names when it declines, and the revision of its entries (a cached ranking is
    current while the revision is unchanged: one primary-key read per search)."""

    __tablename__ = "knowledge_settings"

    model_id: int = Field(foreign_key="models.id", primary_key=True, ondelete="CASCADE")
    threshold: Optional[float] = Field(default=None)
    threshold_by: str = Field(default="", max_length=16)  # tuning|admin
    handoff: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    revision: int = Field(default=0)  # bumped with every change of the model's entries
    updated_at: datetime = Field(default_factory=utcnow)


# -- the learning loop: curated pairs, review, what trained each version -----------------------


class CuratedExampleRecord(SQLModel, table=True):
    """One curated pair of a model. `status` pending: a suggestion in the owner's review inbox;
    approved: it trains every later version; rejected: never. `origin` says where it came
    from (correction|thumbs-down|thumbs-up|gap) and `ref` which row ("message 12", "gap 3")."""

    __tablename__ = "curated_examples"

    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True, ondelete="CASCADE")
    status: str = Field(default="pending", index=True, max_length=16)  # pending|approved|rejected
    origin: str = Field(default="correction", max_length=16)
    ref: str = Field(default="", max_length=128)
    message_id: Optional[int] = Field(default=None, index=True)  # the answer it is about
    question: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    bot_answer: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    answer: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    workspace: str = Field(default="", index=True, max_length=128)  # where it was suggested
    asker: str = Field(default="", index=True, max_length=128)  # who asked the question
    suggested_by: str = Field(default="", index=True, max_length=128)
    supporters: list[str] = Field(default_factory=list, sa_column=Column(JSON))  # who agreed
    approved_by: str = Field(default="", max_length=128)  # or rejected by
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: Optional[datetime] = Field(default=None)


class VersionDataRecord(SQLModel, table=True):
    """Exactly which examples trained a version: its file's examples and the curated ids."""

    __tablename__ = "version_data"

    version_id: int = Field(primary_key=True, foreign_key="model_versions.id", ondelete="CASCADE")
    dataset_id: Optional[int] = Field(default=None)
    file_examples: int = Field(default=0)
    curated_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON))


class CurationSettingsRecord(SQLModel, table=True):
    """A model owner's choices for the learning loop (absent row: both off)."""

    __tablename__ = "curation_settings"

    model_id: int = Field(primary_key=True, foreign_key="models.id", ondelete="CASCADE")
    thumbs_up_approves: bool = Field(default=False)  # owner-workspace 👍 counts as approved
    outside_suggestions: bool = Field(default=False)  # other workspaces may suggest (reviewed)
