"""The review commands: the owner's inbox of suggested corrections and what it decides.

`review MODEL` lists the pending suggestions (question, the bot's answer, the suggested
answer, who suggested it, how many agreed) with Approve / Edit / Reject buttons; `approve ID`,
`edit ID ANSWER` and `reject ID` decide one. Only approved pairs train the model.
"""

from __future__ import annotations

from bot.core.reply import Button, Reply
from bot.core.spec import Request, arg, command, opt
from engine.views import CuratedView, ReviewInbox

SWITCH = ("on", "off")
EDIT_PREFIX = "edit "  # a button whose command is "edit ID" asks for the text (Slack, Discord)


@command("review", "review MODEL [thumbs_up=on|off] [outside=on|off]",
         arg("model", "the model whose suggestions to review"),
         opt("thumbs_up", "owner-workspace 👍 answers count as approved", type="choice",
             choices=SWITCH),
         opt("outside", "other workspaces' corrections reach this inbox", type="choice",
             choices=SWITCH))
def review(req: Request) -> Reply:
    """List a model's suggested corrections: approve, edit or reject each (its admins).

    Corrections and 👎 answers land here; only approved pairs train the next retrain.
    `thumbs_up=on` lets 👍 answers in this workspace count as approved; `outside=on` lets
    other workspaces' corrections in (still through review). Both are off at first.
    """
    name = req.values["model"]
    thumbs, outside = req.get("thumbs_up"), req.get("outside")
    if thumbs is not None or outside is not None:
        inbox = req.engine.curation.set_options(
            req.caller, name, thumbs_up=None if thumbs is None else thumbs == "on",
            outside=None if outside is None else outside == "on")
    else:
        inbox = req.engine.curation.inbox(req.caller, name)
    return inbox_reply(inbox)


@command("approve", "approve ID", arg("id", "the suggestion's number", type="int"))
def approve(req: Request) -> Reply:
    """Approve a suggested correction: the next retrain trains on it (admins)."""
    return decided_reply(req.engine.curation.approve(req.caller, req.values["id"]))


@command("edit", "edit ID ANSWER", arg("id", "the suggestion's number", type="int"),
         arg("answer", "the answer it should give", rest=True, required=False),
         free_text=True)
def edit(req: Request) -> Reply:
    """Approve a suggestion with your own answer instead (admins).

    Without ANSWER (the Edit button) it shows the suggestion and the command to send.
    """
    answer = (req.get("answer") or "").strip()
    if not answer:
        item = req.engine.curation.suggestion(req.caller, req.values["id"])
        return Reply(title=f"Edit suggestion #{item.id}", ephemeral=True,
                     text=f"{suggestion_text(item)}\nSend `/store edit {item.id} THE RIGHT "
                          "ANSWER` to approve it with your answer.")
    return decided_reply(req.engine.curation.edit(req.caller, req.values["id"], answer))


@command("reject", "reject ID", arg("id", "the suggestion's number", type="int"))
def reject(req: Request) -> Reply:
    """Reject a suggestion, or take back an approved pair: it trains nothing (admins)."""
    return decided_reply(req.engine.curation.reject(req.caller, req.values["id"]))


def clip(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def suggestion_text(item: CuratedView) -> str:
    suggested = item.answer or "(👎, no better answer given: edit to write one)"
    agreed = f", {item.agreed} agreed" if item.agreed > 1 else ""
    return (f"Q: {clip(item.question, 300)}\nBot: {clip(item.bot_answer, 300)}\n"
            f"Suggested: {clip(suggested, 600)}\n"
            f"({item.origin} by {item.suggested_by}{agreed})")


def inbox_reply(inbox: ReviewInbox) -> Reply:
    options = (f"👍 counts as approved: {'on' if inbox.thumbs_up_approves else 'off'}; "
               f"other workspaces: {'on' if inbox.outside_suggestions else 'off'}.")
    if not inbox.pending:
        return Reply(title=f"Review {inbox.model_name}",
                     text=f"Nothing to review; {inbox.approved} approved pair(s) so far. "
                          + options)
    buttons = []
    for item in inbox.pending:
        if item.answer:
            buttons.append(Button(f"Approve #{item.id}", f"approve {item.id}", "primary"))
        buttons.append(Button(f"Edit #{item.id}", f"{EDIT_PREFIX}{item.id}"))
        buttons.append(Button(f"Reject #{item.id}", f"reject {item.id}", "danger"))
    more = inbox.total_pending - len(inbox.pending)
    return Reply(
        title=f"Review {inbox.model_name}: {inbox.total_pending} suggestion(s)",
        fields=tuple((f"#{item.id}", suggestion_text(item)) for item in inbox.pending),
        text=(f"{inbox.approved} approved pair(s) so far"
              + (f"; {more} more after these" if more > 0 else "")
              + ". `approve ID`, `edit ID ANSWER` or `reject ID`. " + options),
        buttons=tuple(buttons))


def decided_reply(item: CuratedView) -> Reply:
    if item.status == "approved":
        text = (f"Approved #{item.id} for {item.model_name}: \"{clip(item.question, 200)}\" -> "
                f"\"{clip(item.answer, 300)}\". The next retrain trains on it.")
    else:
        text = f"Rejected #{item.id} for {item.model_name}; it trains no later version."
    return Reply(text=text, kind="success")
