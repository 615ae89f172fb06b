"""The commands of a model's knowledge: gaps, answer, docs, handoff, threshold. Each makes
one call to the engine's `KnowledgeAdmin`; handlers.py registers them."""

from __future__ import annotations

from datetime import datetime

from bot.core.reply import Reply
from bot.core.spec import Request, arg, command, opt
from engine.views import GapView, KnowledgeView


def when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def gaps_reply(model_name: str, gaps: list[GapView]) -> Reply:
    if not gaps:
        return Reply(title=f"Gaps of {model_name}",
                     text=f"{model_name} has answered every question asked here so far.")
    fields = tuple((f"Gap {g.id}: asked {g.count}x, last {when(g.last_asked)}", g.question)
                   for g in gaps[:25])
    more = f" ({len(gaps) - 25} more not shown)" if len(gaps) > 25 else ""
    return Reply(title=f"Gaps of {model_name}", fields=fields,
                 text=f"Questions {model_name} declined, most asked first{more}. An admin "
                      "answers one with `/store answer GAP THE ANSWER`.")


def knowledge_fields(view: KnowledgeView) -> tuple[tuple[str, str], ...]:
    docs = ", ".join(f"{name} ({n} passages)" for name, n in view.documents) or "none"
    return (("Entries", str(view.entries)), ("Documents", docs),
            ("Declines below", f"{view.threshold:.2f} ({view.threshold_by}, {view.method})"),
            ("Handoff", view.handoff or "not set: `/store handoff MODEL TEXT`"))


@command("gaps", "gaps MODEL", arg("model", "the model"))
def gaps(req: Request) -> Reply:
    """Questions a model declined here, most asked first (similar ones counted together)."""
    found = req.engine.knowledge_admin.gaps(req.caller, req.values["model"])
    name = found[0].model_name if found else req.values["model"]
    return gaps_reply(name, found)


@command("answer", "answer GAP ANSWER TEXT", arg("gap", "the gap's number from `gaps MODEL`"),
         arg("answer", "the answer the model should give", rest=True), free_text=True)
def answer(req: Request) -> Reply:
    """Answer a gap (admins): used at once for it and its rephrasings, trained on next retrain."""
    gap = req.engine.knowledge_admin.answer_gap(req.caller, req.values["gap"], req.values["answer"])
    return Reply(text=f"Gap {gap.id} is answered: {gap.model_name} now answers "
                      f"\"{gap.question}\" with it, and learns it at its next retrain.",
                 kind="success")


@command("docs", "docs MODEL (+ an attached .txt/.md file)", arg("model", "the model"),
         opt("file", "a plain-text or Markdown document", type="file"))
def docs(req: Request) -> Reply:
    """Add a document a model answers from, or list its documents when none is attached."""
    file = req.get("file")
    if file is None:
        view = req.engine.knowledge_admin.view(req.caller, req.values["model"])
        return Reply(title=f"Knowledge of {view.model_name}", fields=knowledge_fields(view),
                     text="Attach a .txt or .md file to `/store docs MODEL` to add one.")
    name, passages = req.engine.knowledge_admin.add_document(req.caller, req.values["model"],
                                                      file.filename, file.data)
    return Reply(text=f"{name} now answers from {file.filename} ({passages} passages).",
                 kind="success")


@command("handoff", "handoff MODEL TEXT", arg("model", "the model"),
         arg("text", "who to ask, e.g. `ask @support-team in #help`", rest=True),
         free_text=True)
def handoff(req: Request) -> Reply:
    """Set who a model names when it cannot answer (admins)."""
    view = req.engine.knowledge_admin.set_handoff(req.caller, req.values["model"], req.values["text"])
    return Reply(text=f"When {view.model_name} cannot answer, it now says: {view.handoff}",
                 kind="success")


@command("threshold", "threshold MODEL VALUE", arg("model", "the model"),
         arg("value", "a retrieval score from 0 to 1: below it the model declines"))
def threshold(req: Request) -> Reply:
    """Set the score under which a model declines instead of answering (admins)."""
    view = req.engine.knowledge_admin.set_threshold(req.caller, req.values["model"],
                                             req.values["value"])
    return Reply(text=f"{view.model_name} now declines questions whose best entry scores "
                      f"under {view.threshold:.2f}.", kind="success")


COMMANDS = (gaps, answer, docs, handoff, threshold)
