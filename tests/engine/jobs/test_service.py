"""engine/jobs/service.py: submitting a fine-tune, seeing it, cancelling it, and one real run."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from engine.errors import (
    Conflict,
    DatasetInvalid,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from engine.identity import Caller
from engine.jobs.backends import LocalBackend, NullBackend
from engine.settings import Settings
from engine.views import Origin
from storage.tables import DatasetRecord, JobRecord, ModelRecord

ORIGIN = Origin(platform="slack", channel="C1", thread="1.2")
ALICE = Caller(platform="slack", workspace="slack:T1", user="slack:T1:UA", display_name="alice")
BOB = Caller(platform="slack", workspace="slack:T1", user="slack:T1:UB", display_name="bob")
ADMIN_T1 = Caller(platform="slack", workspace="slack:T1", user="slack:T1:UZ", is_admin=True)
MALLORY = Caller(platform="discord", workspace="discord:G9", user="discord:G9:UM")


def faq(n: int = 12) -> bytes:
    rows = ["question,answer"] + [f"How do I reset gadget {i}?,Hold button {i} for five seconds."
                                  for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


def open_store(settings: Settings, tiny_base_dir: Path, backend):
    from engine.app import Engine

    engine = Engine.open(settings, job_backend=backend)
    admin = Caller.console("admin")
    engine.catalog.add_base(admin, "tiny", str(tiny_base_dir), description="tiny", tags="test")
    engine.catalog.publish(admin, "tiny", "public")
    return engine


@pytest.fixture
def store(settings: Settings, tiny_base_dir: Path):
    engine = open_store(settings, tiny_base_dir, NullBackend())  # jobs stay queued
    yield engine
    engine.close()


def counts(engine) -> tuple[int, int, int]:
    with engine.db.session() as s:
        return (len(s.exec(select(JobRecord)).all()), len(s.exec(select(DatasetRecord)).all()),
                len(s.exec(select(ModelRecord).where(ModelRecord.is_base == False)).all()))  # noqa: E712


def test_a_good_file_queues_a_job_with_its_events(store) -> None:
    job = store.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", faq(), {"epochs": "2"}, ORIGIN)
    assert (job.state, job.model_name, job.base_name) == ("queued", "gadget-help", "tiny")
    assert job.origin == ORIGIN and job.params == {"epochs": "2"}
    shown = store.jobs.get(ALICE, job.id)
    assert [e.data.get("state") for e in shown.events] == ["validating", "queued"]
    assert shown.events[-1].data["examples"] == 12
    assert store.jobs.events_since(job.id, shown.events[0].id) == shown.events[1:]
    assert counts(store) == (1, 1, 1)


def test_a_bad_file_is_refused_and_leaves_nothing_behind(store) -> None:
    with pytest.raises(DatasetInvalid) as refused:
        store.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", faq(3), {}, ORIGIN)
    assert "10" in str(refused.value)
    with pytest.raises(DatasetInvalid):
        store.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", b"\x00\xff junk", {}, ORIGIN)
    assert counts(store) == (0, 0, 0)


def test_a_bad_option_is_refused_before_the_file_is_read(store) -> None:
    with pytest.raises(InvalidInput, match="epochs"):
        store.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", faq(), {"epochs": "lots"}, ORIGIN)
    assert counts(store) == (0, 0, 0)


def test_a_name_owned_by_someone_else_is_a_conflict(store) -> None:
    store.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", faq(), {}, ORIGIN)
    with pytest.raises(Conflict, match="taken"):
        store.jobs.submit_tune(BOB, "gadget-help", "faq.csv", faq(), {}, ORIGIN)
    assert counts(store) == (1, 1, 1)


def test_an_unknown_base_is_not_found(store) -> None:
    with pytest.raises(NotFound, match="No model named 'nope'"):
        store.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", faq(), {}, ORIGIN, base="nope")
    assert counts(store) == (0, 0, 0)


def test_a_repeated_submission_is_one_job(store) -> None:
    first = store.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", faq(), {}, ORIGIN,
                                   idempotency_key="slack:Ev42")
    again = store.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", faq(), {}, ORIGIN,
                                   idempotency_key="slack:Ev42")
    assert again.id == first.id
    assert counts(store) == (1, 1, 1)


def test_jobs_are_seen_in_their_workspace_only(store) -> None:
    job = store.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", faq(), {}, ORIGIN)
    assert [j.id for j in store.jobs.list(BOB)] == [job.id]
    assert store.jobs.list(MALLORY) == []
    with pytest.raises(NotFound, match=f"no job {job.id} that you can see"):
        store.jobs.get(MALLORY, job.id)
    with pytest.raises(NotFound):
        store.jobs.cancel(MALLORY, job.id)
    with pytest.raises(NotFound, match="no job 999"):
        store.jobs.get(ALICE, 999)


def test_cancel_needs_the_owner_or_an_admin_and_a_finished_job_stays_finished(store) -> None:
    job = store.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", faq(), {}, ORIGIN)
    with pytest.raises(PermissionDenied):
        store.jobs.cancel(BOB, job.id)
    cancelled = store.jobs.cancel(ADMIN_T1, job.id)
    assert cancelled.state == "cancelled" and cancelled.finished
    with pytest.raises(Conflict, match=f"Job {job.id} already finished."):
        store.jobs.cancel(ALICE, job.id)


def test_a_tune_trains_in_a_child_process_and_goes_live(settings, tiny_base_dir) -> None:
    """End to end: the local backend runs the real tune body (tiny model) in a child process."""
    settings = settings.with_(max_new_tokens=8)
    backend = LocalBackend(settings)
    engine = open_store(settings, tiny_base_dir, backend)
    try:
        job = engine.jobs.submit_tune(ALICE, "gadget-help", "faq.csv", faq(),
                                      {"epochs": "1", "batch_size": "4"}, ORIGIN, base="tiny")
        assert job.id in backend.children  # off the caller's thread, in its own process
        done = engine.jobs.wait(job.id, timeout=600, poll=0.2)
        assert done.state == "succeeded", done.error
        assert done.result and done.progress == 1.0
        card = engine.catalog.card(ALICE, "gadget-help")
        assert card.live_version == 1
        kinds = {e.kind for e in engine.jobs.get(ALICE, job.id).events}
        assert {"state", "progress"} <= kinds
    finally:
        backend.kill_children()
        engine.close()
