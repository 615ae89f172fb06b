"""Who is asking, and from where: the caller every engine call receives."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """A user on a platform, in a workspace and channel.

    `user` is globally unique ("slack:T1:U1", "discord:123", "console:alice"); `workspace`
    is the tenant ("slack:T1", "discord:G1", "local"). `is_admin` is mapped by each adapter
    from its platform's roles (Slack workspace admins, Discord Manage Server).
    """

    platform: str
    workspace: str
    user: str
    channel: str = ""
    thread: str = ""
    is_admin: bool = False
    display_name: str = ""

    @classmethod
    def for_slack(cls, team: str, user: str, *, channel: str = "", thread: str = "",
                  is_admin: bool = False, display_name: str = "") -> "Caller":
        """A Slack user of workspace (team) `team`: workspace "slack:T1", user "slack:T1:U1"."""
        return cls(platform="slack", workspace=f"slack:{team}", user=f"slack:{team}:{user}",
                   channel=channel, thread=thread, is_admin=is_admin, display_name=display_name)

    @classmethod
    def for_discord(cls, guild_id: int | str | None, user_id: int | str, *, channel: str = "",
                    thread: str = "", is_admin: bool = False,
                    display_name: str = "") -> "Caller":
        """A Discord user: in a server "discord:G1", in DMs their own "discord:dm:U1"."""
        workspace = f"discord:{guild_id}" if guild_id else f"discord:dm:{user_id}"
        return cls(platform="discord", workspace=workspace, user=f"discord:{user_id}",
                   channel=channel, thread=thread, is_admin=is_admin, display_name=display_name)

    @classmethod
    def job_owner(cls, owner: str, workspace: str) -> "Caller":
        """The user a job runs for, as the job recorded them (a job acts in no channel)."""
        return cls(platform="job", workspace=workspace, user=owner)

    @classmethod
    def console(cls, name: str = "local") -> "Caller":
        return cls(platform="console", workspace="local", user=f"console:{name}",
                   channel="console", is_admin=True, display_name=name)
