"""Engine views (model cards, versions, jobs, dataset reports) as platform-neutral Replies."""

from __future__ import annotations

from pathlib import Path

from bot.core.progress import (
    duration,
    figure_fields,
    final_reply,
    grounded_fields,
    metric_fields,
    progress_text,
)
from bot.core.reply import Button, Reply
from engine.views import (
    ChatAnswer,
    DatasetReport,
    ForgetReport,
    JobView,
    KnowledgeView,
    ModelCard,
    VersionView,
)


def card_reply(card: ModelCard, *, title: str = "", text: str = "", kind: str = "info",
               image: Path | None = None) -> Reply:
    """A model's card; `image` is the live version's loss plot, when the caller has it."""
    fields: list[tuple[str, str]] = [
        ("Base", "(base model)" if card.is_base else (card.base or "?")),
        ("Owner", card.owner or "-"),
        ("Visibility", card.visibility),
        ("Live version", str(card.live_version) if card.live_version else "none"),
    ]
    if card.tags:
        fields.append(("Tasks", ", ".join(card.tags)))
    fields.append(("Usage", f"{card.usage_count} answers, {card.rating_up} up / "
                            f"{card.rating_down} down"))
    if card.deployments:
        fields.append(("Deployed in", ", ".join(card.deployments)))
    live = next((v for v in card.versions if v.number == card.live_version), None)
    if live is not None:
        if live.data_text:
            fields.append(("Trained on", f"v{live.number}: {live.data_text}"))
        fields.extend(metric_fields(live.metrics_before, live.metrics_after))
        fields.extend(grounded_fields(live.metrics_after.get("grounded")))
        if live.notes:
            fields.append(("Notes", live.notes))
    if card.knowledge is not None and card.knowledge.entries:
        fields.append(("Answers from", knowledge_line(card.knowledge)))
    if len(card.versions) > 1:
        fields.append(("Versions", ", ".join(f"v{v.number} {v.status}" for v in card.versions)))
    body = card.description or "(no description)"
    if text:
        body = f"{text}\n{body}"
    buttons = () if card.is_base else (Button("Deploy here", f"deploy {card.name}", "primary"),)
    return Reply(title=title or card.name, text=body, fields=tuple(fields), kind=kind,
                 buttons=buttons, card=True, image=image)


def knowledge_line(view: KnowledgeView) -> str:
    """What a model answers from now and when it declines (it may differ from what its tune
    chose: an admin can change the threshold)."""
    docs = f", {len(view.documents)} document(s)" if view.documents else ""
    handoff = f"; hands off with \"{view.handoff}\"" if view.handoff else ""
    return (f"{view.entries} entries{docs}; declines below {view.threshold:.2f} "
            f"({view.threshold_by}){handoff}")


def search_reply(cards: list[ModelCard], words: str) -> Reply:
    if not cards:
        what = f" for {words!r}" if words else ""
        return Reply(title="Search", text=f"No models found{what}. Try fewer words, or "
                                          "`search` alone to list everything you can see.")
    fields = []
    for card in cards:
        kind = "base model" if card.is_base else f"tuned from {card.base}"
        live = f", v{card.live_version}" if card.live_version and not card.is_base else ""
        summary = (card.description or "").strip().splitlines()[0:1]
        fields.append((card.name, f"{kind}{live}, {card.visibility}"
                                  + (f": {_short(summary[0])}" if summary else "")))
    found = f"{len(cards)} model{'s' if len(cards) != 1 else ''}"
    return Reply(title="Search" + (f": {words}" if words else ""),
                 text=f"{found} found. `info NAME` shows a card.", fields=tuple(fields))


def _short(text: str, limit: int = 100) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + "..."


def versions_reply(name: str, versions: list[VersionView]) -> Reply:
    fields = []
    for v in versions:
        when = v.created_at.strftime("%Y-%m-%d %H:%M") if v.created_at else ""
        gate = (v.metrics_after or {}).get("gate")
        if gate:  # a retrained version: what trained it and the figures that let it go live
            metrics = "; ".join(f"{label.lower()} {value}" for label, value in figure_fields(gate))
        else:
            metrics = ", ".join(f"{label} {value}" for label, value in
                                metric_fields(v.metrics_before, v.metrics_after))
        data = f"{v.data_text}." if v.data_text else ""
        fields.append((f"v{v.number} ({v.status})",
                       " ".join(p for p in (when, data, metrics) if p) or v.kind))
    return Reply(title=f"Versions of {name}", fields=tuple(fields),
                 text=f"{len(versions)} version(s). `rollback {name} N` makes one live.")


def job_line(job: JobView) -> str:
    when = job.created_at.strftime("%Y-%m-%d %H:%M") if job.created_at else ""
    extra = f" {job.progress * 100:.0f}%" if job.state == "running" else ""
    return f"{job.kind} {job.model_name} {job.state}{extra} {when}".strip()


def jobs_reply(jobs: list[JobView]) -> Reply:
    if not jobs:
        return Reply(title="Jobs", text="No jobs yet. Start one with `tune NAME` and a Q&A file.")
    return Reply(title="Jobs", text=f"{len(jobs)} job(s). `job ID` shows one.",
                 fields=tuple((f"#{j.id}", job_line(j)) for j in jobs))


def job_reply(job: JobView) -> Reply:
    if job.finished:
        reply = final_reply(job)
        return Reply(title=reply.title, text=reply.text, fields=reply.fields, image=reply.image,
                     buttons=reply.buttons if job.state == "succeeded" else (),
                     kind=reply.kind if job.state != "failed" else "info")
    fields = [("State", job.state), ("Base", job.base_name)]
    if job.params:
        fields.append(("Settings", ", ".join(f"{k}={v}" for k, v in sorted(job.params.items()))))
    for event in job.events[-3:]:
        if event.kind in ("warning", "error"):
            fields.append((event.kind.title(), event.message))
    return Reply(title=f"Job {job.id}: {job.kind} {job.model_name}", text=progress_text(job),
                 fields=tuple(fields), buttons=(Button("Cancel", f"cancel {job.id}", "danger"),))


CHOSEN_BY = {
    "channel": "this channel's model; `/store chat MODEL QUESTION` asks another",
    "workspace": "this workspace's default model; `/store deploy MODEL` picks one for this "
                 "channel",
    "store": "the store's default model, as nothing is deployed here; `/store deploy MODEL` "
             "picks one",
}


def answer_reply(answer: ChatAnswer) -> Reply:
    """A chat answer: its text, which model answered and why (unless it was asked by name),
    and the entries it came from."""
    why = CHOSEN_BY.get(answer.chosen_by)
    version = f" v{answer.version}" if answer.version else ""
    note = f"Answered by {answer.model_name}{version} ({why})." if why else ""
    return Reply(text=answer.text, kind="chat", message_id=answer.message_id, note=note,
                 sources=answer.sources)


def forget_text(report: ForgetReport, account: str) -> str:
    """What forget-me did, item by item, and what it could not undo."""
    uploads = (f"{len(report.uploads)} uploaded file(s) ({', '.join(report.uploads)}) with "
               f"their {report.examples} example(s) and {report.files} stored copies"
               if report.uploads else "no uploaded files")
    lines = [f"Deleted {report.messages} logged message(s) (your questions and the answers "
             f"you got), {report.feedback} vote(s) and correction(s), and {uploads}."]
    if report.gap_questions:
        lines.append(f"Took {report.gap_questions} of your unanswered question(s) out of the "
                     "models' gaps lists.")
    if report.kept_uploads:
        lines.append(f"Kept for now: {', '.join(report.kept_uploads)}, which an unfinished job "
                     "of yours still reads; run forget-me again once it is done.")
    if report.trained:
        lines.append(f"Cannot be undone: {', '.join(report.trained)} were already trained on "
                     "your data; their weights stay as they are.")
    if report.freed_bytes is not None:
        lines.append(f"The store's database was compacted (VACUUM), so no copy stays in the "
                     f"file ({report.freed_bytes // 1024} KB freed).")
    lines.append(f"This covered your account {account} only; run forget-me on each platform "
                 "you use.")
    return "\n".join(lines)


def dataset_reply(report: DatasetReport, name: str) -> Reply:
    split = ", ".join(f"{k} {v}" for k, v in report.split_sizes.items())
    fields = [("File", f"{report.filename} ({report.format})"),
              ("Examples", f"{report.n_examples}" + (f" ({report.n_multi_turn} multi-turn)"
                                                     if report.n_multi_turn else "")),
              ("Split", split)]
    fields += [("Warning", w) for w in report.warnings]
    return Reply(title=f"Dry run: {name}", fields=tuple(fields),
                 text="The file is valid; nothing was trained.", kind="success")


__all__ = ["answer_reply", "card_reply", "search_reply", "versions_reply", "jobs_reply", "job_reply",
           "dataset_reply", "duration", "forget_text"]
