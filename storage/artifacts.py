"""The artifact store's SQL: blobs kept as rows in chunks, and trees (folder manifests).

A blob row is inserted in the same transaction as all of its chunks, so a blob that is
visible is complete; a tree is inserted only after all of its blobs exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Optional

from sqlalchemy import delete, func
from sqlmodel import Session, select

from storage.tables import ArtifactBlobRecord, ArtifactChunkRecord, ArtifactTreeRecord


def has_blob(session: Session, sha256: str) -> bool:
    return session.get(ArtifactBlobRecord, sha256) is not None


def insert_blob(session: Session, sha256: str, size: int, chunks: Iterable[bytes],
                now: datetime) -> None:
    """The blob and its chunks, in the caller's transaction (IntegrityError if it exists)."""
    session.add(ArtifactBlobRecord(sha256=sha256, size=size, created_at=now))
    session.flush()
    for seq, data in enumerate(chunks):
        session.add(ArtifactChunkRecord(sha256=sha256, seq=seq, data=data))
        session.flush()  # one chunk in memory at a time


def chunk_count(session: Session, sha256: str) -> int:
    query = select(func.count()).select_from(ArtifactChunkRecord).where(
        ArtifactChunkRecord.sha256 == sha256)
    return int(session.exec(query).one())


def chunk(session: Session, sha256: str, seq: int) -> Optional[bytes]:
    row = session.get(ArtifactChunkRecord, (sha256, seq))
    return bytes(row.data) if row is not None else None


def delete_blob(session: Session, sha256: str) -> None:
    session.execute(delete(ArtifactChunkRecord).where(ArtifactChunkRecord.sha256 == sha256))
    session.execute(delete(ArtifactBlobRecord).where(ArtifactBlobRecord.sha256 == sha256))


def blob_hashes(session: Session, before: datetime) -> list[str]:
    query = select(ArtifactBlobRecord.sha256).where(ArtifactBlobRecord.created_at < before)
    return list(session.exec(query))


def get_tree(session: Session, sha256: str) -> Optional[ArtifactTreeRecord]:
    return session.get(ArtifactTreeRecord, sha256)


def insert_tree(session: Session, sha256: str, manifest: dict[str, Any], size: int,
                now: datetime) -> None:
    if session.get(ArtifactTreeRecord, sha256) is None:
        session.add(ArtifactTreeRecord(sha256=sha256, manifest=manifest, size=size,
                                       created_at=now))
        session.flush()


def trees(session: Session) -> list[ArtifactTreeRecord]:
    return list(session.exec(select(ArtifactTreeRecord)))


def delete_tree(session: Session, sha256: str) -> None:
    session.execute(delete(ArtifactTreeRecord).where(ArtifactTreeRecord.sha256 == sha256))
