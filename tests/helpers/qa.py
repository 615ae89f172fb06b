"""Helpers for the Q&A file and dataset tests: files to upload and a bare store on SQLite."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlmodel import select

from engine.datasets.service import Datasets
from engine.settings import Settings
from storage.db import Database
from storage.tables import DatasetRecord, ExampleRecord

DATA = Path(__file__).resolve().parents[1] / "data"
MB = 1024 * 1024


def fixed_clock() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def qa_csv(n: int, header: str = "question,answer", start: int = 0) -> bytes:
    """A CSV of n distinct, plausible Q&A pairs."""
    lines = [header] + [f"How do I do task {i}?,Open menu {i} and press Go {i}."
                        for i in range(start, start + n)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def open_datasets(settings: Settings, tmp_path: Path) -> Datasets:
    db = Database(f"sqlite:///{tmp_path}/s.db")
    db.migrate()
    return Datasets(db, settings, fixed_clock)


def stored(datasets: Datasets) -> tuple[int, int, list[str]]:
    """(datasets, examples, files in the uploads folder) now in the store."""
    with datasets.db.session() as session:
        n_datasets = len(session.exec(select(DatasetRecord)).all())
        n_examples = len(session.exec(select(ExampleRecord)).all())
    folder = datasets.settings.uploads_dir
    files = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    return n_datasets, n_examples, files
