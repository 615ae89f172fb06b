"""The `gptstore` command line: argument parsing, exit codes and the one-sentence error rule.

Exit codes: 0 success, 1 the request failed (one sentence says why and what to do), 2 usage
error. Tracebacks go to GPTSTORE_HOME/logs/gptstore.log, and to the terminal with --debug.
The subcommands themselves live in bot/cli/commands.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import uuid
from pathlib import Path
from typing import Sequence

from bot.cli import commands
from bot.console.demo import DEFAULT_BATCH, DEFAULT_EPOCHS
from engine.errors import is_user_error
from engine.settings import MaskingFormatter, Settings, mask_urls
from engine.training.config import TUNE_OPTIONS

LOG_NAME = "gptstore.log"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gptstore", description="A model store that lives in chat: find, fine-tune, "
                                     "deploy and chat with language models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_parser = sub.add_parser

    def with_debug(name: str, **kwargs):
        return add_parser(name, parents=[common], **kwargs)

    sub.add_parser = with_debug  # every subcommand accepts --debug too

    demo = sub.add_parser("demo", help="the whole loop on the console, with the bundled model")
    demo.add_argument("--base", help="base model to tune (default: the bundled SmolLM2)")
    demo.add_argument("--epochs", type=int,
                      help=f"training epochs (default {DEFAULT_EPOCHS}, batch size {DEFAULT_BATCH})")
    demo.add_argument("--max-examples", type=int, help="use only the first N FAQ pairs")
    demo.add_argument("--name", default="acme-support-demo", help="the demo model's name")

    sub.add_parser("console", help="the command language in a terminal")

    serve = sub.add_parser("serve", help="run the chat adapters")
    serve.add_argument("--slack", action="store_true", help="run the Slack adapter")
    serve.add_argument("--discord", action="store_true", help="run the Discord adapter")
    serve.add_argument("--port", type=int, default=3000, help="HTTP port for Slack events")
    serve.add_argument("--host", default="0.0.0.0",
                       help="address the Slack HTTP endpoint listens on (127.0.0.1: this host only)")

    sub.add_parser("worker", help="run fine-tune jobs (local queue, or celery)")

    search = sub.add_parser("search", help="find models")
    search.add_argument("words", nargs="*", help="words to look for")
    search.add_argument("--task", help="only models tagged with this task")
    search.add_argument("--base", help="only models tuned from this base")
    search.add_argument("--json", action="store_true", help="print one JSON document")

    info = sub.add_parser("info", help="a model's card")
    info.add_argument("model")
    info.add_argument("--json", action="store_true", help="print one JSON document")

    tune = sub.add_parser("tune", help="fine-tune a model with LoRA on a Q&A file")
    tune.add_argument("file", help="the Q&A file (CSV, TSV, JSONL, JSON)")
    tune.add_argument("--name", required=True, help="name of the tuned model")
    tune.add_argument("--base", help="base model (default: the store's default)")
    for option in TUNE_OPTIONS:
        tune.add_argument(option.flag, dest=option.field, help=option.help,
                          type={"int": int, "float": float}.get(option.type),
                          choices=option.choices or None)
    tune.add_argument("--validation", help="a separate validation Q&A file")
    tune.add_argument("--wait", action="store_true", help="train here and show progress")
    tune.add_argument("--dry-run", action="store_true", dest="dry_run",
                      help="validate the file and show the split; train nothing")
    tune.add_argument("--json", action="store_true", help="print one JSON document")

    jobs = sub.add_parser("jobs", help="list jobs")
    jobs.add_argument("--json", action="store_true")
    job = sub.add_parser("job", help="show one job")
    job.add_argument("job", type=int)
    job.add_argument("--json", action="store_true")
    cancel = sub.add_parser("cancel", help="cancel a job")
    cancel.add_argument("job", type=int)
    cancel.add_argument("--json", action="store_true")

    models = sub.add_parser("models", help="manage base models")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    models_sub.required = True
    add = models_sub.add_parser("add", help="register a base model from a local HF folder")
    add.add_argument("name")
    add.add_argument("--path", required=True, help="folder in Hugging Face layout")
    add.add_argument("--description", default="")
    add.add_argument("--tags", default="")
    add.add_argument("--json", action="store_true")

    chat = sub.add_parser("chat", help="one answer, or an interactive chat")
    chat.add_argument("model")
    chat.add_argument("message", nargs="*", help="the question (none: interactive)")
    chat.add_argument("--json", action="store_true",
                      help="print one JSON document: answer, grounded, sources, latency_ms")

    docs = sub.add_parser("docs", help="documents a model answers from")
    docs_sub = docs.add_subparsers(dest="docs_command", required=True)
    docs_add = docs_sub.add_parser("add", help="add a .txt/.md document to a model")
    docs_add.add_argument("model")
    docs_add.add_argument("file")
    docs_add.add_argument("--json", action="store_true")

    bench = sub.add_parser("bench", help="benchmarks, with ratios against their baselines")
    bench.add_argument("name", nargs="?")
    bench.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(args_list)
    except SystemExit as exc:  # argparse printed the usage error
        return int(exc.code or 0)
    if extra and args.command != "bench":
        print(f"gptstore: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return 2
    args.extra = extra

    try:
        return int(commands.run(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:
        return report(exc, debug=args.debug)


def report(exc: BaseException, *, debug: bool) -> int:
    """One sentence on stderr; the traceback to the log (and the terminal with --debug)."""
    ref = uuid.uuid4().hex[:6]
    log_path = _log_traceback(exc, ref, with_traceback=debug or not is_user_error(exc))
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if is_user_error(exc):
        print(mask_urls(f"Error: {exc}"), file=sys.stderr)
    else:
        where = f" (details in {log_path})" if log_path else ""
        print(mask_urls(f"Error: something went wrong (ref {ref}): {exc.__class__.__name__}: "
                        f"{_first_line(exc)}{where}. Run with --debug to see the traceback."),
              file=sys.stderr)
    return 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no message"


def _log_traceback(exc: BaseException, ref: str, *, with_traceback: bool = True) -> Path | None:
    """Append the traceback to GPTSTORE_HOME/logs/gptstore.log; None when that is not writable."""
    try:
        path = Settings.from_env().logs_dir / LOG_NAME
    except Exception:  # a bad variable is what is being reported; no log then
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(MaskingFormatter())
    logger = logging.getLogger("gptstore.cli")
    logger.addHandler(handler)
    try:
        logger.error("ref %s: %s", ref, exc, exc_info=exc if with_traceback else None)
    finally:
        logger.removeHandler(handler)
        handler.close()
    return path


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
