"""Installations of a chat app into workspaces: save (one row per platform, enterprise and
team, the newest install wins), find, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import delete
from sqlmodel import Session, select

from storage.tables import InstallationRecord


def _where(platform: str, enterprise_id: str, team_id: str):
    return (InstallationRecord.platform == platform,
            InstallationRecord.enterprise_id == enterprise_id,
            InstallationRecord.team_id == team_id)


def save(session: Session, record: InstallationRecord, now: datetime) -> InstallationRecord:
    found = session.exec(select(InstallationRecord).where(
        *_where(record.platform, record.enterprise_id, record.team_id))).first()
    if found is None:
        found = record
    else:
        for name in ("team_name", "app_id", "bot_token", "bot_id", "bot_user_id", "bot_scopes",
                     "installer", "is_enterprise_install"):
            setattr(found, name, getattr(record, name))
    found.installed_at = now
    session.add(found)
    session.flush()
    return found


def find(session: Session, platform: str, enterprise_id: str, team_id: str
         ) -> Optional[InstallationRecord]:
    """The install for a team; for an org-wide install (enterprise, no team) any team of it."""
    found = session.exec(select(InstallationRecord).where(
        *_where(platform, enterprise_id, team_id))).first()
    if found is None and enterprise_id:
        found = session.exec(select(InstallationRecord).where(
            *_where(platform, enterprise_id, ""),
            InstallationRecord.is_enterprise_install == True)).first()  # noqa: E712
    return found


def remove(session: Session, platform: str, enterprise_id: str, team_id: str) -> int:
    result = session.execute(delete(InstallationRecord).where(
        *_where(platform, enterprise_id, team_id)))
    return int(result.rowcount or 0)


def count(session: Session, platform: str) -> int:
    return len(session.exec(select(InstallationRecord.id).where(
        InstallationRecord.platform == platform)).all())
