"""Two Slack workspaces on one real Engine, for the isolation, limits, secrets and hostile-text tests.

Workspace A ("slack:TA") and workspace B ("slack:TB") share one store. Both have a channel
called "C1", so anything keyed by channel alone would leak across them. Jobs stay queued
(NullBackend) so a test sees exactly what a command left behind; the clock is injected.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.core.command import Attachment
from bot.core.dispatch import Context, Dispatcher
from bot.core.reply import Reply
from engine.identity import Caller
from engine.settings import Settings
from engine.views import Origin
from tests.helpers.store import FakeClock

A_X = Caller(platform="slack", workspace="slack:TA", user="slack:TA:UX", channel="C1")
A_Y = Caller(platform="slack", workspace="slack:TA", user="slack:TA:UY", channel="C1")
A_ADMIN = Caller(platform="slack", workspace="slack:TA", user="slack:TA:UBOSS", channel="C1",
                 is_admin=True)
B_USER = Caller(platform="slack", workspace="slack:TB", user="slack:TB:UZ", channel="C1")
B_ADMIN = Caller(platform="slack", workspace="slack:TB", user="slack:TB:UBOSS", channel="C1",
                 is_admin=True)

FAQ = ("question,answer\n" + "\n".join(
    f"What is fact number {i}?,Fact number {i} is that the shop opens at {i}." for i in range(12))
    + "\n").encode()


def open_engine(settings: Settings, tiny_base_dir: Path, clock: FakeClock | None = None,
                runner: Any = None) -> Any:
    """A real Engine (tmp SQLite, tiny model public as "tiny") whose jobs stay queued."""
    from engine.app import Engine
    from engine.jobs.backends import NullBackend

    settings = settings.with_(max_new_tokens=4)
    engine = Engine.open(settings, clock=clock or FakeClock(), job_backend=NullBackend(),
                         runner=runner)
    admin = Caller.console("admin")
    engine.catalog.add_base(admin, "tiny", str(tiny_base_dir), description="A tiny test model",
                            tags="test")
    engine.catalog.publish(admin, "tiny", "public")
    return engine


def context(caller: Caller, *, file: bytes | None = None, filename: str = "faq.csv",
            reply_ref: str = "", message: str = "") -> Context:
    attachments = (Attachment(filename=filename, data=file),) if file is not None else ()
    origin = Origin(platform=caller.platform, channel=caller.channel, message=message)
    return Context(caller=caller, reply_ref=reply_ref, attachments=attachments, origin=origin)


def say(dispatcher: Dispatcher, caller: Caller, text: str, **kw: Any) -> Reply:
    """One command through the core, as any adapter would send it."""
    return dispatcher.handle_text(text, context(caller, **kw))


def shown(reply: Reply) -> str:
    """Everything a user reads in a reply."""
    parts = [reply.title, reply.text] + [f"{k}: {v}" for k, v in reply.fields]
    parts += [f"{b.label} {b.command}" for b in reply.buttons]
    return "\n".join(p for p in parts if p)


def in_channel(caller: Caller, channel: str) -> Caller:
    return replace(caller, channel=channel)
