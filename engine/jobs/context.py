"""What a running job body (tuning, retraining, evaluation) gets from the worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from engine.artifacts.store import ArtifactStore
    from engine.catalog.service import Catalog
    from engine.chat import ChatService
    from engine.datasets.service import Datasets
    from engine.knowledge.service import Knowledge
    from engine.settings import Settings
    from engine.weights import ModelHub
    from storage.db import Database


@dataclass
class JobContext:
    job_id: int
    kind: str  # tune|retrain|evaluate
    model_name: str
    base_name: str
    dataset_id: int | None
    owner: str
    workspace: str
    params: dict[str, Any]  # hyperparameters as given (validated by training.TrainConfig)
    checkpoint_dir: Path  # survives a worker's death: a resumed job continues from here
    settings: "Settings"
    db: "Database"
    catalog: "Catalog"
    datasets: "Datasets"
    hub: "ModelHub"
    report: Callable[..., None]  # report(progress: float 0..1, message: str, data: dict | None = None, kind: str = "progress")
    should_stop: Callable[[], bool]  # True once the user cancelled: stop at the next step, raise Cancelled
    chat: "ChatService | None" = None  # conversation logs and curated pairs (retrains)
    model_id: int | None = None  # the entry the job is for (None: look model_name up in workspace)
    artifacts: "ArtifactStore | None" = None  # where versions' files go (every host reads it)
    knowledge: "Knowledge | None" = None  # the model's entries: a tune indexes its file there
    checkpoint_saved: Callable[[dict[str, Any]], None] = lambda note: None
    """Call after writing checkpoint_dir: the worker stores the folder in the artifact store
    and records it on the job with `note` (one event), so a job resumed on another host
    continues from exactly there."""
