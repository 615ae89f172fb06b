"""A model's knowledge in the database: entries (with their embeddings), gaps, and the
per-model decline threshold and handoff text."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Optional

from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, select

from storage.tables import (
    KnowledgeEntryRecord,
    KnowledgeGapAskRecord,
    KnowledgeGapRecord,
    KnowledgeSettingsRecord,
)


def _answers_for(model_id: int, version: Optional[int]):
    """Entries a version answers from: its own file's, plus those of every version."""
    scope = KnowledgeEntryRecord.version.is_(None)  # type: ignore[union-attr]
    if version is not None:
        scope = or_(scope, KnowledgeEntryRecord.version == version)
    return (KnowledgeEntryRecord.model_id == model_id, scope)


def file_version(s: Session, model_id: int, version: Optional[int]) -> Optional[int]:
    """The version whose file entries `version` answers from: its own, or, when it has none
    (a retrain trains on the same file and indexes nothing), the newest earlier version's.
    Staging keys (0 or below) and None are taken as they are."""
    if version is None or version <= 0:
        return version
    own = s.exec(select(KnowledgeEntryRecord.id).where(
        KnowledgeEntryRecord.model_id == model_id,
        KnowledgeEntryRecord.version == version).limit(1)).first()
    if own is not None:
        return version
    earlier = s.exec(select(func.max(KnowledgeEntryRecord.version)).where(
        KnowledgeEntryRecord.model_id == model_id, KnowledgeEntryRecord.version > 0,
        KnowledgeEntryRecord.version < version)).one()
    return int(earlier) if earlier is not None else version


def replace_entries(s: Session, model_id: int, version: Optional[int], origin: str,
                    source: str, entries: Iterable[KnowledgeEntryRecord]) -> int:
    """Swap one file's entries of one version for `entries` in the caller's transaction."""
    version_is = (KnowledgeEntryRecord.version.is_(None) if version is None  # type: ignore
                  else KnowledgeEntryRecord.version == version)
    s.exec(delete(KnowledgeEntryRecord).where(  # type: ignore[call-overload]
        KnowledgeEntryRecord.model_id == model_id, version_is,
        KnowledgeEntryRecord.origin == origin, KnowledgeEntryRecord.source == source))
    count = 0
    for entry in entries:
        s.add(entry)
        count += 1
    s.flush()
    bump(s, model_id)
    return count


def add_entry(s: Session, entry: KnowledgeEntryRecord) -> KnowledgeEntryRecord:
    s.add(entry)
    s.flush()
    bump(s, model_id=entry.model_id)
    return entry


def bump(s: Session, model_id: int) -> None:
    """Mark the model's entries changed, atomically (two processes never get one number)."""
    result = s.exec(update(KnowledgeSettingsRecord)  # type: ignore[call-overload]
                    .where(KnowledgeSettingsRecord.model_id == model_id)
                    .values(revision=KnowledgeSettingsRecord.revision + 1))
    if not result.rowcount:
        s.add(KnowledgeSettingsRecord(model_id=model_id, revision=1))
        s.flush()


def revision(s: Session, model_id: int) -> int:
    """The model's entries' revision: one primary-key read."""
    record = s.get(KnowledgeSettingsRecord, model_id)
    return record.revision if record is not None else 0


def count(s: Session, model_id: int, version: Optional[int]) -> int:
    scope = _answers_for(model_id, file_version(s, model_id, version))
    return int(s.exec(select(func.count(KnowledgeEntryRecord.id)).where(*scope)).one() or 0)


def entries(s: Session, model_id: int, version: Optional[int]) -> list[KnowledgeEntryRecord]:
    """Every entry `version` answers from (see file_version), in the order they were added."""
    scope = _answers_for(model_id, file_version(s, model_id, version))
    return list(s.exec(select(KnowledgeEntryRecord).where(*scope)
                       .order_by(KnowledgeEntryRecord.id)))


def documents(s: Session, model_id: int) -> list[tuple[str, int]]:
    """(file name, passages) of a model's documents."""
    rows = s.exec(select(KnowledgeEntryRecord.source, func.count(KnowledgeEntryRecord.id))
                  .where(KnowledgeEntryRecord.model_id == model_id,
                         KnowledgeEntryRecord.origin == "document")
                  .group_by(KnowledgeEntryRecord.source).order_by(KnowledgeEntryRecord.source))
    return [(str(name), int(n)) for name, n in rows]


def settings_of(s: Session, model_id: int) -> Optional[KnowledgeSettingsRecord]:
    return s.get(KnowledgeSettingsRecord, model_id)


def save_settings(s: Session, model_id: int, now: datetime, **values: object
                  ) -> KnowledgeSettingsRecord:
    record = s.get(KnowledgeSettingsRecord, model_id) or KnowledgeSettingsRecord(
        model_id=model_id)
    for name, value in values.items():
        setattr(record, name, value)
    record.updated_at = now
    s.add(record)
    s.flush()
    return record


def open_gaps(s: Session, model_id: int, workspace: str) -> list[KnowledgeGapRecord]:
    """A model's unanswered gaps asked in `workspace`, most asked first, then most recent."""
    return list(s.exec(select(KnowledgeGapRecord)
                       .where(KnowledgeGapRecord.model_id == model_id,
                              KnowledgeGapRecord.workspace == workspace,
                              KnowledgeGapRecord.state == "open")
                       .order_by(KnowledgeGapRecord.count.desc(),  # type: ignore[attr-defined]
                                 KnowledgeGapRecord.last_asked.desc())))  # type: ignore


def gap(s: Session, gap_id: int) -> Optional[KnowledgeGapRecord]:
    return s.get(KnowledgeGapRecord, gap_id)


def add_gap(s: Session, record: KnowledgeGapRecord) -> KnowledgeGapRecord:
    s.add(record)
    s.flush()
    return record


def add_ask(s: Session, gap_id: int, asker: str, question: str, at: datetime) -> None:
    s.add(KnowledgeGapAskRecord(gap_id=gap_id, asker=asker, question=question.strip(),
                                asked_at=at))


def remove_asks(s: Session, *, asker: Optional[str] = None,
                before: Optional[datetime] = None) -> dict[int, list[str]]:
    """Delete the asks of `asker`, or those made before `before`. Returns, per gap that lost
    any, the words of the asks deleted."""
    condition = (KnowledgeGapAskRecord.asker == asker if asker is not None
                 else KnowledgeGapAskRecord.asked_at < before)  # type: ignore[operator]
    gone: dict[int, list[str]] = {}
    for ask in s.exec(select(KnowledgeGapAskRecord).where(condition)):
        gone.setdefault(ask.gap_id, []).append(ask.question)
    if gone:
        s.execute(delete(KnowledgeGapAskRecord).where(condition))
    return gone


def asks_of(s: Session, gap_id: int) -> list[KnowledgeGapAskRecord]:
    """A gap's asks, earliest first."""
    return list(s.exec(select(KnowledgeGapAskRecord)
                       .where(KnowledgeGapAskRecord.gap_id == gap_id)
                       .order_by(KnowledgeGapAskRecord.asked_at,  # type: ignore[arg-type]
                                 KnowledgeGapAskRecord.id)))


def delete_gap(s: Session, record: KnowledgeGapRecord) -> None:
    s.execute(delete(KnowledgeGapAskRecord).where(KnowledgeGapAskRecord.gap_id == record.id))
    s.delete(record)


def open_gaps_before(s: Session, cutoff: datetime) -> list[KnowledgeGapRecord]:
    """Open gaps last asked before `cutoff`, in every model and workspace."""
    return list(s.exec(select(KnowledgeGapRecord).where(
        KnowledgeGapRecord.state == "open",
        KnowledgeGapRecord.last_asked < cutoff)))  # type: ignore[operator]
