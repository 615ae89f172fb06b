"""Typed, frozen configuration read once from the environment by the composition root.

Nothing reads os.environ anywhere else. Validation errors name the variable at fault.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

from engine import bundled
from engine.errors import InvalidInput

DEFAULT_BASE = bundled.NAME
SPECULATION = ("auto", "lookup", "off")  # GPTSTORE_SPECULATION choices


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the environment variable that sets it."""

    home: Path
    """GPTSTORE_HOME: SQLite file, model cache, adapters, uploads."""
    database_url: str
    """DATABASE_URL: SQLAlchemy URL; SQLite in `home` by default."""
    device: str = "auto"
    """GPTSTORE_DEVICE: auto, cpu or cuda."""
    jobs: str = "local"
    """GPTSTORE_JOBS: local (in-process worker, training in a child process) or celery."""
    celery_broker_url: str | None = None
    """CELERY_BROKER_URL: broker for celery jobs."""
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str = "https://slack.com/api/"
    discord_token: str | None = field(default=None, repr=False)
    discord_api_url: str = "https://discord.com/api/v10"
    discord_admin_role: str | None = None
    """GPTSTORE_DISCORD_ADMIN_ROLE: a role name that counts as admin besides Manage Server."""
    default_base: str = DEFAULT_BASE
    """GPTSTORE_DEFAULT_BASE: base model for `tune` when none is named."""
    max_upload_bytes: int = 10 * 1024 * 1024
    """GPTSTORE_MAX_UPLOAD_MB: largest Q&A file accepted (MB)."""
    adapter_cache_size: int = 8
    """GPTSTORE_ADAPTER_CACHE: tuned adapters kept loaded per base model."""
    max_new_tokens: int = 256
    """GPTSTORE_MAX_NEW_TOKENS: longest answer, in tokens."""
    request_timeout_s: float = 120.0
    """GPTSTORE_REQUEST_TIMEOUT: seconds one chat answer may take."""
    queue_size: int = 64
    """GPTSTORE_QUEUE_SIZE: chat requests waiting at most; more get 'busy'."""
    max_batch: int = 16
    """GPTSTORE_MAX_BATCH: chat requests generated together in one batch."""
    speculation: str = "auto"
    """GPTSTORE_SPECULATION: how one request decoding alone guesses ahead: auto (a 4-bit draft
    of the model where it is faster, else prompt lookup), lookup, or off."""
    chat_rate_per_minute: int = 30
    """GPTSTORE_CHAT_RATE: chat turns per user per minute."""
    tune_rate_per_hour: int = 10
    """GPTSTORE_TUNE_RATE: fine-tunes a user may start per hour."""
    max_jobs_per_workspace: int = 2
    """GPTSTORE_MAX_JOBS_PER_WORKSPACE: queued or running jobs per workspace."""
    retrain_min_examples: int = 10
    """GPTSTORE_RETRAIN_MIN_EXAMPLES: new curated pairs a scheduled retrain needs."""
    log_retention_days: int = 90
    """GPTSTORE_LOG_RETENTION_DAYS: conversation logs older than this are deleted (0 = keep)."""
    artifacts: str = "database"
    """GPTSTORE_ARTIFACTS: where adapters, plots, checkpoints and registered weights are kept:
    `database` (the store's own database, rows in chunks) or `s3://BUCKET[/PREFIX]`."""
    s3_endpoint_url: str | None = None
    """GPTSTORE_S3_ENDPOINT_URL: an S3-compatible server (MinIO, Ceph, R2) instead of AWS."""
    checkpoint_steps: int = 20
    """GPTSTORE_CHECKPOINT_STEPS: optimizer steps between training checkpoints (and one at the
    end of every epoch)."""
    metrics_port: int | None = None
    """GPTSTORE_METRICS_PORT: port (or HOST:PORT) of the health check (/healthz) and
    Prometheus metrics (/metrics) of `serve` and `worker`; unset: off."""
    metrics_host: str = "0.0.0.0"
    inference_url: str | None = None
    """GPTSTORE_INFERENCE_URL: an OpenAI-compatible server with LoRA adapters (vLLM) that
    answers chat instead of the built-in runner, e.g. http://gpu1:8000/v1."""
    inference_api_key: str | None = field(default=None, repr=False)
    """GPTSTORE_INFERENCE_API_KEY: its bearer token, if it wants one."""
    inference_adapter_dir: str | None = None
    """GPTSTORE_INFERENCE_ADAPTER_DIR: the folder, as the inference server sees it, where the
    store writes each live adapter before asking the server to load it."""
    inference_model: str | None = None
    """GPTSTORE_INFERENCE_MODEL: the base model's name on the inference server (its
    --served-model-name); by default the store's base model name."""

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def cache_dir(self) -> Path:
        """This host's copies of stored artifacts (trees by content hash)."""
        return self.home / "cache"

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("GPTSTORE_HOME") or Path.home() / ".gptstore").expanduser()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{home / 'store.db'}"
        device = env.get("GPTSTORE_DEVICE", "auto").strip().lower() or "auto"
        if device not in ("auto", "cpu", "cuda"):
            raise InvalidInput(f"GPTSTORE_DEVICE must be auto, cpu or cuda, not {device!r}.")
        jobs = env.get("GPTSTORE_JOBS", "local").strip().lower() or "local"
        if jobs not in ("local", "celery"):
            raise InvalidInput(f"GPTSTORE_JOBS must be local or celery, not {jobs!r}.")
        speculation = env.get("GPTSTORE_SPECULATION", "auto").strip().lower() or "auto"
        if speculation not in SPECULATION:
            raise InvalidInput(
                f"GPTSTORE_SPECULATION must be auto, lookup or off, not {speculation!r}.")
        artifacts = (env.get("GPTSTORE_ARTIFACTS") or "database").strip()
        if artifacts != "database" and not (artifacts.startswith("s3://")
                                            and artifacts[len("s3://"):].strip("/")):
            raise InvalidInput("GPTSTORE_ARTIFACTS must be `database` or s3://BUCKET[/PREFIX], "
                               f"not {artifacts!r}.")
        metrics_host, _, port_text = (env.get("GPTSTORE_METRICS_PORT") or "").strip().rpartition(":")
        metrics_port = int(_number({"GPTSTORE_METRICS_PORT": port_text}, "GPTSTORE_METRICS_PORT",
                                   0, minimum=0))
        if metrics_port > 65535:
            raise InvalidInput("GPTSTORE_METRICS_PORT must be a port number or HOST:PORT, not "
                               f"{env.get('GPTSTORE_METRICS_PORT')!r}.")
        inference_url = (env.get("GPTSTORE_INFERENCE_URL") or "").strip().rstrip("/") or None
        if inference_url and not inference_url.startswith(("http://", "https://")):
            raise InvalidInput("GPTSTORE_INFERENCE_URL must be an http(s) URL such as "
                               f"http://gpu1:8000/v1, not {inference_url!r}.")
        broker = env.get("CELERY_BROKER_URL") or None
        if jobs == "celery" and not broker:
            raise InvalidInput(
                "GPTSTORE_JOBS=celery needs CELERY_BROKER_URL, e.g. redis://127.0.0.1:6379/0.")
        return cls(
            home=home,
            database_url=database_url,
            device=device,
            jobs=jobs,
            celery_broker_url=broker,
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            slack_app_token=env.get("SLACK_APP_TOKEN") or None,
            slack_api_url=env.get("SLACK_API_URL") or "https://slack.com/api/",
            discord_token=env.get("DISCORD_TOKEN") or None,
            discord_api_url=(env.get("DISCORD_API_URL") or "https://discord.com/api/v10").rstrip("/"),
            discord_admin_role=env.get("GPTSTORE_DISCORD_ADMIN_ROLE") or None,
            default_base=env.get("GPTSTORE_DEFAULT_BASE") or DEFAULT_BASE,
            max_upload_bytes=int(_number(env, "GPTSTORE_MAX_UPLOAD_MB", 10.0) * 1024 * 1024),
            adapter_cache_size=int(_number(env, "GPTSTORE_ADAPTER_CACHE", 8, minimum=1)),
            max_new_tokens=int(_number(env, "GPTSTORE_MAX_NEW_TOKENS", 256, minimum=1)),
            request_timeout_s=_number(env, "GPTSTORE_REQUEST_TIMEOUT", 120.0),
            queue_size=int(_number(env, "GPTSTORE_QUEUE_SIZE", 64, minimum=1)),
            max_batch=int(_number(env, "GPTSTORE_MAX_BATCH", 16, minimum=1)),
            speculation=speculation,
            chat_rate_per_minute=int(_number(env, "GPTSTORE_CHAT_RATE", 30, minimum=1)),
            tune_rate_per_hour=int(_number(env, "GPTSTORE_TUNE_RATE", 10, minimum=1)),
            max_jobs_per_workspace=int(_number(env, "GPTSTORE_MAX_JOBS_PER_WORKSPACE", 2, minimum=1)),
            retrain_min_examples=int(_number(env, "GPTSTORE_RETRAIN_MIN_EXAMPLES", 10, minimum=0)),
            log_retention_days=int(_number(env, "GPTSTORE_LOG_RETENTION_DAYS", 90, minimum=0)),
            artifacts=artifacts,
            s3_endpoint_url=env.get("GPTSTORE_S3_ENDPOINT_URL") or None,
            checkpoint_steps=int(_number(env, "GPTSTORE_CHECKPOINT_STEPS", 20, minimum=1)),
            metrics_port=metrics_port or None,
            metrics_host=metrics_host or "0.0.0.0",
            inference_url=inference_url,
            inference_api_key=env.get("GPTSTORE_INFERENCE_API_KEY") or None,
            inference_adapter_dir=env.get("GPTSTORE_INFERENCE_ADAPTER_DIR") or None,
            inference_model=env.get("GPTSTORE_INFERENCE_MODEL") or None,
        )


SECRET_FIELDS = frozenset(f.name for f in fields(Settings) if not f.repr)
"""Settings that are secrets (platform tokens): never printed, never sent to workers."""


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not {raw!r}.") from None
    if value < minimum or value != value:
        raise InvalidInput(f"{name} must be at least {minimum:g}, not {raw!r}.")
    return value
