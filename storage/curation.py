"""Curated pairs (the review inbox and the approved training pairs), what trained each
version, and the owner's per-model curation choices."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Optional

from sqlalchemy import delete, or_
from sqlmodel import Session, select

from storage.tables import CuratedExampleRecord, CurationSettingsRecord, VersionDataRecord

STATUSES = ("pending", "approved", "rejected")


def _key(text: str) -> str:
    return " ".join((text or "").lower().split())


def suggest(session: Session, *, model_id: int, user: str, now: datetime,
            **fields) -> tuple[CuratedExampleRecord, bool]:
    """A pending suggestion, or the user's agreement with an equal one already pending (same
    question and suggested answer). Returns (record, whether it changed)."""
    question, answer = _key(fields.get("question", "")), _key(fields.get("answer", ""))
    for record in session.exec(select(CuratedExampleRecord).where(
            CuratedExampleRecord.model_id == model_id,
            CuratedExampleRecord.status == "pending")).all():
        if _key(record.question) == question and _key(record.answer) == answer:
            if user in (record.supporters or []):
                return record, False
            record.supporters = [*(record.supporters or []), user]
            session.add(record)
            session.flush()
            return record, True
    record = CuratedExampleRecord(model_id=model_id, status="pending", suggested_by=user,
                                  supporters=[user], created_at=now, **fields)
    session.add(record)
    session.flush()
    return record, True


def add_approved(session: Session, *, model_id: int, approved_by: str, now: datetime,
                 **fields) -> CuratedExampleRecord:
    """An approved pair straight away (an answered gap, an owner's thumbs-up). An equal
    approved pair is returned instead of a second copy."""
    question, answer = _key(fields.get("question", "")), _key(fields.get("answer", ""))
    for record in approved(session, model_id):
        if _key(record.question) == question and _key(record.answer) == answer:
            return record
    record = CuratedExampleRecord(model_id=model_id, status="approved", approved_by=approved_by,
                                  decided_at=now, created_at=now,
                                  supporters=[fields.get("suggested_by") or approved_by],
                                  **fields)
    session.add(record)
    session.flush()
    return record


def get(session: Session, curated_id: int) -> Optional[CuratedExampleRecord]:
    return session.get(CuratedExampleRecord, curated_id)


def pending(session: Session, model_id: int, limit: int = 50) -> list[CuratedExampleRecord]:
    return list(session.exec(select(CuratedExampleRecord).where(
        CuratedExampleRecord.model_id == model_id, CuratedExampleRecord.status == "pending")
        .order_by(CuratedExampleRecord.id).limit(limit)).all())


def count(session: Session, model_id: int, status: str) -> int:
    return len(session.exec(select(CuratedExampleRecord.id).where(
        CuratedExampleRecord.model_id == model_id, CuratedExampleRecord.status == status)).all())


def approved(session: Session, model_id: int) -> list[CuratedExampleRecord]:
    """Every approved pair of a model, oldest first: the curated part of its training set."""
    return list(session.exec(select(CuratedExampleRecord).where(
        CuratedExampleRecord.model_id == model_id, CuratedExampleRecord.status == "approved")
        .order_by(CuratedExampleRecord.id)).all())


def decide(session: Session, record: CuratedExampleRecord, status: str, by: str,
           now: datetime, answer: Optional[str] = None) -> CuratedExampleRecord:
    if status not in STATUSES:
        raise ValueError(status)
    record.status, record.approved_by, record.decided_at = status, by, now
    if answer is not None:
        record.answer = answer
    session.add(record)
    session.flush()
    return record


def models_of_user(session: Session, user: str) -> set[int]:
    """The models with pairs a user asked or suggested."""
    return set(session.exec(select(CuratedExampleRecord.model_id).where(or_(
        CuratedExampleRecord.asker == user, CuratedExampleRecord.suggested_by == user))).all())


def forget_user(session: Session, user: str) -> int:
    """Delete the pairs a user asked or suggested (a forget-me); the number deleted."""
    result = session.execute(delete(CuratedExampleRecord).where(or_(
        CuratedExampleRecord.asker == user, CuratedExampleRecord.suggested_by == user)))
    return int(result.rowcount or 0)


# -- what trained each version ------------------------------------------------------------


def record_version_data(session: Session, version_id: int, *, dataset_id: Optional[int],
                        file_examples: int, curated_ids: Iterable[int]) -> None:
    record = session.get(VersionDataRecord, version_id) or VersionDataRecord(version_id=version_id)
    record.dataset_id, record.file_examples = dataset_id, int(file_examples)
    record.curated_ids = sorted(int(i) for i in curated_ids)
    session.add(record)


def version_data(session: Session, version_ids: Iterable[int]) -> dict[int, VersionDataRecord]:
    ids = list(version_ids)
    if not ids:
        return {}
    rows = session.exec(select(VersionDataRecord).where(VersionDataRecord.version_id.in_(ids)))
    return {row.version_id: row for row in rows.all()}


# -- the owner's choices ------------------------------------------------------------------


def settings_of(session: Session, model_id: int) -> CurationSettingsRecord:
    return session.get(CurationSettingsRecord, model_id) or CurationSettingsRecord(model_id=model_id)


def set_settings(session: Session, model_id: int, *, thumbs_up_approves: Optional[bool] = None,
                 outside_suggestions: Optional[bool] = None) -> CurationSettingsRecord:
    record = settings_of(session, model_id)
    if thumbs_up_approves is not None:
        record.thumbs_up_approves = thumbs_up_approves
    if outside_suggestions is not None:
        record.outside_suggestions = outside_suggestions
    session.add(record)
    session.flush()
    return record
