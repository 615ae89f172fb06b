"""The composition root: builds every engine service from Settings, nothing at import time.

    engine = Engine.open(Settings.from_env())
    engine.catalog.search(caller, "support")

Adapters receive an Engine and call one service method per command. Seams that touch the
world (clock, the model runner, the job backend) are constructor arguments, so tests hand in
a fixed clock, a tiny model hub or an inline job backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from engine.artifacts.store import ArtifactStore
from engine.catalog.service import Catalog
from engine.chat import ChatService
from engine.curation import Curation
from engine.datasets.service import Datasets
from engine.errors import StoreError
from engine.installations import Installations
from engine.jobs.backends import JobBackend, make_backend
from engine.jobs.service import JobService
from engine.jobs.watches import Watches
from engine.knowledge.admin import KnowledgeAdmin
from engine.knowledge.ranking import Embeds
from engine.knowledge.service import Knowledge
from engine.monitoring import Metrics
from engine.privacy import Privacy
from engine.retraining.service import Retrainer
from engine.serving.remote import RemoteRunner
from engine.serving.runner import ChatRunner
from engine.settings import Settings
from engine.weights import ModelHub
from storage import catalog as catalog_store
from storage import events, outbox
from storage import jobs as job_store
from storage.db import Database

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Engine:
    settings: Settings
    db: Database
    clock: Clock = system_clock
    artifacts: ArtifactStore = field(init=False)
    hub: ModelHub = field(init=False)
    catalog: Catalog = field(init=False)
    datasets: Datasets = field(init=False)
    jobs: JobService = field(init=False)
    watches: Watches = field(init=False)
    installations: Installations = field(init=False)
    metrics: Metrics = field(init=False)
    runner: ChatRunner = field(init=False)
    chat: ChatService = field(init=False)
    curation: Curation = field(init=False)
    privacy: Privacy = field(init=False)
    retrainer: Retrainer = field(init=False)
    knowledge: Knowledge = field(init=False)
    knowledge_admin: KnowledgeAdmin = field(init=False)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        hub: ModelHub | None = None,
        runner: ChatRunner | None = None,
        job_backend: JobBackend | None = None,
        migrate: bool = True,
        embedder: Callable[[], Embeds | None] | None = None,
    ) -> "Engine":
        """Open (and upgrade) the store under settings.home and wire the services."""
        _prepare_home(settings)
        db = Database(settings.database_url)
        if migrate:
            db.migrate()
        engine = cls(settings=settings, db=db, clock=clock)
        engine._wire(hub=hub, runner=runner, job_backend=job_backend, embedder=embedder)
        return engine

    def _wire(self, *, hub: ModelHub | None, runner: ChatRunner | None,
              job_backend: JobBackend | None,
              embedder: Callable[[], Embeds | None] | None = None) -> None:
        self.artifacts = ArtifactStore.open(self.settings, self.db, self.clock)
        self.hub = hub or ModelHub(self.settings, artifacts=self.artifacts)
        self.hub.use_artifacts(self.artifacts)
        self.catalog = Catalog(self.db, self.settings, self.clock, artifacts=self.artifacts)
        self.catalog.ensure_bundled_base()
        self.datasets = Datasets(self.db, self.settings, self.clock)
        backend = job_backend or make_backend(self.settings)
        self.jobs = JobService(self.db, self.settings, self.catalog, self.datasets, backend, self.clock)
        self.watches = Watches(self.db, self.clock)
        self.installations = Installations(self.db, self.clock)
        self.metrics = Metrics(self.db)
        if runner is None and self.settings.inference_url:  # an external inference server
            runner = RemoteRunner(self.settings, self.hub)
        self.runner = runner or ChatRunner(self.hub, self.settings,
                                           before_step=self.metrics.batch_size.observe)
        if hasattr(self.runner, "queue_depth"):
            self.metrics.watch_queue(self.runner.queue_depth)
        self.knowledge = (Knowledge(self.db, self.clock, embedder=embedder) if embedder
                          else Knowledge.open(self.db, self.clock, self.settings.cache_dir))
        self.curation = Curation(self.db, self.settings, self.catalog, self.clock,
                                 on_change=self._index_curated)
        self.chat = ChatService(self.db, self.settings, self.catalog,
                                self.metrics.measured(self.runner), self.clock,
                                knowledge=self.knowledge, curation=self.curation)
        self.knowledge_admin = KnowledgeAdmin(self.db, self.catalog, self.knowledge,
                                              self.datasets, self.clock, self.curation)
        self.privacy = Privacy(self.db, self.chat, self.datasets)
        self.retrainer = Retrainer(self.db, self.settings, self.catalog, self.jobs, self.clock,
                                   curation=self.curation)

    def _index_curated(self, model_id: int) -> None:
        """Approved curated pairs answer at once, before any retrain (answered gaps are
        entries of their own already)."""
        self.knowledge.index_curated(model_id, [
            (p.id, p.question, p.answer) for p in self.curation.training_pairs(model_id)
            if p.origin != "gap"])

    def housekeeping(self) -> dict[str, int]:
        """Periodic clean-up: conversation logs past their retention, old platform event ids,
        the rate-limit rows of idle users and workspaces, outbox rows of jobs that left the
        queue, and stored files nothing names any more (old checkpoints; never a version's
        files)."""
        purged = self.chat.purge_old()
        limits = self.chat.limits.purge()
        with self.db.session() as session:
            keys = events.purge_before(session, self.clock() - timedelta(days=2))
        self.db.retrying(outbox.prune)
        keep = self.db.retrying(lambda s: catalog_store.version_locations(s)
                                + job_store.checkpoint_locations(s))
        blobs = self.artifacts.collect(keep)
        return {"messages": purged, "event_keys": keys, "limit_rows": limits,
                "artifact_blobs": blobs}

    def first_time(self, key: str) -> bool:
        """True exactly once per key across every process sharing the store: platform
        retries, duplicate deliveries and several serve processes act on an event once."""
        return bool(self.db.retrying(lambda session: events.first_time(session, key)))

    def close(self) -> None:
        for service in (getattr(self, "runner", None), getattr(self, "jobs", None)):
            if service is not None and hasattr(service, "close"):
                service.close()
        self.db.close()


def open_engine(settings: Settings) -> Engine:
    """The job worker's engine factory (WorkerPlan.engine_factory names it): the full Engine
    on a store that the submitting process has already migrated."""
    return Engine.open(settings, migrate=False)


def _prepare_home(settings: Settings) -> None:
    home = settings.home
    try:
        for folder in (home, settings.models_dir, settings.adapters_dir, settings.uploads_dir,
                       settings.jobs_dir, settings.logs_dir, settings.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)
        probe = home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StoreError(
            f"GPTSTORE_HOME ({home}) is not a writable folder ({exc.strerror or exc}); "
            "point GPTSTORE_HOME at a folder you can write to."
        ) from None
