"""Fixtures of the Discord tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.identity import Caller
from tests.bot.discord.harness import ScriptedRunner


@pytest.fixture
def scripted(settings, tiny_base_dir: Path, admin: Caller):
    """An Engine whose chat answers come from a ScriptedRunner, with "tiny" public."""
    from engine.app import Engine

    runner = ScriptedRunner()
    eng = Engine.open(settings, runner=runner)
    eng.catalog.add_base(admin, "tiny", str(tiny_base_dir), description="A tiny test model")
    eng.catalog.publish(admin, "tiny", "public")
    eng.test_runner = runner  # type: ignore[attr-defined]
    yield eng
    eng.close()


@pytest.fixture
def held(settings, tiny_base_dir: Path, admin: Caller):
    """An Engine whose jobs wait until the test ends them (no worker runs them)."""
    from engine.app import Engine
    from engine.jobs.backends import NullBackend

    eng = Engine.open(settings, job_backend=NullBackend())
    eng.catalog.add_base(admin, "tiny", str(tiny_base_dir), description="A tiny test model")
    eng.catalog.publish(admin, "tiny", "public")
    yield eng
    eng.close()
