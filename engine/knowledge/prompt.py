"""Retrieved entries as typed values, and how they go into a model's context.

API NOTE (the contract between the chat path and training; engineer 16a owns it, tell them
before changing it):

    from engine.knowledge.prompt import Passage, build_prompt_messages

    Passage(ref="faq.csv, row 12", question="How do I reset my password?",
            text="Click Forgot password ...", score=0.83, origin="file")
        origin: file (a tuned file's Q&A row) | document (a passage of /store docs) |
                gap (an answered gap) | curated (an approved curated pair)
        score: 0..1, higher is closer; comparable to the model's decline threshold.

    build_prompt_messages(system, history, question, passages) -> list[dict]
        system: the model's system prompt ("" for none); history: earlier turns as
        {"role": "user"|"assistant", "content"}; passages: best first (may be empty: the
        question then goes in as plain text, exactly as before grounding, so the model's own
        trained knowledge still answers). Returns chat messages for apply_chat_template.
        Training (16b) builds its examples with this same function: the right entry among
        distractors, and sometimes without it.

    The service (engine/knowledge/service.py):
        k = Knowledge.open(db, clock, settings.cache_dir)   # engine.knowledge on the Engine;
            # in a job body: Knowledge.open(ctx.db, clock, ctx.settings.cache_dir)
            # (Knowledge(db, clock) without an embedder: keyword ranking, for tests)
        k.index_examples(model_id, version, file_name, rows) -> int
            rows: iterable of (row_number, question, answer); replaces that file's entries
            of that version (version None: entries every version answers from).
        k.add_document(model_id, file_name, text) -> int  (passages stored)
        k.search(model_id, version, question, k=4) -> list[Passage]   (best first)
        k.score(model_id, version, question) -> float     (best score, 0 when nothing)
        k.set_threshold(model_id, value, chosen_by="tuning"|"admin")
        k.threshold(model_id) -> float                     (DEFAULT_THRESHOLD when unset)
        k.add_answered_gap(model_id, question, answer, gap_id=None) -> int (entry id)
        k.method -> "embedding" | "keyword"  (keyword when the embedding package is absent)
        k.retrieve(model_id, version, question) -> Retrieval(passages, best, threshold,
            has_knowledge) with .in_scope and .sources: what the chat path uses
        A version answers from its own file's entries (index_examples with its number) plus
        every version-None entry; a version with no file entries of its own (a retrain's)
        answers from the newest earlier version's. Keys <= 0 (staging) are taken as given.
        Scores are comparable to thresholds only within one method: tune with the engine's
        k.method and store the threshold with set_threshold(..., chosen_by="tuning").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

ORIGINS = ("file", "document", "gap", "curated")

# The instruction that comes with the entries. Kept short: a 135M model copies better from a
# plain list than from a long policy.
CONTEXT_HEADER = "Answer the question using these entries from the team's files:"


@dataclass(frozen=True)
class Passage:
    """One entry of a model's knowledge, as retrieved for a question."""

    ref: str  # where it is: "faq.csv, row 12", "guide.md, passage 3", "gap 7"
    question: str  # the entry's question (a document passage's heading)
    text: str  # the entry's answer, or the passage
    score: float  # retrieval score, 0..1, higher is closer
    origin: str  # file|document|gap|curated


def context_block(passages: Sequence[Passage]) -> str:
    """The entries as the text that precedes the question."""
    lines = [CONTEXT_HEADER]
    for number, passage in enumerate(passages, start=1):
        lines.append(f"[{number}] {passage.question}".rstrip())
        lines.append(passage.text.strip())
    return "\n".join(lines)


def user_turn(question: str, passages: Sequence[Passage]) -> str:
    """The last user message: the question alone, or the entries then the question."""
    question = question.strip()
    if not passages:
        return question
    return f"{context_block(passages)}\n\nQuestion: {question}"


def build_prompt_messages(system: str, history: Sequence[dict[str, str]] | None,
                          question: str, passages: Sequence[Passage]) -> list[dict[str, str]]:
    """The chat messages for one turn: system prompt, earlier turns, then the question with
    the retrieved entries in front of it (best first)."""
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages += [{"role": m["role"], "content": m["content"]} for m in history or ()
                 if m.get("role") in ("user", "assistant") and m.get("content")]
    messages.append({"role": "user", "content": user_turn(question, passages)})
    return messages
