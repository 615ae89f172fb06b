"""What each `gptstore` subcommand does: one engine call, then text or one JSON document.

The command line acts as the local user "console:<login>" in workspace "local", an admin.
Human output reuses the chat replies' rendering (bot/core/cards.py + bot/console/render.py); `--json`
prints engine views through engine.views.as_dict.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from bot.cli.logs import setup_file_log
from bot.console.render import render
from bot.core import cards
from bot.core.progress import JobWatcher
from bot.core.reply import Reply
from bot.core.text import footer_lines
from engine.errors import InvalidInput
from engine.identity import Caller
from engine.settings import Settings
from engine.training.config import TUNE_OPTIONS
from engine.views import ChatAnswer, Origin, as_dict

if TYPE_CHECKING:
    from engine.app import Engine

def run(args: argparse.Namespace) -> int:
    handler = COMMANDS[args.command]
    return int(handler(args) or 0)


def caller() -> Caller:
    return Caller.console(getpass.getuser())


@contextmanager
def opened(*, log_to_file: bool = False, **engine_options: Any) -> Iterator["Engine"]:
    """Settings from the environment, the Engine on them, closed afterwards."""
    from engine.app import Engine

    settings = Settings.from_env()
    engine = Engine.open(settings, **engine_options)
    if log_to_file:
        setup_file_log(settings)
    try:
        yield engine
    finally:
        engine.close()


def emit(args: argparse.Namespace, value: Any, reply: Reply) -> None:
    if getattr(args, "json", False):
        print(json.dumps(as_dict(value), indent=2, default=str))
    else:
        print(render(reply, colour=sys.stdout.isatty()))


# -- store ------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    words = " ".join(args.words)
    with opened() as engine:
        found = engine.catalog.search(caller(), words, task=args.task, base=args.base)
    emit(args, found, cards.search_reply(found, words))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with opened() as engine:
        card = engine.knowledge_admin.card(caller(), args.model)
    emit(args, card, cards.card_reply(card))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    path = Path(args.path).expanduser().resolve()
    if not path.is_dir():
        raise InvalidInput(f"There is no folder at {args.path}; give the folder that holds the "
                           "model's config.json and weights.")
    with opened() as engine:
        card = engine.catalog.add_base(caller(), args.name, str(path),
                                       description=args.description, tags=args.tags)
    emit(args, card, cards.card_reply(card, text=f"Registered {card.name} from {path}.",
                                      kind="success"))
    return 0


# -- jobs -------------------------------------------------------------------------------
def read_file(name: str) -> tuple[str, bytes]:
    path = Path(name).expanduser()
    if not path.is_file():
        raise InvalidInput(f"There is no file at {name}; give the path of your Q&A file.")
    try:
        return path.name, path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"Cannot read {name} ({exc.strerror}).") from None


def cmd_tune(args: argparse.Namespace) -> int:
    filename, data = read_file(args.file)
    validation = read_file(args.validation) if args.validation else None
    options = {o.field: getattr(args, o.field) for o in TUNE_OPTIONS
               if getattr(args, o.field) is not None}
    if args.dry_run:
        with opened() as engine:
            report = engine.datasets.inspect(caller(), filename, data, validation=validation)
        emit(args, report, cards.dataset_reply(report, args.name))
        return 0
    with opened() as engine:
        job = engine.jobs.submit_tune(caller(), args.name, filename, data, options,
                                      Origin(platform="cli"), validation=validation,
                                      base=args.base)
        if not args.wait:
            emit(args, job, Reply(text=f"Job {job.id} {job.state}: tuning {job.model_name} "
                                       f"from {job.base_name}. Follow it with `gptstore job "
                                       f"{job.id}`; `gptstore worker` runs queued jobs."))
            return 0
        out = sys.stderr if args.json else sys.stdout
        sink = LineSink(out, tty=out.isatty())
        JobWatcher(engine, poll_s=1.0, min_interval_s=2.0).run(job.id, sink)
        final = sink.job or engine.jobs.get(caller(), job.id)
    if args.json:
        print(json.dumps(as_dict(final), indent=2, default=str))
    return 0 if final.state == "succeeded" else 1


class LineSink:
    """Progress of `tune --wait`: a rewritten line on a terminal, plain lines otherwise."""

    def __init__(self, out: Any, *, tty: bool) -> None:
        self.out, self.tty, self.job = out, tty, None
        self._shown = False

    def update(self, job: Any, text: str) -> None:
        self.out.write(("\r" + text + "\033[K") if self.tty else text + "\n")
        self.out.flush()
        self._shown = True

    def finish(self, job: Any, reply: Reply) -> None:
        self.job = job
        if self.tty and self._shown:
            self.out.write("\n")
        self.out.write(render(reply, colour=self.tty) + "\n")
        self.out.flush()


def cmd_jobs(args: argparse.Namespace) -> int:
    with opened() as engine:
        found = engine.jobs.list(caller())
    emit(args, found, cards.jobs_reply(found))
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    with opened() as engine:
        view = engine.jobs.get(caller(), args.job)
    emit(args, view, cards.job_reply(view))
    return 0 if view.state != "failed" else 1


def cmd_cancel(args: argparse.Namespace) -> int:
    with opened() as engine:
        view = engine.jobs.cancel(caller(), args.job)
    emit(args, view, Reply(text=f"Job {view.id} ({view.model_name}) is {view.state}."))
    return 0


# -- chat -------------------------------------------------------------------------------
def cmd_chat(args: argparse.Namespace) -> int:
    with opened() as engine:
        if args.message:
            answer = engine.chat.answer(caller(), args.model, " ".join(args.message))
            if getattr(args, "json", False):
                print(json.dumps(chat_json(answer), indent=2))
            else:
                print("\n".join([answer.text, *source_lines(answer)]))
            return 0
        if getattr(args, "json", False):
            raise InvalidInput("`gptstore chat MODEL --json` needs a MESSAGE: --json prints "
                               "one answer.")
        return interactive_chat(engine, args.model, sys.stdin, sys.stdout)


def chat_json(answer: "ChatAnswer") -> dict[str, Any]:
    """The `gptstore chat --json` document (docs/DESIGN.md)."""
    return {"model": answer.model_name, "version": answer.version, "answer": answer.text,
            "grounded": answer.grounded,
            "sources": [{"ref": s.ref, "question": s.question, "text": s.text,
                         "score": s.score} for s in answer.sources],
            "latency_ms": answer.latency_ms}


def source_lines(answer: "ChatAnswer") -> list[str]:
    """The line(s) printed after an answer: the entries it came from."""
    return footer_lines(Reply(text=answer.text, sources=answer.sources))


def cmd_docs(args: argparse.Namespace) -> int:
    """`gptstore docs add MODEL FILE`: a document the model answers from."""
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path}: {exc.strerror or exc}.") from None
    with opened() as engine:
        name, passages = engine.knowledge_admin.add_document(caller(), args.model, path.name, data)
    result = {"model": name, "file": path.name, "passages": passages}
    emit(args, result, Reply(text=f"{name} now answers from {path.name} ({passages} "
                                  "passages).", kind="success"))
    return 0


def interactive_chat(engine: "Engine", model: str, stdin: Any, stdout: Any) -> int:
    """Read questions until EOF, streaming each answer and keeping the conversation."""
    tty = stdin.isatty() if hasattr(stdin, "isatty") else False
    history: list[dict[str, str]] = []
    me = caller()
    stdout.write(f"Chatting with {model}. An empty line or Ctrl-D ends.\n")
    while True:
        if tty:
            stdout.write("you> ")
            stdout.flush()
        line = stdin.readline()
        if not line or not line.strip():
            return 0

        def on_token(token: str) -> None:
            stdout.write(token)
            stdout.flush()

        answer = engine.chat.answer(me, model, line.strip(), history=history, on_token=on_token)
        stdout.write("\n" + "".join(f"{line}\n" for line in source_lines(answer)))
        history += [{"role": "user", "content": line.strip()},
                    {"role": "assistant", "content": answer.text}]


# -- long-running -----------------------------------------------------------------------
def cmd_console(args: argparse.Namespace) -> int:
    from bot.console.repl import Console
    with opened(log_to_file=True) as engine:
        return Console(engine).run()


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.console.demo import run_demo
    with opened(log_to_file=True) as engine:
        return run_demo(engine, sys.stdout, name=args.name, base=args.base, epochs=args.epochs,
                        max_examples=args.max_examples)


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.cli.serve import serve
    return serve(slack=args.slack, discord=args.discord, port=args.port, host=args.host)


def cmd_worker(args: argparse.Namespace) -> int:
    import signal

    from engine.jobs.worker import serve_forever
    settings = Settings.from_env()
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    setup_file_log(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"gptstore worker: running {settings.jobs} jobs for {settings.home}; Ctrl-C stops.")
    serve_forever(settings, stop)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """The benchmarks live above the product (bench/ imports bot, engine and storage; nothing
    imports bench), so the command finds them by name."""
    try:
        runner = importlib.import_module("bench.runner")
    except ModuleNotFoundError:
        raise InvalidInput("The benchmarks are not installed here; run `make install` from a "
                           "checkout of the repository.") from None
    return runner.run_bench(args.name, list(args.extra), as_json=args.json)


COMMANDS = {"search": cmd_search, "info": cmd_info, "models": cmd_models, "tune": cmd_tune,
            "jobs": cmd_jobs, "job": cmd_job, "cancel": cmd_cancel, "chat": cmd_chat,
            "console": cmd_console, "demo": cmd_demo, "serve": cmd_serve,
            "worker": cmd_worker, "bench": cmd_bench, "docs": cmd_docs}

__all__ = ["run", "COMMANDS"]
