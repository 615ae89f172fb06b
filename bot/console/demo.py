"""`gptstore demo`: the whole loop, unattended, through the console adapter.

Search the store, tune the bundled sample FAQ with small settings (progress, then before/after
metrics), deploy, ask three of the FAQ's questions, and say where the loss plot was saved.
It uses the user's own store (GPTSTORE_HOME) and a demo model name; running it again adds a
new version of that model.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.console.repl import Console
from bot.core.progress import JobWatcher
from engine.errors import InvalidInput

if TYPE_CHECKING:
    from engine.app import Engine

from engine.datasets import SAMPLE_FAQ

DEFAULT_EPOCHS = 8
DEFAULT_BATCH = 4  # 4 steps an epoch on 16 pairs: enough updates to learn the answers
DEFAULT_EXAMPLES = 16  # keeps the demo to a few minutes on a 2-core CPU
QUESTIONS = 3


def sample_pairs(path: Path = SAMPLE_FAQ) -> list[tuple[str, str]]:
    """The sample FAQ's (question, answer) pairs."""
    if not path.is_file():
        raise InvalidInput(f"The sample FAQ is missing ({path}); reinstall gptstore.")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    pairs = []
    for row in rows:
        lowered = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        question = lowered.get("question") or lowered.get("q") or ""
        answer = lowered.get("answer") or lowered.get("a") or ""
        if question and answer:
            pairs.append((question, answer))
    return pairs


def write_pairs(pairs: list[tuple[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer"])
        writer.writerows(pairs)
    return path


def run_demo(engine: "Engine", out: TextIO, *, name: str = "acme-support-demo",
             base: str | None = None, epochs: int | None = None,
             max_examples: int | None = None, watcher: JobWatcher | None = None,
             faq: Path = SAMPLE_FAQ) -> int:
    """Run the demo, writing what a user would see to `out`. 0 when every step worked."""
    pairs = sample_pairs(faq)[: max_examples or DEFAULT_EXAMPLES]
    data_file = write_pairs(pairs, engine.settings.home / "demo" / f"{name}.csv")
    console = Console(engine, input=io.StringIO(), output=out, tty=False,
                      watcher=watcher or JobWatcher(engine, poll_s=1.0, min_interval_s=5.0))

    def step(title: str, line: str):
        out.write(f"\n== {title}\nstore> {line}\n")
        out.flush()
        return console.handle_line(line)

    step("What is in the store", "search")
    options = (f"epochs={epochs or DEFAULT_EPOCHS} batch_size={DEFAULT_BATCH}"
               + (f" base={base}" if base else ""))
    tuned = step(f"Tune {name} on {len(pairs)} pairs of the sample FAQ ({data_file})",
                 f"tune {name} {data_file} {options}")
    if tuned is None or tuned.job_id is None:
        out.write("The demo stopped: the fine-tune did not start (see above).\n")
        return 1
    job = engine.jobs.get(console.caller, tuned.job_id)
    if job.state != "succeeded":
        out.write(f"The demo stopped: job {job.id} ended {job.state}. {job.error}\n")
        return 1
    deployed = step("Deploy it to this console", f"deploy {name}")
    if deployed is None or deployed.is_error:
        return 1
    failures = 0
    for question, expected in pairs[:QUESTIONS]:
        console.history.clear()  # each question on its own, as a new user would ask it
        out.write(f"\nstore> {question}\n")
        reply = console.chat(question)
        out.write(f"   (the FAQ says: {expected})\n")
        failures += int(reply is None or reply.is_error)
    plot = (job.result or {}).get("plot") or (job.result or {}).get("plot_path")
    out.write("\n== Done\n")
    if plot:
        out.write(f"The loss plot was saved to {engine.artifacts.local(plot)}\n")
    out.write(f"{name} stays in your store ({engine.settings.home}); try "
              f"`gptstore chat {name} \"{pairs[0][0]}\"` or `gptstore console`.\n")
    out.flush()
    return 0 if failures == 0 else 1
