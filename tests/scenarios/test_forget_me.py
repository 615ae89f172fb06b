"""`/store forget-me` through the command core, then a look at the database and the uploads
folder: the user's messages, votes, uploads and examples are gone (no copy left in the SQLite
file either), what an unfinished job still reads is kept and said so, what was already
trained is named as what cannot be undone, and the other users' data is untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from bot.core.dispatch import Dispatcher
from storage.tables import DatasetRecord, ExampleRecord, FeedbackRecord, MessageRecord
from tests.helpers.tenants import A_X, A_Y, FAQ, context, open_engine, say


def faq(marker: str) -> bytes:
    return ("question,answer\n" + "".join(
        f"What is door code {i}?,The code is {marker}-{i}.\n" for i in range(12))).encode()


@pytest.fixture
def world(settings, tiny_base_dir):
    engine = open_engine(settings.with_(max_jobs_per_workspace=10, max_jobs_per_user=10),
                         tiny_base_dir)
    yield engine, Dispatcher(engine)
    engine.close()


def all_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob("store.db*") if p.is_file())


def test_forget_me_then_a_look_at_the_database_and_the_uploads(world, settings) -> None:
    engine, dispatcher = world
    # X's first upload trained a version; its job finished (cancelled here, jobs stay queued).
    done = say(dispatcher, A_X, "tune door-bot", file=faq("zebracode4711"))
    assert say(dispatcher, A_X, f"cancel {done.job_id}").kind == "success"
    door = engine.catalog.resolve(A_X, "door-bot")
    with engine.db.session() as s:
        first_upload = s.exec(select(DatasetRecord).where(DatasetRecord.owner == A_X.user)).one()
    engine.catalog.add_version(door.id, path=str(settings.adapters_dir / "door"),
                               dataset_id=first_upload.id, live=True)
    # X's second upload is still queued for training; Y has an upload and a conversation.
    say(dispatcher, A_X, "tune gate-bot", file=faq("queuedcode5512"))
    say(dispatcher, A_Y, "tune other-bot", file=FAQ)
    asked = dispatcher.chat_turn(context(A_X), "kiwi9931 is my private question")
    assert asked.kind == "chat"
    dispatcher.answer_posted(asked.message_id, "1700.1")
    assert dispatcher.feedback(context(A_X), "1700.1", "up").kind == "success"
    assert dispatcher.chat_turn(context(A_Y), "Y asks too").kind == "chat"
    uploads = settings.uploads_dir
    before = sorted(p.name for p in uploads.iterdir())
    assert len(before) == 3 and b"zebracode4711" in all_bytes(settings.home)

    reply = say(dispatcher, A_X, "forget-me")

    assert reply.kind == "success" and reply.ephemeral
    assert reply.text.splitlines() == [
        "Deleted 2 logged message(s) (your questions and the answers you got), 1 vote(s) and "
        "correction(s), and 1 uploaded file(s) (faq.csv) with their 12 example(s) and 1 stored "
        "copies.",
        "Kept for now: faq.csv, which an unfinished job of yours still reads; run forget-me "
        "again once it is done.",
        "Cannot be undone: door-bot v1 were already trained on your data; their weights stay "
        "as they are.",
        reply.text.splitlines()[3],
        "This covered your account slack:TA:UX only; run forget-me on each platform you use."]
    assert reply.text.splitlines()[3].startswith(
        "The store's database was compacted (VACUUM), so no copy stays in the file (")
    with engine.db.session() as s:
        assert s.exec(select(MessageRecord).where(MessageRecord.user == A_X.user)).all() == []
        assert s.exec(select(FeedbackRecord).where(FeedbackRecord.user == A_X.user)).all() == []
        assert [m.content for m in s.exec(select(MessageRecord)
                                          .where(MessageRecord.role == "user"))] == ["Y asks too"]
        left = s.exec(select(DatasetRecord).order_by(DatasetRecord.id)).all()
        assert [(d.owner, d.id == first_upload.id) for d in left] == [
            (A_X.user, False), (A_Y.user, False)]  # the queued job's upload, and Y's
        assert s.exec(select(ExampleRecord).where(
            ExampleRecord.dataset_id == first_upload.id)).all() == []
    after = sorted(p.name for p in uploads.iterdir())
    assert len(after) == 2 and Path(first_upload.path).name not in after
    assert all(Path(d.path).exists() for d in left)
    stored = all_bytes(settings.home)  # VACUUM: no copy of the deleted rows in the file
    assert b"zebracode4711" not in stored and b"kiwi9931" not in stored
    assert b"queuedcode5512" in stored and b"Y asks too" in stored
    assert engine.catalog.card(A_X, "door-bot").live_version == 1  # trained weights stay

    again = say(dispatcher, A_X, "forget-me")
    assert again.text.startswith("Deleted 0 logged message(s)") and "no uploaded files" in again.text
