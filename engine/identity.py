"""Who is asking, and from where: the caller every engine call receives."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """A user on a platform, in a workspace and channel.

    `user` is globally unique ("slack:T1:U1", "discord:G1:123", "console:alice"); `workspace`
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
    def console(cls, name: str = "local") -> "Caller":
        return cls(platform="console", workspace="local", user=f"console:{name}",
                   channel="console", is_admin=True, display_name=name)
