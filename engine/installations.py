"""Where a chat app is installed: one bot token per workspace, kept in the store's database.

    engine.installations.save(Installation(platform="slack", team_id="T1", bot_token="xoxb-...",
                                           bot_user_id="UBOT", installer="U1"))
    engine.installations.find("slack", team_id="T1")   # -> Installation | None
    engine.installations.remove("slack", team_id="T1") # uninstalled: its token is gone

Slack's OAuth flow writes here (bot/slack/oauth.py adapts this to slack-sdk's
InstallationStore), so every `gptstore serve` sharing the database answers every workspace
that installed the app, each with its own token. Tokens never appear in a repr or a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Optional

from storage import installations as store
from storage.db import Database
from storage.tables import InstallationRecord


@dataclass(frozen=True)
class Installation:
    """One workspace's install of the app."""

    platform: str
    team_id: str
    bot_token: str = field(repr=False)
    bot_user_id: str = ""
    bot_id: str = ""
    enterprise_id: str = ""
    team_name: str = ""
    app_id: str = ""
    bot_scopes: str = ""  # comma-separated, as Slack grants them
    installer: str = ""  # the platform user who installed it
    is_enterprise_install: bool = False
    installed_at: Optional[datetime] = None


class Installations:
    """Save, find and remove installs (any number of workspaces per platform)."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def save(self, install: Installation) -> Installation:
        """Record an install; installing again into the same workspace replaces its token."""
        record = InstallationRecord(
            platform=install.platform, enterprise_id=install.enterprise_id or "",
            team_id=install.team_id or "", team_name=install.team_name, app_id=install.app_id,
            bot_token=install.bot_token, bot_id=install.bot_id, bot_user_id=install.bot_user_id,
            bot_scopes=install.bot_scopes, installer=install.installer,
            is_enterprise_install=install.is_enterprise_install)
        with self.db.session() as s:
            return _view(store.save(s, record, self.clock()))

    def find(self, platform: str, *, team_id: str = "",
             enterprise_id: str = "") -> Optional[Installation]:
        with self.db.session() as s:
            found = store.find(s, platform, enterprise_id or "", team_id or "")
            return _view(found) if found is not None else None

    def remove(self, platform: str, *, team_id: str = "", enterprise_id: str = "") -> bool:
        """Forget a workspace's install (its token with it); False when there was none."""
        with self.db.session() as s:
            return store.remove(s, platform, enterprise_id or "", team_id or "") > 0

    def count(self, platform: str) -> int:
        with self.db.session() as s:
            return store.count(s, platform)


def _view(record: InstallationRecord) -> Installation:
    return Installation(
        platform=record.platform, team_id=record.team_id, bot_token=record.bot_token,
        bot_user_id=record.bot_user_id, bot_id=record.bot_id, enterprise_id=record.enterprise_id,
        team_name=record.team_name, app_id=record.app_id, bot_scopes=record.bot_scopes,
        installer=record.installer, is_enterprise_install=record.is_enterprise_install,
        installed_at=record.installed_at)
