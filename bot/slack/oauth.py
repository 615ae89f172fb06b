"""Many workspaces: Slack's OAuth install flow (Bolt's OAuthSettings) on the store's database.

    settings = oauth_settings(engine, client_id=..., client_secret=...)
    app = build_slack_app(engine, settings, WebClient(base_url=...), oauth=settings)

GET /slack/install starts an install (Bolt sets a state cookie and links to Slack); Slack
sends the installer back to GET /slack/oauth_redirect with a code, which Bolt exchanges
(oauth.v2.access) for that workspace's bot token and saves through `EngineInstallationStore`
(slack-sdk's InstallationStore interface over `engine.installations`). Each event is then
answered with its own workspace's token (Bolt's per-request `client`); `tokens_revoked` and
`app_uninstalled` remove the workspace's token. The OAuth state is signed with the client
secret and can be used once (recorded in the database), so any serve process may finish an
install another one started.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from logging import Logger
from typing import TYPE_CHECKING, Any, Callable, Optional

from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore

from bot.slack.context import first_time
from bot.slack.manifest import INSTALL_PATH, REDIRECT_PATH, SCOPES
from engine.installations import Installation as StoreInstallation

if TYPE_CHECKING:
    from engine.app import Engine

PLATFORM = "slack"
STATE_TTL_S = 600


class EngineInstallationStore(InstallationStore):
    """slack-sdk's InstallationStore, kept by the engine (bot tokens only, no user tokens)."""

    def __init__(self, engine: "Engine", *, log: Logger | None = None) -> None:
        self.engine = engine
        self._logger = log or logging.getLogger("gptstore.slack.oauth")

    @property
    def logger(self) -> Logger:
        return self._logger

    def save(self, installation: Installation) -> None:
        self.save_bot(installation.to_bot(), installer=installation.user_id)

    def save_bot(self, bot: Bot, *, installer: str = "") -> None:
        scopes = bot.bot_scopes if isinstance(bot.bot_scopes, str) else ",".join(bot.bot_scopes)
        self.engine.installations.save(StoreInstallation(
            platform=PLATFORM, team_id=bot.team_id or "", bot_token=bot.bot_token,
            bot_user_id=bot.bot_user_id or "", bot_id=bot.bot_id or "",
            enterprise_id=bot.enterprise_id or "", team_name=bot.team_name or "",
            app_id=bot.app_id or "", bot_scopes=scopes, installer=installer,
            is_enterprise_install=bool(bot.is_enterprise_install)))
        self._logger.info("Slack app installed in %s (%s)", bot.team_id or bot.enterprise_id,
                          bot.team_name or "")

    def find_bot(self, *, enterprise_id: Optional[str], team_id: Optional[str],
                 is_enterprise_install: Optional[bool] = False) -> Optional[Bot]:
        found = self.engine.installations.find(
            PLATFORM, team_id="" if is_enterprise_install else (team_id or ""),
            enterprise_id=enterprise_id or "")
        if found is None:
            return None
        return Bot(app_id=found.app_id or None, enterprise_id=found.enterprise_id or None,
                   team_id=found.team_id or None, team_name=found.team_name or None,
                   bot_token=found.bot_token, bot_id=found.bot_id, bot_user_id=found.bot_user_id,
                   bot_scopes=found.bot_scopes, is_enterprise_install=found.is_enterprise_install,
                   installed_at=found.installed_at.timestamp() if found.installed_at else None)

    def find_installation(self, *, enterprise_id: Optional[str], team_id: Optional[str],
                          user_id: Optional[str] = None,
                          is_enterprise_install: Optional[bool] = False
                          ) -> Optional[Installation]:
        if user_id is not None:
            return None  # no user tokens are kept
        bot = self.find_bot(enterprise_id=enterprise_id, team_id=team_id,
                            is_enterprise_install=is_enterprise_install)
        if bot is None:
            return None
        return Installation(app_id=bot.app_id, enterprise_id=bot.enterprise_id,
                            team_id=bot.team_id, team_name=bot.team_name,
                            bot_token=bot.bot_token, bot_id=bot.bot_id,
                            bot_user_id=bot.bot_user_id, bot_scopes=bot.bot_scopes,
                            user_id="", is_enterprise_install=bot.is_enterprise_install,
                            installed_at=bot.installed_at)

    def delete_bot(self, *, enterprise_id: Optional[str], team_id: Optional[str]) -> None:
        if self.engine.installations.remove(PLATFORM, team_id=team_id or "",
                                            enterprise_id=enterprise_id or ""):
            self._logger.info("Slack app removed from %s; its token is deleted",
                              team_id or enterprise_id)

    def delete_installation(self, *, enterprise_id: Optional[str], team_id: Optional[str],
                            user_id: Optional[str] = None) -> None:
        if user_id is None:
            self.delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    def delete_all(self, *, enterprise_id: Optional[str], team_id: Optional[str]) -> None:
        self.delete_bot(enterprise_id=enterprise_id, team_id=team_id)


class SignedStateStore(OAuthStateStore):
    """OAuth `state` values signed with the client secret, each usable once and for
    `ttl_s` seconds; nothing to share between processes but the database's once-keys."""

    def __init__(self, engine: "Engine", secret: str, *, ttl_s: int = STATE_TTL_S,
                 clock: Callable[[], float] = time.time, log: Logger | None = None) -> None:
        self.engine = engine
        self._secret = secret.encode()
        self.ttl_s = ttl_s
        self.clock = clock
        self._logger = log or logging.getLogger("gptstore.slack.oauth")

    @property
    def logger(self) -> Logger:
        return self._logger

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, *args: Any, **kwargs: Any) -> str:
        body = f"{int(self.clock())}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._sign(body)}"

    def consume(self, state: str) -> bool:
        issued, _, rest = (state or "").partition(".")
        nonce, _, signature = rest.rpartition(".")
        body = f"{issued}.{nonce}"
        if not (issued.isdigit() and nonce and hmac.compare_digest(signature, self._sign(body))):
            return False
        if self.clock() - int(issued) > self.ttl_s:
            return False
        return first_time(self.engine, f"slack:oauth-state:{nonce}")


def oauth_settings(engine: "Engine", *, client_id: str, client_secret: str,
                   redirect_uri: str | None = None, authorization_url: str | None = None,
                   log: Logger | None = None) -> OAuthSettings:
    """Bolt's OAuthSettings with the store's installation and state stores."""
    log = log or logging.getLogger("gptstore.slack.oauth")
    settings = OAuthSettings(
        client_id=client_id, client_secret=client_secret, scopes=list(SCOPES),
        redirect_uri=redirect_uri, install_path=INSTALL_PATH, redirect_uri_path=REDIRECT_PATH,
        installation_store=EngineInstallationStore(engine, log=log),
        installation_store_bot_only=True,
        state_store=SignedStateStore(engine, client_secret, log=log),
        **({"authorization_url": authorization_url} if authorization_url else {}),
        logger=log)
    # auth.test once per token, not before every ack; an uninstalled workspace has no token
    # left in the store, so it is refused before the cache is read.
    settings.authorize.cache_enabled = True  # type: ignore[attr-defined]
    return settings


def client_for_team(engine: "Engine", api_url: str) -> Callable[[str], Optional[WebClient]]:
    """team id -> a WebClient with that workspace's bot token (None when not installed);
    job notifications use it to report in the right workspace."""
    def client(team: str) -> Optional[WebClient]:
        found = engine.installations.find(PLATFORM, team_id=team)
        return WebClient(token=found.bot_token, base_url=api_url) if found else None

    return client
