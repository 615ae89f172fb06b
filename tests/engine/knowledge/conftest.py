"""Fixtures for the knowledge tests: one sentence embedder per session (loading it takes a
second or two), and a grounded store per test (tests/helpers/knowledge.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.settings import Settings
from tests.helpers.knowledge import Grounded, session_embedder


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return session_embedder(tmp_path_factory)


@pytest.fixture
def grounded(settings: Settings, tiny_base_dir: Path, embedder: Any):
    store = Grounded(settings, tiny_base_dir, embedder)
    yield store
    store.engine.close()


@pytest.fixture
def keyword_only(settings: Settings, tiny_base_dir: Path):
    """The same store where the embedding package is missing: keyword ranking."""
    store = Grounded(settings, tiny_base_dir, None)  # the factory finds no embedder
    yield store
    store.engine.close()
