"""The limits as users meet them through the command core: chat and tune rates per user,
unfinished jobs per workspace, the upload size. Each refusal is a "busy" (or error) reply
that says when to try again or what the limit is; a refused request leaves nothing behind.
The clock is injected, nothing sleeps."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.core.dispatch import Dispatcher
from storage.tables import DatasetRecord, JobRecord
from tests.helpers.tenants import (
    A_ADMIN,
    A_X,
    A_Y,
    B_USER,
    FAQ,
    FakeClock,
    context,
    open_engine,
    say,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def rig(settings, tiny_base_dir, clock, **limits):
    engine = open_engine(settings.with_(**limits), tiny_base_dir, clock)
    return engine, Dispatcher(engine)


def rows(engine, table) -> int:
    with engine.db.session() as s:
        return len(s.exec(select(table)).all())


def test_chat_rate_per_user_answers_busy_with_when_to_try_again(settings, tiny_base_dir,
                                                                 clock) -> None:
    engine, dispatcher = rig(settings, tiny_base_dir, clock, chat_rate_per_minute=3)
    try:
        assert say(dispatcher, A_ADMIN, "deploy tiny").kind == "success"
        assert say(dispatcher, A_X, "chat tiny one").kind == "chat"
        assert dispatcher.chat_turn(context(A_X), "two").kind == "chat"
        assert say(dispatcher, A_X, "chat tiny three").kind == "chat"
        for refused in (say(dispatcher, A_X, "chat tiny four"),
                        dispatcher.chat_turn(context(A_X), "four")):
            assert refused.kind == "busy" and refused.ephemeral
            assert "3 messages in the last minute" in refused.text
            assert "try again in 20 seconds" in refused.text
        assert len(engine.chat.history_for(A_X)) == 6  # the refused turns were not logged
        assert dispatcher.chat_turn(context(A_Y), "me too").kind == "chat"  # per user
        assert dispatcher.chat_turn(context(B_USER), "hi", model="tiny").kind == "chat"
        clock.advance(seconds=20)
        assert dispatcher.chat_turn(context(A_X), "five").kind == "chat"
        assert dispatcher.chat_turn(context(A_X), "six").kind == "busy"
    finally:
        engine.close()


def test_tune_rate_per_user_answers_busy_and_stores_nothing(settings, tiny_base_dir,
                                                            clock) -> None:
    engine, dispatcher = rig(settings, tiny_base_dir, clock, tune_rate_per_hour=2,
                             max_jobs_per_workspace=10, max_jobs_per_user=10)
    try:
        for name in ("first-bot", "second-bot"):
            assert say(dispatcher, A_X, f"tune {name}", file=FAQ).job_id
            clock.advance(minutes=10)
        jobs, datasets = rows(engine, JobRecord), rows(engine, DatasetRecord)
        refused = say(dispatcher, A_X, "tune third-bot", file=FAQ)
        assert refused.kind == "busy" and refused.job_id is None
        assert "started 2 fine-tunes in the last hour" in refused.text
        assert "try again in 40 minutes" in refused.text
        assert (rows(engine, JobRecord), rows(engine, DatasetRecord)) == (jobs, datasets)
        assert say(dispatcher, A_X, "info third-bot").kind == "error"  # no entry either
        assert say(dispatcher, A_Y, "tune yours-bot", file=FAQ).job_id  # per user
        clock.advance(minutes=41)
        assert say(dispatcher, A_X, "tune third-bot", file=FAQ).job_id
    finally:
        engine.close()


def test_retrain_now_counts_as_a_fine_tune_of_the_user(settings, tiny_base_dir, clock) -> None:
    engine, dispatcher = rig(settings, tiny_base_dir, clock, tune_rate_per_hour=1,
                             max_jobs_per_workspace=10, max_jobs_per_user=10,
                             retrain_min_examples=0)
    try:
        assert say(dispatcher, A_X, "tune helpdesk", file=FAQ).job_id
        model = engine.catalog.resolve(A_X, "helpdesk")
        engine.catalog.add_version(model.id, path=str(settings.adapters_dir / "v1"), live=True)
        refused = say(dispatcher, A_X, "retrain helpdesk now")
        assert refused.kind == "busy" and "try again in" in refused.text
        assert rows(engine, JobRecord) == 1
        clock.advance(minutes=61)
        assert say(dispatcher, A_X, "retrain helpdesk now").job_id
    finally:
        engine.close()


def test_a_workspace_has_a_limit_on_unfinished_jobs(settings, tiny_base_dir, clock) -> None:
    engine, dispatcher = rig(settings, tiny_base_dir, clock, max_jobs_per_workspace=2)
    try:
        first = say(dispatcher, A_X, "tune first-bot", file=FAQ).job_id
        assert first and say(dispatcher, A_Y, "tune second-bot", file=FAQ).job_id
        jobs, datasets = rows(engine, JobRecord), rows(engine, DatasetRecord)
        for caller in (A_X, A_ADMIN):
            refused = say(dispatcher, caller, "tune third-bot", file=FAQ)
            assert refused.kind == "busy"
            assert "already has 2 fine-tunes queued or running" in refused.text
            assert "try again when one finishes" in refused.text
        assert (rows(engine, JobRecord), rows(engine, DatasetRecord)) == (jobs, datasets)
        assert say(dispatcher, B_USER, "tune other-bot", file=FAQ).job_id  # other tenant
        assert say(dispatcher, A_X, f"cancel {first}").kind == "success"
        assert say(dispatcher, A_ADMIN, "tune third-bot", file=FAQ).job_id
    finally:
        engine.close()


def test_an_upload_over_the_size_limit_names_the_limit(settings, tiny_base_dir, clock) -> None:
    engine, dispatcher = rig(settings, tiny_base_dir, clock, max_upload_bytes=2000)
    try:
        big = FAQ + b"".join(f"Filler question {i}?,Filler answer {i}.\n".encode()
                             for i in range(100))
        assert len(big) > 2000
        refused = say(dispatcher, A_X, "tune big-bot", file=big)
        assert refused.kind == "error" and refused.job_id is None
        assert "over the upload limit of 2,000 bytes" in refused.text
        assert "GPTSTORE_MAX_UPLOAD_MB" in refused.text
        assert (rows(engine, JobRecord), rows(engine, DatasetRecord)) == (0, 0)
        assert say(dispatcher, A_X, "info big-bot").kind == "error"
        assert say(dispatcher, A_X, "tune big-bot", file=FAQ[:1900]).job_id  # under it: fine
    finally:
        engine.close()
