"""A catalog and chat service on a real database, without the rest of the Engine.

Used by the catalog, chat and PostgreSQL tests: a controllable clock, a deterministic runner
standing in for engine.serving.runner.ChatRunner, and callers in two workspaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

from engine.catalog.service import Catalog
from engine.chat import ChatService
from engine.identity import Caller
from engine.settings import Settings
from engine.views import Target
from storage.db import Database

ALICE = Caller(platform="slack", workspace="slack:T1", user="slack:T1:alice", channel="C1")
BOB = Caller(platform="slack", workspace="slack:T1", user="slack:T1:bob", channel="C1")
ADMIN_A = Caller(platform="slack", workspace="slack:T1", user="slack:T1:boss", channel="C1",
                 is_admin=True)
CAROL = Caller(platform="discord", workspace="discord:G2", user="discord:G2:carol", channel="42")
ADMIN_B = Caller(platform="discord", workspace="discord:G2", user="discord:G2:mod", channel="42",
                 is_admin=True)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Generated:
    text: str
    tokens: int
    latency_ms: int


@dataclass
class EchoRunner:
    """Answers "echo: <last user message>", streaming it word by word; remembers each call."""

    calls: list[tuple[Target, list[dict]]] = field(default_factory=list)
    copied: list[tuple[str, ...]] = field(default_factory=list)  # each call's copy_from

    def answer(self, target: Target, messages: list[dict], *,
               on_token: Optional[Callable[[str], object]] = None,
               copy_from: Sequence[str] = ()) -> Generated:
        self.calls.append((target, [dict(m) for m in messages]))
        self.copied.append(tuple(copy_from))
        text = "echo: " + messages[-1]["content"]
        if on_token is not None:
            for word in text.split(" "):
                on_token(word + " ")
        return Generated(text=text, tokens=len(text.split()), latency_ms=7)


@dataclass
class Store:
    db: Database
    catalog: Catalog
    chat: ChatService
    runner: EchoRunner
    clock: FakeClock
    settings: Settings

    def tuned(self, caller: Caller, name: str, description: str = "", tags: str = "",
              visibility: str = "private") -> int:
        """A tuned model of `caller` with one live version; returns its id."""
        model = self.catalog.create_or_get_tuned(caller, name, None, description, tags=tags)
        self.catalog.add_version(model.id, path=f"/adapters/{name}/v1", live=True)
        if visibility != "private":
            admin = ADMIN_A if caller.workspace == ADMIN_A.workspace else ADMIN_B
            self.catalog.publish(admin, name, visibility)
        return model.id


def open_store(home: Path, url: Optional[str] = None) -> Store:
    settings = Settings.from_env({"GPTSTORE_HOME": str(home)})
    if url:
        settings = settings.with_(database_url=url)
    home.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url)
    db.migrate()
    clock = FakeClock()
    catalog = Catalog(db, settings, clock)
    catalog.ensure_bundled_base()
    runner = EchoRunner()
    chat = ChatService(db, settings, catalog, runner, clock)
    return Store(db=db, catalog=catalog, chat=chat, runner=runner, clock=clock, settings=settings)


def hf_folder(root: Path, skip: tuple[str, ...] = ()) -> Path:
    """A folder in Hugging Face layout (file contents do not matter to registration)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if name not in skip:
            (root / name).write_text("{}")
    return root
