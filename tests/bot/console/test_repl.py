"""Every command of the language, driven through the console adapter, with its failure paths.

The console is the test backend of the command core: a test pushes a line and reads what a
user would see. The engine is real (tmp SQLite, the tiny model); jobs run in the local
backend's child process and the watcher waits on them instead of sleeping.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.console.repl import Console
from bot.core.progress import JobWatcher
from engine.identity import Caller

QA = [(f"What is the opening time of shop number {i}?", f"Shop {i} opens at {i + 7} o'clock.")
      for i in range(12)]


def write_faq(folder: Path, pairs=QA, name: str = "faq.csv") -> Path:
    lines = ["question,answer"] + [f'"{q}","{a}"' for q, a in pairs]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def waiting_watcher(engine) -> JobWatcher:
    """Shows progress once, then blocks until the job ends (no sleeping on the clock)."""

    def wait_for_unfinished_jobs(_seconds: float) -> None:
        for job in engine.jobs.list(Caller.console("admin")):
            if not job.finished:
                engine.jobs.wait(job.id, timeout=600)

    return JobWatcher(engine, poll_s=0.0, min_interval_s=0.0, sleep=wait_for_unfinished_jobs)


class Session:
    """A console with injected streams; `say(line)` returns what it printed."""

    def __init__(self, engine, folder: Path, caller: Caller | None = None, *,
                 follow_jobs: bool = True) -> None:
        self.out = io.StringIO()
        self.console = Console(engine, input=io.StringIO(), output=self.out, tty=False,
                               watcher=waiting_watcher(engine), cwd=folder,
                               follow_jobs=follow_jobs,
                               caller=caller or Caller.console("admin"))

    def say(self, line: str) -> str:
        start = len(self.out.getvalue())
        self.console.handle_line(line)
        return self.out.getvalue()[start:]


@pytest.fixture
def session(engine, tmp_path: Path) -> Session:
    return Session(engine, tmp_path)


def test_the_whole_loop_through_the_console(engine, session: Session, tmp_path: Path) -> None:
    write_faq(tmp_path)
    shown = session.say("search")
    assert "tiny" in shown and "smollm2-135m-instruct" in shown

    shown = session.say("/store tune acme faq.csv base=tiny epochs=1 batch_size=4")
    assert "Job 1" in shown and "tuning acme" in shown
    assert "Job 1 finished: acme v1" in shown, shown  # the final reply, after progress lines
    assert "Token F1" in shown and "->" in shown and "Loss plot" in shown
    assert "deploy acme" in shown and "publish acme workspace" in shown

    assert "succeeded" in session.say("jobs")
    assert "acme v1" in session.say("job 1")
    assert "v1 (live)" in session.say("versions acme")
    assert "acme" in session.say("info acme") and "tiny" in session.say("info acme")

    assert "now answers messages in console" in session.say("deploy acme")
    answer = session.console.handle_line("What is the opening time of shop number 3?")
    assert answer is not None and answer.kind == "chat" and answer.message_id is not None
    assert session.console.history[-1]["content"] == answer.text

    assert "correction is stored" in session.say("correct Shop 3 opens at 10 o'clock.")
    assert session.console.handle_line("chat acme hello there").kind == "chat"
    assert "acme is now workspace" in session.say("publish acme workspace")
    assert "back on v1" in session.say("rollback acme 1")
    assert "retrains weekly" in session.say("retrain acme weekly")
    assert "no longer answers here" in session.say("undeploy")
    assert "Deleted" in session.say("forget-me")


def test_help_lists_every_command_and_explains_one(session: Session) -> None:
    shown = session.say("help")
    for name in ("search", "info", "tune", "jobs", "job", "cancel", "chat", "deploy",
                 "undeploy", "publish", "versions", "rollback", "retrain", "correct",
                 "forget-me", "help"):
        assert name in shown
    shown = session.say("help tune")
    assert "Fine-tune a model with LoRA" in shown and "epochs=" in shown and "adamw|sgd" in shown


@pytest.mark.parametrize("line, expected", [
    ("/serch support", "Did you mean 'search'?"),
    ("info tiyn", "tiny"),
    ("tune acme faq.csv epoch=1", "Did you mean 'epochs'?"),
    ("tune acme faq.csv optimizer=adam", "optimizer must be adamw or sgd"),
    ("tune acme faq.csv epochs=many", "epochs must be a whole number"),
    ("tune acme missing.csv", "There is no file at missing.csv"),
    ("tune acme", "needs a Q&A file"),
    ("job 99", "no job 99"),
    ("job first", "id must be a whole number"),
    ("cancel 99", "no job 99"),
    ("publish tiny everyone", "visibility must be private, workspace or public"),
    ("rollback tiny 7", "7"),
    ("retrain tiny sometimes", "tiny"),
    ("info", "`info` needs MODEL"),
    ('info "tiny', "never closed"),
    ("correct better answer", "no answer here to correct"),
])
def test_each_mistake_gets_one_clear_error(session: Session, tmp_path: Path, line: str,
                                           expected: str) -> None:
    write_faq(tmp_path)
    shown = session.say(line)
    assert expected in shown, shown
    assert "Traceback" not in shown and "Something went wrong" not in shown


def test_a_bad_qa_file_lists_its_problems_and_starts_no_job(engine, session: Session,
                                                            tmp_path: Path) -> None:
    write_faq(tmp_path, QA[:3], "small.csv")
    shown = session.say("tune acme small.csv base=tiny")
    assert "10" in shown  # says how many examples are needed
    assert engine.jobs.list(Caller.console("admin")) == []


def test_a_non_admin_is_told_who_may_deploy_and_publish(engine, tmp_path: Path) -> None:
    guest = Caller(platform="console", workspace="local", user="console:guest",
                   channel="console", is_admin=False, display_name="guest")
    user = Session(engine, tmp_path, caller=guest)
    assert "admin" in user.say("deploy tiny").lower()
    assert "admin" in user.say("publish tiny workspace").lower()
    assert "smollm2" in user.say("search")  # anyone may search


def test_a_full_queue_answers_busy(engine, tmp_path: Path) -> None:
    from engine.jobs.backends import NullBackend

    write_faq(tmp_path)
    engine.jobs.backend = NullBackend()  # jobs stay queued: the workspace's limit fills up
    session = Session(engine, tmp_path, follow_jobs=False)
    limit = engine.settings.max_jobs_per_workspace
    for n in range(limit):
        assert f"Job {n + 1}" in session.say(f"tune m{n} faq.csv base=tiny epochs=1")
    reply = session.console.handle_line("tune another faq.csv base=tiny epochs=1")
    assert reply.kind == "busy", reply.text
    assert "cancelled" in session.say("cancel 1")
    assert "already finished" in session.say("cancel 1")


def test_console_loop_reads_lines_until_exit(engine, tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(engine, input=io.StringIO("search tiny\nexit\nsearch never\n"),
                      output=out, tty=True, caller=Caller.console("admin"))
    assert console.run() == 0
    shown = out.getvalue()
    assert shown.count("store> ") == 2 and "tiny" in shown and "never" not in shown


def test_a_question_with_nothing_deployed_is_answered_by_the_store_default_and_says_so(
        session: Session) -> None:
    shown = session.say("Where is my order?")
    assert "Answered by tiny (the store's default model, as nothing is deployed here" in shown
    assert "`/store deploy MODEL` picks one" in shown
