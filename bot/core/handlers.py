"""One function per command of the store's language; each makes one engine call.

A handler's docstring is its help text (first line: the summary). Handlers return Reply
values and hold no platform code; the dispatcher has validated their arguments already and
turns engine errors into error replies.
"""

from __future__ import annotations

from bot.core.cards import (
    answer_reply,
    card_reply,
    forget_text,
    job_reply,
    jobs_reply,
    search_reply,
    versions_reply,
)
from bot.core.grounding import COMMANDS as KNOWLEDGE_COMMANDS
from bot.core.help import help_reply
from bot.core.progress import live_plot
from bot.core.reply import Button, Reply
from bot.core.review import approve, edit, reject, review
from bot.core.spec import Request, arg, command, opt
from engine.catalog.rules import VISIBILITIES
from engine.training.config import TUNE_OPTIONS, tune_usage


@command("search", "search [WORDS] [task:T] [base:B]",
         arg("words", "words to look for", required=False, rest=True),
         opt("task", "only models tagged with this task"),
         opt("base", "only models tuned from this base model"))
def search(req: Request) -> Reply:
    """Find models in the store by words, task or base model.

    `search support` ranks by relevance; `search task:faq base:smollm2-135m-instruct` filters.
    Private models show only to their owner, workspace models only inside their workspace.
    """
    words, task, base = [], req.get("task"), req.get("base")
    for word in (req.get("words") or "").split():
        key, sep, value = word.partition(":")
        if sep and key.lower() == "task" and value:
            task = value
        elif sep and key.lower() == "base" and value:
            base = value
        else:
            words.append(word)
    text = " ".join(words)
    return search_reply(req.engine.catalog.search(req.caller, text, task=task, base=base), text)


@command("info", "info MODEL", arg("model", "the model's name"))
def info(req: Request) -> Reply:
    """Show a model's card: description, versions, metrics and where it is deployed."""
    card = req.engine.knowledge_admin.card(req.caller, req.values["model"])
    return card_reply(card, image=live_plot(req.engine, card))


@command("tune", tune_usage() + " (+ an attached Q&A file)",
         arg("name", "name of the tuned model (created if new)"),
         opt("file", "the Q&A file (CSV, TSV, JSONL, JSON)", type="file", required=True),
         opt("base", "base model to tune (default: the store's default base)"),
         *(opt(o.name, o.help, type=o.type, choices=o.choices) for o in TUNE_OPTIONS))
def tune(req: Request) -> Reply:
    """Fine-tune a model with LoRA on an attached Q&A file.

    The file is checked first (every problem is listed with its row); then a job trains,
    evaluates before/after and stores a new live version. Progress is posted here.
    """
    name, file = req.values["name"], req.values["file"]
    options = {o.name: req.values[o.name] for o in TUNE_OPTIONS
               if req.values.get(o.name) is not None}
    job = req.engine.jobs.submit_tune(req.caller, name, file.filename, file.data, options,
                                      req.ctx.origin, base=req.get("base"))
    settings = ", ".join(f"{k}={v}" for k, v in options.items())
    return Reply(title=f"Job {job.id}: tuning {job.model_name}",
                 text=f"Job {job.id} {job.state}: tuning {job.model_name} on {file.filename} "
                      f"from {job.base_name}" + (f" ({settings})" if settings else "")
                      + ". Progress follows here.",
                 kind="success", job_id=job.id,
                 buttons=(Button("Cancel", f"cancel {job.id}", "danger"),))


@command("jobs", "jobs")
def jobs(req: Request) -> Reply:
    """List your workspace's recent jobs and their states."""
    return jobs_reply(req.engine.jobs.list(req.caller))


@command("job", "job ID", arg("id", "the job's number", type="int"))
def job(req: Request) -> Reply:
    """Show one job: its progress, or its metrics once it finished."""
    return job_reply(req.engine.jobs.get(req.caller, req.values["id"]))


@command("cancel", "cancel ID", arg("id", "the job's number", type="int"))
def cancel(req: Request) -> Reply:
    """Cancel a queued or running job; it stops at the next step and stores nothing."""
    view = req.engine.jobs.cancel(req.caller, req.values["id"])
    return Reply(title=f"Job {view.id}", text=f"Job {view.id} ({view.model_name}) is {view.state}.",
                 kind="success")


@command("chat", "chat MODEL MESSAGE", arg("model", "the model to ask"),
         arg("message", "your question", rest=True), free_text=True)
def chat(req: Request) -> Reply:
    """Ask a model one question, whether or not it is deployed here."""
    answer = req.engine.chat.answer(req.caller, req.values["model"], req.values["message"],
                                    question_ref=req.ctx.origin.message)
    return answer_reply(answer)


@command("deploy", "deploy MODEL [default]", arg("model", "the model to answer in this channel"),
         arg("where", "`default`: the workspace's default model instead of this channel's",
             type="choice", choices=("default",), required=False))
def deploy(req: Request) -> Reply:
    """Bind a model to this channel: plain messages here are answered by it (admins).

    `deploy MODEL default` makes it the workspace's default: it answers mentions and DMs
    wherever no model is deployed (otherwise the store's default base does).
    """
    default = req.get("where") == "default"
    card = req.engine.catalog.deploy(req.caller, req.values["model"], default=default)
    live = f" (v{card.live_version})" if card.live_version and not card.is_base else ""
    where = ("mentions and DMs wherever no model is deployed in this workspace" if default
             else f"messages in {req.caller.channel or 'this channel'}")
    return Reply(title=f"{card.name} deployed", kind="success",
                 text=f"{card.name}{live} now answers {where}.")


@command("undeploy", "undeploy [default]",
         arg("where", "`default`: unset the workspace's default model", type="choice",
             choices=("default",), required=False))
def undeploy(req: Request) -> Reply:
    """Unbind this channel's model, or with `default` the workspace's default (admins)."""
    default = req.get("where") == "default"
    name = req.engine.catalog.undeploy(req.caller, default=default)
    if name is None:
        return Reply(text="This workspace has no default model." if default
                     else "No model is deployed here.")
    return Reply(text=(f"{name} is no longer this workspace's default model." if default
                       else f"{name} no longer answers here."), kind="success")


@command("publish", "publish MODEL private|workspace|public", arg("model", "the model"),
         arg("visibility", "who can see and use it", type="choice", choices=VISIBILITIES))
def publish(req: Request) -> Reply:
    """Set who can see a model: private (you), workspace or public (admins)."""
    card = req.engine.catalog.publish(req.caller, req.values["model"], req.values["visibility"])
    return Reply(text=f"{card.name} is now {card.visibility}.", kind="success")


@command("versions", "versions MODEL", arg("model", "the model"))
def versions(req: Request) -> Reply:
    """List a model's versions with their status and metrics."""
    name = req.values["model"]
    return versions_reply(name, req.engine.catalog.versions(req.caller, name))


@command("rollback", "rollback MODEL VERSION", arg("model", "the model"),
         arg("version", "the version number to make live", type="int"))
def rollback(req: Request) -> Reply:
    """Make an earlier version live again."""
    card = req.engine.catalog.rollback(req.caller, req.values["model"], req.values["version"])
    return card_reply(card, title=f"{card.name} is back on v{card.live_version}", kind="success")


@command("retrain", "retrain MODEL [now|daily|weekly|off|CRON]", arg("model", "the model"),
         arg("when", "now, daily, weekly, off or a cron line like '0 3 * * 1'", required=False,
             rest=True))
def retrain(req: Request) -> Reply:
    """Retrain a model on its file and approved pairs now, or set its schedule (admins).

    A retrained version goes live only if the gate finds it better than the live one and
    not worse, beyond a tolerance, on the file's questions and earlier lessons.
    """
    name, when = req.values["model"], (req.get("when") or "now").strip()
    if when.lower() == "now":
        outcome = req.engine.retrainer.retrain_now(req.caller, name, req.ctx.origin)
        if outcome.job is None:
            return Reply(text=outcome.message or f"{outcome.model_name} was not retrained.")
        return Reply(text=f"Job {outcome.job.id}: retraining {outcome.model_name}. "
                          "Progress follows here.", kind="success", job_id=outcome.job.id)
    schedule = req.engine.retrainer.set_schedule(req.caller, name, when, req.ctx.origin)
    if schedule.spec == "off":
        return Reply(text=f"Scheduled retraining of {schedule.model_name} is off.", kind="success")
    runs = ", ".join(f"{run:%a %Y-%m-%d %H:%M}" for run in schedule.next_runs)
    nxt = f" Next runs (UTC): {runs}." if runs else ""
    return Reply(text=f"{schedule.model_name} retrains {schedule.spec} once it has "
                      f"{schedule.min_new_examples} new approved pairs (`review "
                      f"{schedule.model_name}`).{nxt}", kind="success")


@command("correct", "correct BETTER ANSWER", arg("answer", "the answer it should have given",
                                                 rest=True), free_text=True)
def correct(req: Request) -> Reply:
    """Store a better answer for the model's answer you reply to (or its last one to you)."""
    req.engine.chat.correct(req.caller, req.ctx.reply_ref or None, req.values["answer"])
    return Reply(text="Thanks: the correction is stored for the model's owner to review; "
                      "approved corrections train its next version.",
                 kind="success", ephemeral=True)


@command("forget-me", "forget-me")
def forget_me(req: Request) -> Reply:
    """Delete your logged messages, votes, corrections and uploaded files (this account)."""
    return Reply(text=forget_text(req.engine.privacy.forget_me(req.caller), req.caller.user),
                 kind="success", ephemeral=True)


@command("help", "help [COMMAND]", arg("command", "a command's name", required=False))
def help(req: Request) -> Reply:  # noqa: A001 - the command is called help
    """Show the commands, or one command's options."""
    return help_reply(req.commands, req.get("command"))


ALL = (search, info, tune, jobs, job, cancel, chat, deploy, undeploy, publish, versions,
       rollback, retrain, correct, forget_me, *KNOWLEDGE_COMMANDS, review, approve, edit,
       reject, help)
