"""The terminal adapter: the store's command language on stdin/stdout (`gptstore console`).

A line that starts with `/store`, `store` or a command name runs through the Dispatcher as
the local user (an admin); any other line is a chat turn for the model deployed to the
console channel, with the session as the conversation and tokens streamed as they come.
`tune NAME path/to/faq.csv ...` reads the file into an attachment. Streams are injected so a
test pushes lines and reads what a user would see.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TextIO

from bot.console.render import render
from bot.core.command import Attachment, Command
from bot.core.dispatch import Context, Dispatcher
from bot.core.parse import parse
from bot.core.progress import JobWatcher
from bot.core.reply import Reply
from bot.core.text import footer_lines
from engine.errors import InvalidInput
from engine.identity import Caller
from engine.views import JobView, Origin

if TYPE_CHECKING:
    from engine.app import Engine

PROMPT = "store> "
EXIT_WORDS = {"exit", "quit", "/exit", "/quit", ":q"}


# Commands that take a file, and how the console asks for its path.
FILE_EXAMPLES = {"tune": "Q&A file, e.g. `tune acme-support faq.csv`",
                 "docs": "document, e.g. `docs acme-support guide.md`"}

class TerminalSink:
    """Job progress on a terminal: one rewritten line with a bar (tty) or plain lines."""

    def __init__(self, output: TextIO, *, tty: bool, colour: bool = False) -> None:
        self.output, self.tty, self.colour = output, tty, colour
        self._width = 0

    def update(self, job: JobView, text: str) -> None:
        if self.tty:
            padded = text.ljust(self._width)
            self._width = len(text)
            self.output.write("\r" + padded)
        else:
            self.output.write(text + "\n")
        self.output.flush()

    def finish(self, job: JobView, reply: Reply) -> None:
        if self.tty and self._width:
            self.output.write("\n")
        self.output.write(render(reply, colour=self.colour) + "\n")
        self.output.flush()


class Console:
    def __init__(self, engine: "Engine", *, input: TextIO | None = None,
                 output: TextIO | None = None, user: str | None = None,
                 tty: bool | None = None, watcher: JobWatcher | None = None,
                 follow_jobs: bool = True, cwd: Path | None = None,
                 caller: Caller | None = None) -> None:
        self.engine = engine
        self.input = input or sys.stdin
        self.output = output or sys.stdout
        self.tty = _isatty(self.output) if tty is None else tty
        self.caller = caller or Caller.console(user or getpass.getuser())
        self.dispatcher = Dispatcher(engine)
        self.watcher = watcher or JobWatcher(engine, poll_s=0.5, min_interval_s=0.5)
        self.follow_jobs = follow_jobs
        self.cwd = cwd or Path.cwd()
        self.history: list[dict[str, str]] = []  # this session's conversation
        self.last_answer_ref = ""  # `correct` right after an answer refers to it
        self._answers = 0

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        self.write("gptstore console. Type `help` for the commands, a plain line to chat with "
                   "the deployed model, `exit` to leave.")
        while True:
            if self.tty:
                self.output.write(PROMPT)
                self.output.flush()
            line = self.input.readline()
            if not line:
                break
            if line.strip().lower() in EXIT_WORDS:
                break
            try:
                self.handle_line(line)
            except KeyboardInterrupt:
                self.write("(stopped following; the job keeps running: `jobs` shows it)")
        return 0

    def handle_line(self, line: str) -> Reply | None:
        """Run one line; returns the reply it showed (None for an empty line)."""
        line = line.strip()
        if not line:
            return None
        if self.is_command(line):
            return self.command(line)
        return self.chat(line)

    def is_command(self, line: str) -> bool:
        first = line.split(None, 1)[0].lower()
        return first.startswith("/") or first == "store" or self.dispatcher.knows(first)

    # -- commands -------------------------------------------------------------------------
    def command(self, line: str) -> Reply:
        try:
            command = self._with_file(parse(line))
        except Exception as exc:
            reply = self.dispatcher.handle_text(line, self.context()) if not isinstance(
                exc, InvalidInput) else Reply(text=str(exc), kind="error", ephemeral=True)
            return self.show(reply)
        ref = self.last_answer_ref if command.name == "correct" else ""
        reply = self.dispatcher.handle(command, self.context(reply_ref=ref,
                                                             attachments=command.attachments))
        self.show(reply)
        if reply.job_id is not None and self.follow_jobs:
            self.follow(reply.job_id)
        return reply

    def _with_file(self, command: Command) -> Command:
        """`tune NAME PATH`, `docs NAME PATH`: the console's way of attaching a file."""
        if command.name not in FILE_EXAMPLES or len(command.args) < 2:
            return command
        path = Path(command.args[1]).expanduser()
        if not path.is_absolute():
            path = self.cwd / path
        if not path.is_file():
            raise InvalidInput(f"There is no file at {command.args[1]}; give the path of your "
                               f"{FILE_EXAMPLES[command.name]}.")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"Cannot read {command.args[1]} ({exc.strerror}).") from None
        return Command(name=command.name, args=command.args[:1] + command.args[2:],
                       options=command.options, text=command.text,
                       attachments=(Attachment(path.name, data),) + command.attachments)

    def follow(self, job_id: int) -> None:
        self.watcher.run(job_id, TerminalSink(self.output, tty=self.tty, colour=self.tty))

    # -- chat -----------------------------------------------------------------------------
    def chat(self, text: str) -> Reply:
        streamed: list[str] = []

        def on_token(token: str) -> None:
            streamed.append(token)
            self.output.write(token)
            self.output.flush()

        reply = self.dispatcher.chat_turn(self.context(), text, history=list(self.history),
                                          on_token=on_token)
        if reply.is_error:
            if streamed:
                self.output.write("\n")
            return self.show(reply)
        if streamed:
            self.output.write("\n")
        else:
            self.write(reply.text)
        for line in footer_lines(reply):
            self.write(line)
        self.output.flush()
        self.history += [{"role": "user", "content": text},
                         {"role": "assistant", "content": reply.text}]
        if reply.message_id is not None:
            self._answers += 1
            self.last_answer_ref = f"console:{self.caller.user}:{reply.message_id}"
            self.dispatcher.answer_posted(reply.message_id, self.last_answer_ref)
        return reply

    # -- helpers --------------------------------------------------------------------------
    def context(self, *, reply_ref: str = "", attachments: tuple[Attachment, ...] = ()) -> Context:
        return Context(caller=self.caller, reply_ref=reply_ref, attachments=attachments,
                       origin=Origin(platform="console", channel="console"))

    def show(self, reply: Reply) -> Reply:
        self.write(render(reply, colour=self.tty))
        return reply

    def write(self, text: str) -> None:
        self.output.write(text + "\n")
        self.output.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def main(engine: "Engine", *, input: TextIO | None = None, output: TextIO | None = None,
         on_exit: Callable[[], None] | None = None) -> int:
    """`gptstore console`."""
    try:
        return Console(engine, input=input, output=output).run()
    finally:
        if on_exit:
            on_exit()
