"""Limits that hold across processes: bursts of tunes and chat turns from two real processes
(each with four threads started together) against one store, on PostgreSQL and on SQLite.
A limit that counted and then inserted, or counted in one process's memory, lets more
through than it allows."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from engine.errors import Busy
from engine.identity import Caller
from engine.settings import Settings
from storage.tables import DatasetRecord, JobRecord, ModelRecord
from tests.helpers.store import hf_folder
from tests.helpers.tenants import FAQ

PROCESSES, THREADS = 2, 4
NOON = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def fixed_clock() -> datetime:  # the same instant in every process: no bucket refills
    return NOON


def open_engine(settings: Settings, *, migrate: bool) -> Any:
    from engine.app import Engine
    from engine.jobs.backends import NullBackend

    return Engine.open(settings, clock=fixed_clock, job_backend=NullBackend(), migrate=migrate)


def burst(settings: Settings, what: str, process: int, start: Any, results: Any) -> None:
    """One process of the burst: THREADS threads that each try their share at once."""
    engine = open_engine(settings, migrate=False)
    ready, go = threading.Barrier(THREADS), threading.Event()
    outcomes: list[str] = []

    def one(thread: int) -> None:
        ready.wait()
        if thread == 0:
            start.wait()  # every thread of both processes is ready
            go.set()
        go.wait()
        for _ in range(10 if what == "chat" else 1):
            try:
                if what == "tunes":  # different users of one workspace
                    user = Caller(platform="slack", workspace="slack:TW",
                                  user=f"slack:TW:U{process}{thread}")
                    engine.jobs.submit_tune(user, f"bot-{process}-{thread}", "faq.csv", FAQ, {})
                elif what == "one-user":  # one user, tune rate per hour
                    user = Caller(platform="slack", workspace="slack:TW", user="slack:TW:UONE")
                    engine.jobs.submit_tune(user, f"bot-{process}-{thread}", "faq.csv", FAQ, {})
                else:
                    engine.chat.limits.check_chat(
                        Caller(platform="slack", workspace="slack:TW", user="slack:TW:UCHAT"))
                outcomes.append("ok")
            except Busy as refused:
                outcomes.append(f"busy: {refused}")
            except Exception as exc:  # reported, so the parent's assertion shows it
                outcomes.append(f"error: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.close()
    results.put(outcomes)


@pytest.fixture(params=["postgresql", "sqlite"])
def store_settings(request, tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    settings = Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"}).with_(
        default_base="tiny")
    if request.param == "postgresql":
        settings = settings.with_(database_url=request.getfixturevalue("pg_url"))
    engine = open_engine(settings, migrate=True)
    admin = Caller.console("admin")
    engine.catalog.add_base(admin, "tiny", str(hf_folder(tmp_path / "tiny")))
    engine.catalog.publish(admin, "tiny", "public")
    engine.close()
    return settings


def run_burst(settings: Settings, what: str) -> list[str]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    children = [context.Process(target=burst, args=(settings, what, p, start, results))
                for p in range(PROCESSES)]
    for child in children:
        child.start()
    outcomes = [item for _ in children for item in results.get(timeout=300)]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    return outcomes


def rows(settings: Settings, table: Any) -> list[Any]:
    engine = open_engine(settings, migrate=False)
    try:
        with engine.db.session() as s:
            return list(s.exec(select(table)).all())
    finally:
        engine.close()


def test_a_burst_of_tunes_from_two_processes_meets_the_workspace_job_limit(
        store_settings: Settings) -> None:
    settings = store_settings.with_(max_jobs_per_workspace=2)
    outcomes = run_burst(settings, "tunes")
    assert not [o for o in outcomes if o.startswith("error")], outcomes
    assert outcomes.count("ok") == 2, outcomes  # the limit, not one more
    refusals = [o for o in outcomes if o.startswith("busy")]
    assert len(refusals) == PROCESSES * THREADS - 2
    assert all("already has 2 fine-tunes queued or running" in o for o in refusals)
    assert len(rows(settings, JobRecord)) == 2
    assert len(rows(settings, DatasetRecord)) == 2  # refused requests leave nothing behind
    tuned = [m for m in rows(settings, ModelRecord) if not m.is_base]
    assert len(tuned) == 2


def test_a_burst_of_one_users_tunes_meets_their_hourly_rate(store_settings: Settings) -> None:
    settings = store_settings.with_(tune_rate_per_hour=3, max_jobs_per_workspace=100,
                                    max_jobs_per_user=100)
    outcomes = run_burst(settings, "one-user")
    assert outcomes.count("ok") == 3, outcomes
    assert all("started 3 fine-tunes in the last hour" in o for o in outcomes if o != "ok")
    assert len(rows(settings, JobRecord)) == 3


def test_a_burst_of_chat_turns_from_two_processes_meets_the_chat_rate(
        store_settings: Settings) -> None:
    settings = store_settings.with_(chat_rate_per_minute=30)
    outcomes = run_burst(settings, "chat")
    assert outcomes.count("ok") == 30, outcomes  # one bucket for the user, in every process
    assert all("30 messages in the last minute" in o for o in outcomes if o != "ok")
