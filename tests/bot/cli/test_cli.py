"""`gptstore` as a user runs it: exit codes, one JSON document, one clear sentence on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli.main import main

QA = [(f"How many legs does animal number {i} have?", f"Animal {i} has {i % 5 + 2} legs.")
      for i in range(12)]


def faq(folder: Path, pairs=QA) -> Path:
    path = folder / "faq.csv"
    path.write_text("question,answer\n" + "".join(f'"{q}","{a}"\n' for q, a in pairs),
                    encoding="utf-8")
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_sentence(err: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err


def test_search_and_info_show_the_bundled_base(home: Path, capsys) -> None:
    code, out, _ = run(capsys, "search", "--json")
    assert code == 0
    names = [card["name"] for card in json.loads(out)]
    assert "smollm2-135m-instruct" in names

    code, out, _ = run(capsys, "info", "smollm2-135m-instruct", "--json")
    assert code == 0 and json.loads(out)["is_base"] is True

    code, out, _ = run(capsys, "info", "smollm2-135m-instruct")
    assert code == 0 and "smollm2-135m-instruct" in out and "Visibility" in out


def test_an_unknown_model_is_one_sentence_with_a_suggestion(home: Path, capsys) -> None:
    code, out, err = run(capsys, "info", "smollm2-135m-instrct")
    assert code == 1 and out == ""
    assert_one_sentence(err)
    assert "smollm2-135m-instruct" in err


def test_usage_errors_exit_2(home: Path, capsys) -> None:
    assert run(capsys, "tune", "faq.csv")[0] == 2  # --name missing
    assert run(capsys, "nonsense")[0] == 2
    assert run(capsys, "tune", "f.csv", "--name", "x", "--optimizer", "adam")[0] == 2


def test_a_bad_database_url_is_one_sentence(home: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "nosuchdb://x")
    code, _, err = run(capsys, "search")
    assert code == 1
    assert_one_sentence(err)
    assert "DATABASE_URL" in err


@pytest.mark.parametrize("name, value", [("GPTSTORE_SPECULATION", "fast"),
                                         ("GPTSTORE_MAX_BATCH", "lots"),
                                         ("GPTSTORE_MAX_UPLOAD_MB", "inf"),
                                         ("GPTSTORE_REQUEST_TIMEOUT", "nan")])
def test_a_bad_setting_is_one_sentence_naming_it(home: Path, capsys, monkeypatch,
                                                 name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    code, _, err = run(capsys, "search")
    assert code == 1
    assert_one_sentence(err)
    assert name in err and value in err


def test_a_corrupted_store_or_unreachable_server_is_one_sentence(home: Path, capsys,
                                                                 monkeypatch) -> None:
    home.mkdir(parents=True)
    (home / "store.db").write_bytes(b"this is not a database " * 40)
    code, _, err = run(capsys, "search")
    assert code == 1 and "not a database" in err
    assert_one_sentence(err)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody:secret-pw@127.0.0.1:1/x")
    code, _, err = run(capsys, "search")
    assert code == 1 and "Connection refused" in err
    assert "secret-pw" not in err  # the password never reaches the message
    assert_one_sentence(err)


def test_an_unusable_home_is_one_sentence(tmp_path: Path, capsys, monkeypatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("GPTSTORE_HOME", str(blocker))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code, _, err = run(capsys, "search")
    assert code == 1
    assert_one_sentence(err)
    assert "GPTSTORE_HOME" in err


def test_a_bug_is_logged_with_a_traceback_and_shown_with_debug(home: Path, capsys,
                                                                 monkeypatch) -> None:
    monkeypatch.setenv("GPTSTORE_DEVICE", "cpu")
    from bot.cli import commands as cli_commands

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setitem(cli_commands.COMMANDS, "jobs", broken)
    code, _, err = run(capsys, "jobs")
    assert code == 1 and "Traceback" not in err and "ref " in err
    log = (home / "logs" / "gptstore.log").read_text()
    assert "RuntimeError: boom" in log
    code, _, err = run(capsys, "jobs", "--debug")
    assert code == 1 and "Traceback" in err


def test_tune_dry_run_shows_the_split_and_trains_nothing(home: Path, tmp_path: Path,
                                                         capsys) -> None:
    path = faq(tmp_path)
    code, out, _ = run(capsys, "tune", str(path), "--name", "zoo", "--dry-run", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["n_examples"] == 12 and sum(report["split_sizes"].values()) == 12
    code, out, _ = run(capsys, "jobs", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run(capsys, "tune", str(path), "--name", "zoo", "--dry-run")
    assert code == 0 and "nothing was trained" in out


def test_tune_refuses_a_missing_or_bad_file(home: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "tune", str(tmp_path / "none.csv"), "--name", "zoo")
    assert code == 1 and "There is no file" in err
    bad = faq(tmp_path, QA[:2])
    code, _, err = run(capsys, "tune", str(bad), "--name", "zoo", "--dry-run")
    assert code == 1 and "Traceback" not in err and "10" in err


def test_job_and_cancel_of_an_unknown_job_fail_clearly(home: Path, capsys) -> None:
    code, _, err = run(capsys, "job", "42")
    assert code == 1 and "no job 42" in err
    code, _, err = run(capsys, "cancel", "42")
    assert code == 1 and "no job 42" in err


def test_models_add_then_chat_and_tune_wait(home: Path, tmp_path: Path, tiny_base_dir: Path,
                                            capsys, monkeypatch) -> None:
    monkeypatch.setenv("GPTSTORE_DEVICE", "cpu")
    code, _, err = run(capsys, "models", "add", "mini", "--path", str(tmp_path / "missing"))
    assert code == 1 and "There is no folder" in err
    code, out, _ = run(capsys, "models", "add", "mini", "--path", str(tiny_base_dir), "--json")
    assert code == 0 and json.loads(out)["name"] == "mini"

    code, out, _ = run(capsys, "chat", "mini", "Hello there")
    assert code == 0 and out.strip() != ""

    path = faq(tmp_path)
    code, out, _ = run(capsys, "tune", str(path), "--name", "early", "--base", "mini",
                       "--epochs", "1", "--json")  # returns at once; the job runs on its own
    assert code == 0
    queued = json.loads(out)
    assert queued["state"] == "queued" and queued["model_name"] == "early"

    code, out, err = run(capsys, "tune", str(path), "--name", "zoo", "--base", "mini",
                         "--epochs", "1", "--batch-size", "4", "--wait", "--json")
    assert code == 0, err
    job = json.loads(out)
    assert job["state"] == "succeeded" and job["result"]["version"] == 1
    assert "Token F1" in err  # the human progress and metrics went to stderr
    code, out, _ = run(capsys, "job", str(job["id"]), "--json")
    assert code == 0 and json.loads(out)["state"] == "succeeded"
    code, out, _ = run(capsys, "chat", "zoo", QA[0][0])
    assert code == 0 and out.endswith("\n")  # the tiny model's words are noise, but it answers

    from engine.app import Engine
    from engine.settings import Settings
    engine = Engine.open(Settings.from_env())
    try:
        assert engine.jobs.wait(queued["id"], timeout=600).state == "succeeded"
    finally:
        engine.close()


def test_bench_lists_the_benchmarks_and_refuses_unknown_ones(home: Path, capsys) -> None:
    code, out, _ = run(capsys, "bench")
    assert code == 0 and "search" in out and "train" in out
    code, _, err = run(capsys, "bench", "serch")
    assert code == 2 and "Did you mean 'search'" in err


def test_nested_benchmark_figures_get_a_line_each() -> None:
    from bench.runner import _flat

    figures = {"ratio": 6.02, "single_stream": {"ratio": 2.56, "load_average": [2.0, 1.7]}}
    assert _flat(figures) == [("ratio", 6.02), ("single_stream.ratio", 2.56),
                              ("single_stream.load_average", [2.0, 1.7])]


def test_serve_without_tokens_says_what_to_set(home: Path, capsys, monkeypatch) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(capsys, "serve")
    assert code == 1 and "SLACK_BOT_TOKEN" in err and "DISCORD_TOKEN" in err
    code, _, err = run(capsys, "serve", "--discord")
    assert code == 1 and "DISCORD_TOKEN" in err


def test_interactive_chat_answers_each_line_until_an_empty_one(engine) -> None:
    import io

    from bot.cli.commands import interactive_chat
    from engine.identity import Caller

    out = io.StringIO()
    code = interactive_chat(engine, "tiny", io.StringIO("Hello\nAnd then?\n\n"), out)
    assert code == 0
    assert out.getvalue().startswith("Chatting with tiny.")
    history = engine.chat.history_for(Caller.console(__import__("getpass").getuser()))
    assert [m["content"] for m in history if m["role"] == "user"] == ["Hello", "And then?"]
