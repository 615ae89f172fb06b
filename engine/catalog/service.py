"""The catalog service: register, find, show, publish, version, deploy and target models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from sqlalchemy.exc import IntegrityError

from engine import bundled
from engine.artifacts.store import ArtifactStore
from engine.catalog import rules
from engine.errors import Conflict, InvalidInput, ModelUnavailable, NotFound
from engine.identity import Caller
from engine.settings import Settings
from engine.views import ModelCard, Target, VersionView
from storage import catalog as store
from storage.db import Database
from storage.tables import ModelRecord, ModelVersionRecord


@dataclass(frozen=True)
class Answerer:
    """The model that answers a plain message, and why it was chosen."""

    model: ModelRecord
    chosen_by: str  # channel|workspace|store (see ChatAnswer.chosen_by)


class Catalog:
    """Store entries as the chat commands see them: every call checks visibility and rights."""

    def __init__(self, db: Database, settings: Settings, clock: Callable,
                 search_windows: "store.SearchWindows | None" = None, *,
                 artifacts: ArtifactStore | None = None) -> None:
        self.search_windows = search_windows or store.WINDOWS
        self.artifacts = artifacts  # registered weights go in it, so every host can load them
        self.db = db
        self.settings = settings
        self.clock = clock

    # -- registering ---------------------------------------------------------------------------

    def ensure_bundled_base(self) -> None:
        """Register the bundled SmolLM2 base model once (safe to call from every process)."""
        with self.db.session() as s:
            if store.get_model(s, bundled.NAME) is not None:
                return
        try:
            self._insert_with_weights(ModelRecord(
                name=bundled.NAME, description=bundled.DESCRIPTION, tags="chat instruct general",
                is_base=True, visibility="public"), bundled.PATH)
        except IntegrityError:
            pass  # another process registered it first

    def add_base(self, caller: Caller, name: str, path: str, description: str = "",
                 tags: str = "") -> ModelCard:
        """Register a base model from a local Hugging Face folder (private to the caller)."""
        slug = rules.check_slug(name)
        folder = rules.check_hf_folder(path)
        with self.db.session() as s:
            if store.get_model(s, slug) is not None:
                raise Conflict(f"The name '{slug}' is taken; pick another.")
        record = ModelRecord(name=slug, description=description.strip(),
                             tags=rules.normalize_tags(tags), is_base=True, owner=caller.user,
                             workspace=caller.workspace, visibility="private")
        # The folder is copied into the artifact store: workers on other hosts load it from
        # there, and the version records its content hash, not this host's path.
        location = self.artifacts.put_folder(folder) if self.artifacts else str(folder)
        try:
            self._insert_with_weights(record, location)
        except IntegrityError:
            raise Conflict(f"The name '{slug}' is taken; pick another.") from None
        return self.card(caller, slug)

    def _insert_with_weights(self, record: ModelRecord, path: str) -> None:
        now = self.clock()
        record.created_at = record.updated_at = now
        with self.db.session() as s:
            store.insert_model(s, record)
            store.insert_version(s, record.id, live=True, now=now, kind="weights", path=path)

    def create_or_get_tuned(self, caller: Caller, name: str, base_name: Optional[str],
                            description: str = "", tags: str = "") -> ModelRecord:
        """The caller's tuned entry `name` on `base_name`, created private on first use."""
        slug = rules.check_slug(name)
        base = self.resolve(caller, base_name or self.settings.default_base)
        if not base.is_base:
            raise InvalidInput(f"'{base.name}' is a tuned model, not a base model; tune from its "
                               f"base instead (base={base.base_name}).")
        for _ in range(2):
            with self.db.session() as s:
                existing = store.get_model(s, slug)
            if existing is not None:
                return self._reuse_tuned(caller, existing, base.name, description)
            now = self.clock()
            record = ModelRecord(name=slug, description=description.strip(),
                                 tags=rules.normalize_tags(tags), base_name=base.name,
                                 owner=caller.user, workspace=caller.workspace,
                                 visibility="private", created_at=now, updated_at=now)
            try:
                with self.db.session() as s:
                    return store.insert_model(s, record)
            except IntegrityError:
                continue  # created meanwhile by another request: look again
        raise Conflict(f"The name '{slug}' is taken; pick another.")

    def _reuse_tuned(self, caller: Caller, model: ModelRecord, base: str,
                     description: str) -> ModelRecord:
        if model.is_base or not rules.can_manage(caller, model):
            raise Conflict(f"The name '{model.name}' is taken; pick another.")
        if model.base_name != base:
            raise Conflict(f"'{model.name}' is tuned from '{model.base_name}', not '{base}'; "
                           f"tune it with base={model.base_name} or pick another name.")
        if description.strip() and not model.description:
            with self.db.session() as s:
                model.description = description.strip()
                s.add(model)
        return model

    def next_version_number(self, model_id: int) -> int:
        """The number the model's next version will most likely get (its folder is named
        after it before the version is recorded; add_version numbers again if two race)."""
        with self.db.session() as s:
            return 1 + max((v.number for v in store.versions_of(s, model_id)), default=0)

    def add_version(self, model_id: int, *, path: str, hyperparams: Optional[dict] = None,
                    dataset_id: Optional[int] = None, job_id: Optional[int] = None,
                    metrics_before: Optional[dict] = None, metrics_after: Optional[dict] = None,
                    notes: str = "", live: bool = False, kind: str = "adapter") -> VersionView:
        """Record a new numbered version; live=True makes it live and retires the previous."""
        fields: dict[str, Any] = dict(
            kind=kind, path=str(path), hyperparams=dict(hyperparams or {}), dataset_id=dataset_id,
            job_id=job_id, metrics_before=dict(metrics_before or {}),
            metrics_after=dict(metrics_after or {}), notes=notes)
        for attempt in range(3):
            try:
                with self.db.session() as s:
                    if store.get_model_by_id(s, model_id) is None:
                        raise NotFound(f"Model id {model_id} no longer exists.")
                    version = store.insert_version(s, model_id, live=live, now=self.clock(), **fields)
                    return version_view(version)
            except IntegrityError:  # two versions numbered at once: number again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # -- finding -------------------------------------------------------------------------------

    def search(self, caller: Caller, words: str = "", task: Optional[str] = None,
               base: Optional[str] = None, owner: Optional[str] = None,
               limit: int = 20) -> list[ModelCard]:
        """Visible entries ranked by text relevance (and a little by usage and rating)."""
        filters = store.SearchFilters(
            task=rules.normalize_name(task) or None, base=rules.normalize_name(base) or None,
            owner=(caller.user if owner == "me" else (owner or "").strip() or None))
        with self.db.session() as s:
            hits = store.search(s, _viewer(caller), words or "", filters,
                                limit=max(1, min(int(limit), 100)), windows=self.search_windows)
        return [_card(hit, hit.live_version, score=hit.score) for hit in hits]

    def resolve(self, caller: Caller, name: str) -> ModelRecord:
        """The visible entry called `name`; NotFound suggests the closest visible names."""
        wanted = rules.normalize_name(name)
        if not wanted:
            raise InvalidInput("Name a model, e.g. `/store info smollm2-135m-instruct`; "
                               "`/store search` lists them.")
        viewer = _viewer(caller)
        with self.db.session() as s:
            model = store.get_model(s, wanted)
            if model is not None and store.is_visible(model, viewer):
                return model
            candidates = store.name_candidates(s, viewer, wanted)
        raise NotFound(f"No model named '{wanted}'. " + rules.suggestion(wanted, candidates))

    def model_by_id(self, model_id: int) -> Optional[ModelRecord]:
        with self.db.session() as s:
            return store.get_model_by_id(s, model_id)

    def _managed(self, caller: Caller, name: str) -> ModelRecord:
        """Like resolve, but an admin also reaches the private entries of their workspace
        (to publish or roll them back)."""
        try:
            return self.resolve(caller, name)
        except NotFound:
            with self.db.session() as s:
                model = store.get_model(s, rules.normalize_name(name))
            if model is not None and rules.can_manage(caller, model):
                return model
            raise

    def card(self, caller: Caller, name: str) -> ModelCard:
        return self._full_card(caller, self.resolve(caller, name))

    def _full_card(self, caller: Caller, model: ModelRecord) -> ModelCard:
        with self.db.session() as s:
            versions = [version_view(v) for v in store.versions_of(s, model.id)]
            channels = [rules.WORKSPACE_DEFAULT_SHOWN if c == rules.WORKSPACE_DEFAULT else c
                        for c in store.channels_of(s, model.id, caller.workspace)]
        live = next((v.number for v in versions if v.status == "live"), None)
        return _card(model, live, versions=versions, deployments=channels)

    def versions(self, caller: Caller, name: str) -> list[VersionView]:
        model = self.resolve(caller, name)
        with self.db.session() as s:
            return [version_view(v) for v in store.versions_of(s, model.id)]

    # -- changing ------------------------------------------------------------------------------

    def publish(self, caller: Caller, name: str, visibility: str) -> ModelCard:
        """private | workspace | public; the last two need a workspace admin."""
        value = rules.check_visibility(visibility)
        model = self._managed(caller, name)
        rules.check_publish(caller, model, value)
        with self.db.session() as s:
            store.set_visibility(s, model, value, self.clock())
        return self._full_card(caller, model)

    def rollback(self, caller: Caller, name: str, number: int) -> ModelCard:
        """Make version `number` live again; the live one is retired."""
        model = self._managed(caller, name)
        rules.check_manage(caller, model, "roll it back")
        with self.db.session() as s:
            version = store.get_version(s, model.id, int(number))
            if version is None:
                numbers = ", ".join(str(v.number) for v in store.versions_of(s, model.id))
                raise NotFound(f"'{model.name}' has no version {number}; its versions are "
                               f"{numbers or 'none yet'} (`/store versions {model.name}`).")
            store.make_live(s, model.id, version, self.clock())
        return self._full_card(caller, model)

    def deploy(self, caller: Caller, name: str, *, default: bool = False) -> ModelCard:
        """Answer plain messages in this channel (or this DM) with `name`; with default=True,
        make it the workspace's default model (mentions and DMs where nothing is deployed)."""
        rules.check_deploy(caller, default=default)
        model = self.resolve(caller, name)
        if model.live_version_id is None:
            raise ModelUnavailable(f"'{model.name}' has no live version yet; wait for its "
                                   f"tune job to finish (`/store jobs`) and deploy it then.")
        channel = rules.WORKSPACE_DEFAULT if default else caller.channel
        with self.db.session() as s:
            store.set_deployment(s, caller.workspace, channel, model.id, caller.user,
                                 self.clock())
        return self.card(caller, model.name)

    def undeploy(self, caller: Caller, *, default: bool = False) -> Optional[str]:
        """Unbind this channel (default=True: the workspace's default model); the name of the
        model it had, or None if it had none."""
        rules.check_deploy(caller, default=default)
        channel = rules.WORKSPACE_DEFAULT if default else caller.channel
        with self.db.session() as s:
            model_id = store.delete_deployment(s, caller.workspace, channel)
            model = store.get_model_by_id(s, model_id) if model_id is not None else None
        return model.name if model is not None else None

    def deployed(self, caller: Caller) -> Optional[ModelRecord]:
        """This channel's (or DM's) deployed model, if any."""
        if not caller.channel:
            return None
        return self._bound(caller.workspace, caller.channel)

    def workspace_default(self, caller: Caller) -> Optional[ModelRecord]:
        """The model an admin made the workspace's default (`/store deploy MODEL default`)."""
        return self._bound(caller.workspace, rules.WORKSPACE_DEFAULT)

    def answering(self, caller: Caller) -> Answerer:
        """Who answers a plain message here: this channel's deployed model, else the
        workspace's default, else the store's default base."""
        for chosen_by, found in (("channel", lambda: self.deployed(caller)),
                                 ("workspace", lambda: self.workspace_default(caller))):
            model = found()
            if model is not None:
                return Answerer(model, chosen_by)
        return Answerer(self.resolve(caller, self.settings.default_base), "store")

    def _bound(self, workspace: str, channel: str) -> Optional[ModelRecord]:
        with self.db.session() as s:
            record = store.get_deployment(s, workspace, channel)
            return store.get_model_by_id(s, record.model_id) if record else None

    def record_usage(self, model_id: int, count: int = 1) -> None:
        with self.db.session() as s:
            store.add_usage(s, model_id, count)

    def add_rating(self, model_id: int, up: int = 0, down: int = 0) -> None:
        with self.db.session() as s:
            store.add_rating(s, model_id, up, down)

    # -- running -------------------------------------------------------------------------------

    def live_version(self, name: str) -> VersionView:
        """The live version of a tuned model (for the jobs that build on it)."""
        with self.db.session() as s:
            model = store.get_model(s, rules.normalize_name(name))
            if model is None:
                raise NotFound(f"The model {name} no longer exists.")
            live = store.get_version_by_id(s, model.live_version_id)
            if live is None or not live.path or model.is_base:
                raise InvalidInput(f"{name} has no live version to improve; tune it first.")
            return version_view(live)

    def live_target(self, model: ModelRecord | str) -> Target:
        """What the runner loads for `model`: its base's weights plus its live adapter."""
        with self.db.session() as s:
            if isinstance(model, str):
                found = store.get_model(s, rules.normalize_name(model))
                if found is None:
                    raise NotFound(f"No model named '{model}'.")
                model = found
            model = store.get_model_by_id(s, model.id) or model  # the freshest live version
            live = store.get_version_by_id(s, model.live_version_id)
            if live is None:
                raise ModelUnavailable(
                    f"'{model.name}' has no live version yet; wait for its tune job "
                    f"(`/store jobs`) or roll back to a version (`/store versions {model.name}`).")
            if model.is_base:
                return Target(model_name=model.name, base_name=model.name, base_path=live.path,
                              adapter_path=None, version=None, version_id=live.id,
                              system_prompt=model.system_prompt, model_id=model.id)
            base = store.get_model(s, model.base_name or "")
            weights = store.get_version_by_id(s, base.live_version_id) if base else None
            if weights is None:
                raise ModelUnavailable(
                    f"The base model '{model.base_name}' of '{model.name}' is missing; register "
                    f"it again with `gptstore models add {model.base_name} --path DIR`.")
            return Target(model_name=model.name, base_name=base.name, base_path=weights.path,
                          adapter_path=live.path, version=live.number, version_id=live.id,
                          system_prompt=model.system_prompt, model_id=model.id)


def version_view(v: ModelVersionRecord) -> VersionView:
    return VersionView(number=v.number, status=v.status, kind=v.kind, created_at=v.created_at,
                       hyperparams=dict(v.hyperparams or {}),
                       metrics_before=dict(v.metrics_before or {}),
                       metrics_after=dict(v.metrics_after or {}), notes=v.notes, job_id=v.job_id,
                       dataset_id=v.dataset_id)


def _card(m: ModelRecord | store.SearchHit, live: Optional[int], *, versions: Optional[list[VersionView]] = None,
          deployments: Optional[list[str]] = None, score: Optional[float] = None) -> ModelCard:
    return ModelCard(
        name=m.name, description=m.description, tags=m.tags.split(), base=m.base_name,
        is_base=m.is_base, owner=m.owner, workspace=m.workspace, visibility=m.visibility,
        usage_count=m.usage_count, rating_up=m.rating_up, rating_down=m.rating_down,
        live_version=live, versions=versions or [], deployments=deployments or [],
        system_prompt=m.system_prompt, score=score)


def _viewer(caller: Caller) -> store.Viewer:
    return store.Viewer(workspace=caller.workspace, user=caller.user)
