"""What jobs and the chat runner load for a store entry: the entry a job is for, its live
version, and its target (base weights plus live adapter), with the visibility rule checked
again at answer time."""

from __future__ import annotations

from typing import Any, Optional

from engine.catalog import rules
from engine.errors import InvalidInput, ModelUnavailable, NotFound
from engine.identity import Caller
from engine.views import Target, VersionView
from storage import catalog as store
from storage.db import Database
from storage.tables import ModelRecord, ModelVersionRecord


class TargetLookup:
    """The running half of the Catalog (engine/catalog/service.py builds on it)."""

    db: Database

    def job_model(self, model_id: Optional[int], workspace: str, name: str) -> ModelRecord:
        """The entry a job is for: by its id (jobs since migration 0022), else by its name in
        the job's workspace."""
        with self.db.session() as s:
            model = (store.get_model_by_id(s, model_id) if model_id is not None
                     else store.get_model_in(s, workspace, rules.normalize_name(name)))
        if model is None:
            raise NotFound(f"The model {name} no longer exists.")
        return model

    def live_version(self, model: ModelRecord) -> VersionView:
        """The live version of a tuned model (for the jobs that build on it)."""
        with self.db.session() as s:
            live = store.get_version_by_id(s, model.live_version_id)
            if live is None or not live.path or model.is_base:
                raise InvalidInput(f"{model.name} has no live version to improve; tune it first.")
            return version_view(live)

    def live_target(self, model: ModelRecord | int, caller: Optional[Caller] = None) -> Target:
        """What the runner loads for `model`: its base's weights plus its live adapter.
        With `caller`, the visibility rule is checked again on the freshest record, so a
        model made private a moment ago is refused (ModelUnavailable says why), and the
        target names the caller's workspace as its tenant (the runner's fair queue)."""
        with self.db.session() as s:
            model_id = model if isinstance(model, int) else model.id
            found = store.get_model_by_id(s, model_id)  # the freshest live version
            if found is None:
                raise NotFound(f"Model id {model_id} no longer exists.")
            model = found
            if caller is not None and not store.is_visible(model, viewer_of(caller)):
                raise ModelUnavailable(rules.no_longer_shared(model.name))
            live = store.get_version_by_id(s, model.live_version_id)
            if live is None:
                raise ModelUnavailable(
                    f"'{model.name}' has no live version yet; wait for its tune job "
                    f"(`/store jobs`) or roll back to a version (`/store versions {model.name}`).")
            tenant = caller.workspace if caller is not None else ""
            if model.is_base:
                return Target(model_name=model.name, base_name=model.name, base_path=live.path,
                              adapter_path=None, version=None, version_id=live.id,
                              system_prompt=model.system_prompt, model_id=model.id,
                              tenant=tenant)
            base = self._base_of(s, model)
            weights = store.get_version_by_id(s, base.live_version_id) if base else None
            if base is None or weights is None:
                raise ModelUnavailable(
                    f"The base model '{model.base_name}' of '{model.name}' is missing; register "
                    f"it again with `gptstore models add {model.base_name} --path DIR`.")
            return Target(model_name=model.name, base_name=base.name, base_path=weights.path,
                          adapter_path=live.path, version=live.number, version_id=live.id,
                          system_prompt=model.system_prompt, model_id=model.id, tenant=tenant)

    def base_target(self, model: ModelRecord) -> Target:
        """The live target of a tuned model's base (what a tune job trains on)."""
        with self.db.session() as s:
            base = self._base_of(s, model)
        if base is None:
            raise ModelUnavailable(
                f"The base model '{model.base_name}' of '{model.name}' is missing; register "
                f"it again with `gptstore models add {model.base_name} --path DIR`.")
        return self.live_target(base)

    @staticmethod
    def _base_of(s: Any, model: ModelRecord) -> Optional[ModelRecord]:
        """A tuned entry's base: by id; an entry older than migration 0022 whose base was
        missing then is looked for by name in its workspace, then the store's."""
        if model.base_id is not None:
            return store.get_model_by_id(s, model.base_id)
        for workspace in (model.workspace, ""):
            found = store.get_model_in(s, workspace, model.base_name or "")
            if found is not None:
                return found
        return None


def version_view(v: ModelVersionRecord, data: Any = None) -> VersionView:
    """A version as the front ends see it; `data` is its VersionDataRecord (what trained it),
    when one was recorded."""
    return VersionView(number=v.number, status=v.status, kind=v.kind, created_at=v.created_at,
                       hyperparams=dict(v.hyperparams or {}),
                       metrics_before=dict(v.metrics_before or {}),
                       metrics_after=dict(v.metrics_after or {}), notes=v.notes, job_id=v.job_id,
                       dataset_id=v.dataset_id,
                       file_examples=None if data is None else data.file_examples,
                       curated=None if data is None else len(data.curated_ids or []))


def viewer_of(caller: Caller) -> store.Viewer:
    return store.Viewer(workspace=caller.workspace, user=caller.user)
