"""The catalog service: register, find, show, publish, version, deploy and target models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from sqlalchemy.exc import IntegrityError

from engine import bundled
from engine.artifacts.store import ArtifactStore
from engine.catalog import names, rules
from engine.catalog.targets import TargetLookup, version_view, viewer_of
from engine.errors import Conflict, InvalidInput, ModelUnavailable, NotFound
from engine.identity import Caller
from engine.settings import Settings
from engine.views import ModelCard, VersionView
from storage import catalog as store
from storage import curation as curation_rows
from storage import events
from storage.db import Database
from storage.tables import DeploymentRecord, ModelRecord


@dataclass(frozen=True)
class Answerer:
    """The model that answers a plain message, and why it was chosen."""

    model: ModelRecord
    chosen_by: str  # channel|workspace|store (see ChatAnswer.chosen_by)


class Catalog(TargetLookup):
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
            if store.get_model_in(s, "", bundled.NAME) is not None:
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
            _check_free(s, caller.workspace, slug)
        record = ModelRecord(name=slug, description=description.strip(),
                             tags=rules.normalize_tags(tags), is_base=True, owner=caller.user,
                             workspace=caller.workspace, visibility="private")
        # The folder is copied into the artifact store: workers on other hosts load it from
        # there, and the version records its content hash, not this host's path.
        location = self.artifacts.put_folder(folder) if self.artifacts else str(folder)
        try:
            self._insert_with_weights(record, location)
        except IntegrityError:
            raise Conflict(f"The name '{slug}' is taken in this workspace; pick another.") from None
        return self._full_card(caller, record)

    def _insert_with_weights(self, record: ModelRecord, path: str) -> None:
        now = self.clock()
        record.created_at = record.updated_at = now
        with self.db.session() as s:
            store.insert_model(s, record)
            store.insert_version(s, record.id, live=True, now=now, kind="weights", path=path)

    def create_or_get_tuned(self, caller: Caller, name: str, base_name: Optional[str],
                            description: str = "", tags: str = "") -> ModelRecord:
        """The caller's tuned entry `name` (in the caller's workspace) on `base_name`, created
        private on first use."""
        slug = rules.check_slug(name)
        base = self.resolve(caller, base_name or self.settings.default_base)
        if not base.is_base:
            raise InvalidInput(f"'{base.name}' is a tuned model, not a base model; tune from its "
                               f"base instead (base={base.base_name}).")
        for _ in range(2):
            with self.db.session() as s:
                existing = store.get_model_in(s, caller.workspace, slug)
                if existing is None:
                    _check_free(s, caller.workspace, slug)
            if existing is not None:
                return self._reuse_tuned(caller, existing, base, description)
            now = self.clock()
            record = ModelRecord(name=slug, description=description.strip(),
                                 tags=rules.normalize_tags(tags), base_name=base.name,
                                 base_id=base.id, owner=caller.user, workspace=caller.workspace,
                                 visibility="private", created_at=now, updated_at=now)
            try:
                with self.db.session() as s:
                    return store.insert_model(s, record)
            except IntegrityError:
                continue  # created meanwhile by another request: look again
        raise Conflict(f"The name '{slug}' is taken; pick another.")

    def _reuse_tuned(self, caller: Caller, model: ModelRecord, base: ModelRecord,
                     description: str) -> ModelRecord:
        if model.is_base or not rules.can_manage(caller, model):
            raise Conflict(f"The name '{model.name}' is taken in this workspace; pick another.")
        if (model.base_id if model.base_id is not None else model.base_name) != (
                base.id if model.base_id is not None else base.name):
            raise Conflict(f"'{model.name}' is tuned from '{model.base_name}', not "
                           f"'{base.name}'; tune it with base={model.base_name} or pick another "
                           "name.")
        if description.strip() and not model.description:
            with self.db.session() as s:
                model.description = description.strip()
                s.add(model)
        return model

    def discard_unused(self, model_id: int) -> bool:
        """Remove an entry that has no versions and no jobs: what a refused tune request
        created a moment before it was refused."""
        with self.db.session() as s:
            return store.delete_model(s, model_id)

    def next_version_number(self, model_id: int) -> int:
        """The number the model's next version will most likely get (its folder is named
        after it before the version is recorded; add_version numbers again if two race)."""
        with self.db.session() as s:
            return 1 + max((v.number for v in store.versions_of(s, model_id)), default=0)

    def add_version(self, model_id: int, *, path: str, hyperparams: Optional[dict] = None,
                    dataset_id: Optional[int] = None, job_id: Optional[int] = None,
                    metrics_before: Optional[dict] = None, metrics_after: Optional[dict] = None,
                    notes: str = "", live: bool = False, kind: str = "adapter",
                    file_examples: Optional[int] = None,
                    curated_ids: Iterable[int] = ()) -> VersionView:
        """Record a new numbered version; live=True makes it live and retires the previous.
        `file_examples` and `curated_ids` record exactly what trained it (its data view)."""
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
                    if file_examples is None:
                        return version_view(version)
                    curation_rows.record_version_data(
                        s, version.id, dataset_id=dataset_id, file_examples=file_examples,
                        curated_ids=curated_ids)
                    return version_view(version, curation_rows.version_data(s, [version.id])
                                        .get(version.id))
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
        viewer = _viewer(caller)
        with self.db.session() as s:
            hits = store.search(s, viewer, words or "", filters,
                                limit=max(1, min(int(limit), 100)), windows=self.search_windows)
            rivals = store.visible_named(s, viewer, [hit.name for hit in hits
                                                     if hit.workspace != caller.workspace])
        return [_card(hit, hit.live_version, score=hit.score,
                      name=names.shown(hit, caller.workspace, rivals)) for hit in hits]

    def resolve(self, caller: Caller, name: str) -> ModelRecord:
        """The visible entry called `name` (NAME, or WORKSPACE/NAME for another workspace's:
        engine/catalog/names.py); NotFound suggests the closest visible names."""
        wanted = names.parse(name)
        viewer = _viewer(caller)
        with self.db.session() as s:
            model = names.pick(caller.workspace, wanted,
                               store.visible_named(s, viewer, [wanted.name]))
            if model is not None:
                return model
            candidates = store.name_candidates(s, viewer, wanted.name)
        raise NotFound(f"No model named '{wanted.text}'. "
                       + rules.suggestion(wanted.name, candidates))

    def shown_name(self, caller: Caller, model: ModelRecord) -> str:
        """What `caller` types for `model`: NAME, or WORKSPACE/NAME where NAME means another."""
        if model.workspace == caller.workspace:
            return model.name
        with self.db.session() as s:
            rivals = store.visible_named(s, _viewer(caller), [model.name])
        return names.shown(model, caller.workspace, rivals)

    def model_by_id(self, model_id: int) -> Optional[ModelRecord]:
        with self.db.session() as s:
            return store.get_model_by_id(s, model_id)

    def _managed(self, caller: Caller, name: str) -> ModelRecord:
        """Like resolve, but the caller's own workspace's entry of that name comes first when
        they may manage it: an admin reaches its private entries (to publish or roll them
        back) even where another workspace's public entry has the same name."""
        wanted = names.parse(name)
        if wanted.qualifier is None or names.qualifier_means(wanted.qualifier, caller.workspace):
            with self.db.session() as s:
                own = store.get_model_in(s, caller.workspace, wanted.name)
            if own is not None and rules.can_manage(caller, own):
                return own
        return self.resolve(caller, name)

    def card(self, caller: Caller, name: str) -> ModelCard:
        return self._full_card(caller, self.resolve(caller, name))

    def _full_card(self, caller: Caller, model: ModelRecord) -> ModelCard:
        with self.db.session() as s:
            versions = _versions(s, model.id)
            channels = [rules.WORKSPACE_DEFAULT_SHOWN if c == rules.WORKSPACE_DEFAULT else c
                        for c in store.channels_of(s, model.id, caller.workspace)]
        live = next((v.number for v in versions if v.status == "live"), None)
        return _card(model, live, versions=versions, deployments=channels,
                     name=self.shown_name(caller, model))

    def versions(self, caller: Caller, name: str) -> list[VersionView]:
        model = self.resolve(caller, name)
        with self.db.session() as s:
            return _versions(s, model.id)

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
        return self._full_card(caller, model)

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
        """This channel's (or DM's) deployed model, if the caller may still use it. One whose
        owner has since stopped sharing it counts as none, once its notice was given (until
        then it is returned, so that the next message there is told why: see answering)."""
        if not caller.channel:
            return None
        found = self._binding(caller.workspace, caller.channel)
        if found is None:
            return None
        deployment, model = found
        if store.is_visible(model, _viewer(caller)):
            return model
        with self.db.session() as s:
            told = events.seen(s, _notice_key(deployment))
        return None if told else model

    def workspace_default(self, caller: Caller) -> Optional[ModelRecord]:
        """The model an admin made the workspace's default (`/store deploy MODEL default`),
        if the caller may still use it."""
        found = self._binding(caller.workspace, rules.WORKSPACE_DEFAULT)
        if found is None or not store.is_visible(found[1], _viewer(caller)):
            return None
        return found[1]

    def answering(self, caller: Caller) -> Answerer:
        """Who answers a plain message here: this channel's deployed model, else the
        workspace's default, else the store's default base. The visibility rule holds here
        too: a deployed model its owner made private (or workspace-only) elsewhere stops
        answering at once; the first message after that is told why (ModelUnavailable), once
        per deployment, and later ones go on down the list."""
        levels = [("channel", caller.channel)] if caller.channel else []
        for chosen_by, channel in levels + [("workspace", rules.WORKSPACE_DEFAULT)]:
            found = self._binding(caller.workspace, channel)
            if found is None:
                continue
            deployment, model = found
            if store.is_visible(model, _viewer(caller)):
                return Answerer(model, chosen_by)
            if self.db.retrying(lambda s: events.first_time(s, _notice_key(deployment))):
                raise ModelUnavailable(rules.no_longer_shared(model.name, deployed=channel))
        return Answerer(self.resolve(caller, self.settings.default_base), "store")

    def _binding(self, workspace: str, channel: str
                 ) -> Optional[tuple[DeploymentRecord, ModelRecord]]:
        with self.db.session() as s:
            record = store.get_deployment(s, workspace, channel)
            model = store.get_model_by_id(s, record.model_id) if record else None
        return (record, model) if record is not None and model is not None else None

    def record_usage(self, model_id: int, count: int = 1) -> None:
        with self.db.session() as s:
            store.add_usage(s, model_id, count)

    def add_rating(self, model_id: int, up: int = 0, down: int = 0) -> None:
        with self.db.session() as s:
            store.add_rating(s, model_id, up, down)


def _card(m: ModelRecord | store.SearchHit, live: Optional[int], *,
          versions: Optional[list[VersionView]] = None, deployments: Optional[list[str]] = None,
          score: Optional[float] = None, name: Optional[str] = None) -> ModelCard:
    return ModelCard(
        name=name or m.name, description=m.description, tags=m.tags.split(), base=m.base_name,
        is_base=m.is_base, owner=m.owner, workspace=m.workspace, visibility=m.visibility,
        usage_count=m.usage_count, rating_up=m.rating_up, rating_down=m.rating_down,
        live_version=live, versions=versions or [], deployments=deployments or [],
        system_prompt=m.system_prompt, score=score)


_viewer = viewer_of


def _check_free(s: Any, workspace: str, slug: str) -> None:
    """Conflict when `slug` is taken in the workspace, or by one of the store's own entries
    (the bundled base: its name means it in every workspace)."""
    if store.get_model_in(s, workspace, slug) is not None:
        raise Conflict(f"The name '{slug}' is taken in this workspace; pick another.")
    if workspace and store.get_model_in(s, "", slug) is not None:
        raise Conflict(f"The name '{slug}' is taken by the store's own model; pick another.")


def _notice_key(deployment: DeploymentRecord) -> str:
    """The processed-events key of "this deployment's model is no longer shared" (told once
    per deployment; a new deploy is a new deployment)."""
    made = deployment.created_at.replace(tzinfo=None).isoformat(timespec="seconds")
    return f"{events.NOTICE_PREFIX}hidden:{deployment.id}:{deployment.model_id}:{made}"


def _versions(s, model_id: int) -> list[VersionView]:
    """A model's versions with their data views (what trained each one)."""
    records = store.versions_of(s, model_id)
    data = curation_rows.version_data(s, [v.id for v in records])
    return [version_view(v, data.get(v.id)) for v in records]
