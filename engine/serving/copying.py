"""Copying an entry once the answer has started to give it.

A support bot's answer to an FAQ question should be the FAQ's answer as the team wrote it. A
135M model given the right entry often begins to copy it and then drifts ("Restart the app,
then ..." becomes "Restart your phone, then reinstall ..."). `CopyLock` holds it to the entry
it chose: once the answer's last `commit` tokens occur in exactly one of the entries in its
context, the rest of that entry is the answer's next tokens. Which entry to give, and whether
to give one at all, stays the model's choice (nothing is forced until it has written `commit`
tokens of one entry, word for word); an answer in its own words is left as it is.

The forced tokens go through the model like any others (the KV cache holds them), so the
model goes on after the entry as it would after having written it: usually it stops.
Forced runs are known in advance, so the chat runner feeds them in one forward pass.
"""

from __future__ import annotations

from typing import Sequence

# Tokens of one entry, word for word, before the rest of it is given. Measured on the sample
# FAQ's rephrasings with one adapter (docs/grounding.md): 2 gave token F1 0.786, 3 gave
# 0.769, 4 gave 0.762. Two tokens that several entries share ("Yes.") decide nothing.
COMMIT_TOKENS = 2


class CopyLock:
    """The entries (token ids) an answer may be held to."""

    def __init__(self, sources: Sequence[Sequence[int]], commit: int = COMMIT_TOKENS) -> None:
        if commit < 1:
            raise ValueError(f"commit must be at least 1, not {commit}")
        self.sources = [list(s) for s in sources if len(s) > commit]
        self.commit = commit

    def __bool__(self) -> bool:
        return bool(self.sources)

    def forced(self, answer: Sequence[int], limit: int = 1 << 30) -> list[int]:
        """The tokens that follow the answer's last `commit` tokens in the one entry that
        holds them (up to `limit`); [] when no entry, or more than one place, holds them, or
        the entry ends there."""
        if len(answer) < self.commit or limit <= 0:
            return []
        tail = list(answer[-self.commit:])
        first = tail[0]
        found: list[int] | None = None
        for source in self.sources:
            for at in range(len(source) - self.commit + 1):
                if source[at] == first and source[at:at + self.commit] == tail:
                    if found is not None:
                        return []  # two places continue differently: not decided yet
                    found = source[at + self.commit:]
        return list(found[:limit]) if found else []


def source_tokens(tokenizer: object, texts: Sequence[str]) -> list[list[int]]:
    """The entries' texts as token ids, tokenised the way they stand in the prompt (each at the
    start of its own line)."""
    out: list[list[int]] = []
    for text in texts:
        text = (text or "").strip()
        if text:
            out.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))  # type: ignore
    return out
