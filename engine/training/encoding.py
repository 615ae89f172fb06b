"""Conversations as training rows: the chat template's token ids, labelled on the answers only."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

IGNORE = -100  # label of a position that carries no loss (prompt, padding)
Messages = Sequence[Mapping[str, str]]
Encoded = tuple[list[int], list[int]]  # (input_ids, labels)


def encode_chat(tokenizer: Any, messages: Messages, max_length: int = 1024) -> Encoded:
    """Token ids of a conversation in the model's chat template, labelled only on assistant
    turns (each turn's text and its end-of-turn token); everything else is IGNORE.

    The tail after the last labelled token is dropped: it cannot change the loss."""
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or i == 0:
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False,
                                               add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if text.startswith(upto) and upto.startswith(prompt):
            spans.append((len(prompt), len(upto)))
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])[:max_length]
    labels = [IGNORE] * len(ids)
    for j, (start, _end) in enumerate(encoding["offset_mapping"][: len(ids)]):
        if any(a <= start < b for a, b in spans):
            labels[j] = ids[j]
    last = max((j for j, label in enumerate(labels) if label != IGNORE), default=-1)
    return ids[: last + 1], labels[: last + 1]


def encode_all(tokenizer: Any, examples: Sequence[Messages], max_length: int) -> list[Encoded]:
    """Encoded examples, keeping those with at least one answer token to predict."""
    out = [encode_chat(tokenizer, ex, max_length) for ex in examples]
    return [e for e in out if any(label != IGNORE for label in e[1][1:])]
