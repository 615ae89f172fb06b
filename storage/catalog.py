"""Catalog queries: store entries, their versions and deployments; ranked search (the SQL of
which is in storage/search.py, over the FTS5 table or tsvector column of migration 0002)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Optional

from sqlalchemy import bindparam, func, insert, or_, text, update
from sqlmodel import Session, select

from storage.search import (
    WINDOWS,
    SearchFilters,
    SearchWindows,
    Viewer,
    ranked_ids,
    search_terms,
)
from storage.tables import DeploymentRecord, JobRecord, ModelRecord, ModelVersionRecord

__all__ = ["SearchFilters", "Viewer", "search", "search_terms"]  # search lives in storage.search


def is_visible(model: ModelRecord, viewer: Viewer) -> bool:
    return (model.visibility == "public" or model.owner == viewer.user
            or (model.visibility == "workspace" and model.workspace == viewer.workspace))


def visible_to(viewer: Viewer):
    """The same rule as storage.search.VISIBLE, as a SQLAlchemy condition."""
    return or_(ModelRecord.visibility == "public",
               (ModelRecord.visibility == "workspace") & (ModelRecord.workspace == viewer.workspace),
               ModelRecord.owner == viewer.user)


@dataclass(frozen=True)
class SearchHit:
    """One search result: the entry's listed fields, its live version number and its score
    (None when no words were given). Plain columns, no ORM objects: search is a hot path."""

    id: int
    name: str
    description: str
    tags: str
    base_name: Optional[str]
    is_base: bool
    owner: str
    workspace: str
    visibility: str
    usage_count: int
    rating_up: int
    rating_down: int
    system_prompt: str
    live_version: Optional[int]
    score: Optional[float]


_HIT_COLUMNS = text(
    "SELECT m.id, m.name, m.description, m.tags, m.base_name, m.is_base, m.owner, m.workspace,"
    " m.visibility, m.usage_count, m.rating_up, m.rating_down, m.system_prompt, v.number"
    " FROM models m LEFT JOIN model_versions v ON v.id = m.live_version_id WHERE m.id IN :ids"
).bindparams(bindparam("ids", expanding=True))


def search(session: Session, viewer: Viewer, words: str, filters: SearchFilters,
           limit: int = 20, windows: SearchWindows = WINDOWS) -> list[SearchHit]:
    """Visible entries matching `words`, best first (without words: the most used and best
    rated first)."""
    ranked = ranked_ids(session, viewer, words, filters, limit, windows)
    if not ranked:
        return []
    rows = {row[0]: row for row in session.execute(_HIT_COLUMNS, {"ids": [i for i, _ in ranked]})}
    return [SearchHit(*rows[i][:5], bool(rows[i][5]), *rows[i][6:], score=score)
            for i, score in ranked if i in rows]


def name_candidates(session: Session, viewer: Viewer, name: str, limit: int = 200) -> list[str]:
    """Visible names that could be what `name` meant: same first letters, or a shared word.
    Indexed lookups only, so a miss never reads the whole catalog."""
    found: list[str] = []
    for size in (3, 2, 1):
        prefix = name[:size]
        if not prefix:
            continue
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = session.exec(
            select(ModelRecord.name).where(ModelRecord.name >= prefix, ModelRecord.name < upper,
                                           visible_to(viewer))
            .order_by(ModelRecord.usage_count.desc()).limit(limit)).all()
        found += [r for r in rows if r not in found]
        if len(found) >= 20:
            break
    terms = [t for t in search_terms(name.replace("-", " ")) if len(t) >= 3]
    if terms:
        hits = search(session, viewer, " ".join(terms), SearchFilters(), limit=limit)
        found += [hit.name for hit in hits if hit.name not in found]
    return found


def models_by_id(session: Session, ids: Iterable[int]) -> dict[int, ModelRecord]:
    ids = list(ids)
    if not ids:
        return {}
    return {m.id: m for m in session.exec(select(ModelRecord).where(ModelRecord.id.in_(ids))).all()}


def get_model_in(session: Session, workspace: str, name: str) -> Optional[ModelRecord]:
    """The entry called `name` in `workspace` ("" is the store's own); names are unique
    per workspace only."""
    return session.exec(select(ModelRecord).where(ModelRecord.workspace == workspace,
                                                  ModelRecord.name == name)).first()


def visible_named(session: Session, viewer: Viewer, names: Iterable[str]) -> list[ModelRecord]:
    """Every entry the viewer may see whose name is one of `names` (one per workspace)."""
    names = list(set(names))
    if not names:
        return []
    return list(session.exec(select(ModelRecord).where(ModelRecord.name.in_(names),
                                                       visible_to(viewer))
                             .order_by(ModelRecord.id)).all())


def delete_model(session: Session, model_id: int) -> bool:
    """Remove an entry with no versions and no jobs (one created by a refused request)."""
    if session.exec(select(ModelVersionRecord.id).where(
            ModelVersionRecord.model_id == model_id)).first() is not None:
        return False
    if session.exec(select(JobRecord.id).where(JobRecord.model_id == model_id)).first() is not None:
        return False
    record = session.get(ModelRecord, model_id)
    if record is None:
        return False
    session.delete(record)
    session.flush()
    return True


def get_model_by_id(session: Session, model_id: int) -> Optional[ModelRecord]:
    return session.get(ModelRecord, model_id)


def insert_model(session: Session, record: ModelRecord) -> ModelRecord:
    session.add(record)
    session.flush()
    return record


def insert_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Bulk insert of store entries (one executemany; the search index follows by trigger)."""
    if rows:
        session.execute(insert(ModelRecord), rows)


def versions_of(session: Session, model_id: int) -> list[ModelVersionRecord]:
    return list(session.exec(select(ModelVersionRecord).where(ModelVersionRecord.model_id == model_id)
                             .order_by(ModelVersionRecord.number)).all())


def get_version(session: Session, model_id: int, number: int) -> Optional[ModelVersionRecord]:
    return session.exec(select(ModelVersionRecord).where(
        ModelVersionRecord.model_id == model_id, ModelVersionRecord.number == number)).first()


def get_version_by_id(session: Session, version_id: Optional[int]) -> Optional[ModelVersionRecord]:
    return None if version_id is None else session.get(ModelVersionRecord, version_id)


def insert_version(session: Session, model_id: int, *, live: bool, now: datetime,
                   **fields: Any) -> ModelVersionRecord:
    """The next numbered version of a model; live=True retires the live one."""
    last = session.exec(select(func.max(ModelVersionRecord.number))
                        .where(ModelVersionRecord.model_id == model_id)).one()
    version = ModelVersionRecord(model_id=model_id, number=(last or 0) + 1, status="candidate",
                                 created_at=now, **fields)
    session.add(version)
    session.flush()
    if live:
        make_live(session, model_id, version, now)
    return version


def make_live(session: Session, model_id: int, version: ModelVersionRecord, now: datetime) -> None:
    """`version` becomes the live one; whichever was live before is retired."""
    session.execute(update(ModelVersionRecord)
                    .where(ModelVersionRecord.model_id == model_id,
                           ModelVersionRecord.status == "live", ModelVersionRecord.id != version.id)
                    .values(status="retired"))
    version.status = "live"
    session.add(version)
    session.execute(update(ModelRecord).where(ModelRecord.id == model_id)
                    .values(live_version_id=version.id, updated_at=now))
    session.flush()


def set_visibility(session: Session, model: ModelRecord, visibility: str, now: datetime) -> None:
    model.visibility = visibility
    model.updated_at = now
    session.add(model)
    session.flush()


def add_usage(session: Session, model_id: int, count: int = 1) -> None:
    """Atomic increment, safe with several processes sharing the database."""
    session.execute(update(ModelRecord).where(ModelRecord.id == model_id)
                    .values(usage_count=ModelRecord.usage_count + count))


def add_rating(session: Session, model_id: int, up: int = 0, down: int = 0) -> None:
    if up or down:
        session.execute(update(ModelRecord).where(ModelRecord.id == model_id).values(
            rating_up=ModelRecord.rating_up + up, rating_down=ModelRecord.rating_down + down))


def get_deployment(session: Session, workspace: str, channel: str) -> Optional[DeploymentRecord]:
    return session.exec(select(DeploymentRecord).where(
        DeploymentRecord.workspace == workspace, DeploymentRecord.channel == channel)).first()


def set_deployment(session: Session, workspace: str, channel: str, model_id: int, created_by: str,
                   now: datetime) -> DeploymentRecord:
    """Bind the channel to the model, replacing any earlier binding."""
    record = get_deployment(session, workspace, channel)
    if record is None:
        record = DeploymentRecord(workspace=workspace, channel=channel, model_id=model_id,
                                  created_by=created_by, created_at=now)
    else:
        record.model_id, record.created_by, record.created_at = model_id, created_by, now
    session.add(record)
    session.flush()
    return record


def delete_deployment(session: Session, workspace: str, channel: str) -> Optional[int]:
    """Unbind the channel; the model id it was bound to, or None."""
    record = get_deployment(session, workspace, channel)
    if record is None:
        return None
    session.delete(record)
    session.flush()
    return record.model_id


def owned_versions(session: Session, owner: str) -> list[tuple[str, int]]:
    """(model name, version number) of every trained version of the owner's tuned models."""
    rows = session.execute(
        select(ModelRecord.name, ModelVersionRecord.number)
        .join(ModelVersionRecord, ModelVersionRecord.model_id == ModelRecord.id)
        .where(ModelRecord.owner == owner, ModelRecord.is_base == False)  # noqa: E712
        .order_by(ModelRecord.name, ModelVersionRecord.number)).all()
    return [(name, number) for name, number in rows]


def channels_of(session: Session, model_id: int, workspace: str) -> list[str]:
    return list(session.exec(select(DeploymentRecord.channel).where(
        DeploymentRecord.model_id == model_id, DeploymentRecord.workspace == workspace)
        .order_by(DeploymentRecord.channel)).all())


def version_locations(session: Session) -> list[str]:
    """Where every version's files are (artifact references, or older stores' paths)."""
    return [p for p in session.exec(select(ModelVersionRecord.path)) if p]
