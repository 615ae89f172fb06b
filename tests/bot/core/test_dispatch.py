"""The dispatcher's promises to every adapter: specs for typed options, no exception escapes."""

from __future__ import annotations

import logging

from bot.core.dispatch import Context, Dispatcher
from engine.errors import Busy, PermissionDenied
from engine.identity import Caller

ADMIN = Context(Caller.console("admin"))


class Failing:
    """A catalog whose search fails the way the test says."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def search(self, *args, **kwargs):
        raise self.exc

    def deploy(self, *args, **kwargs):
        raise self.exc


class FakeEngine:
    def __init__(self, exc: Exception) -> None:
        self.catalog = Failing(exc)


def test_a_bug_becomes_a_reply_with_a_reference_that_is_logged(caplog) -> None:
    dispatcher = Dispatcher(FakeEngine(RuntimeError("index corrupted")))
    with caplog.at_level(logging.ERROR, logger="gptstore.bot"):
        reply = dispatcher.handle_text("search support", ADMIN)
    assert reply.kind == "error" and "Something went wrong (ref " in reply.text
    ref = reply.text.split("(ref ")[1][:6]
    assert any(ref in record.getMessage() and record.exc_info for record in caplog.records)
    assert "index corrupted" not in reply.text


def test_busy_and_permission_errors_keep_their_message() -> None:
    reply = Dispatcher(FakeEngine(Busy("The queue is full; try again in a minute."))).handle_text(
        "search", ADMIN)
    assert reply.kind == "busy" and reply.ephemeral and "queue is full" in reply.text
    reply = Dispatcher(FakeEngine(PermissionDenied("Not for you."))).handle_text(
        "deploy acme", ADMIN)
    assert reply.kind == "error" and "admin" in reply.text


def test_specs_describe_typed_options_for_slash_commands() -> None:
    specs = {spec.name: spec for spec in Dispatcher(FakeEngine(RuntimeError())).commands()}
    assert len(specs) == 25  # 16 + gaps, answer, docs, handoff, threshold + review, approve, edit, reject
    assert specs["review"].options[1].choices == ("on", "off")
    assert specs["approve"].options[0].type == "int"
    tune = {o.name: o for o in specs["tune"].options}
    assert tune["file"].type == "file" and tune["file"].required
    assert tune["epochs"].type == "int" and tune["lr"].type == "float"
    assert tune["optimizer"].choices == ("adamw", "sgd")
    assert tune["name"].positional and tune["name"].required
    assert specs["publish"].options[1].choices == ("private", "workspace", "public")
    assert all(spec.summary and spec.help for spec in specs.values())


def test_help_is_generated_from_the_handlers() -> None:
    dispatcher = Dispatcher(FakeEngine(RuntimeError()))
    assert "Cancel a queued or running job" in dispatcher.help("cancel").text
    assert dispatcher.help().ephemeral
    assert "Did you mean 'rollback'" in dispatcher.help("rolback").text
