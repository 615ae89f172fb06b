"""Greedy answers to many prompts at once through BatchDecoder (continuous batching): what a
job's evaluation uses instead of transformers `generate`, one left-padded batch at a time.

Rows join the batch as others finish, so no row waits for the longest answer of its batch
and no step computes padding. The model may hold PEFT LoRA layers (a model being tuned):
their weights are read in place (`adapter_from_model`) and applied by the decoder the way
PEFT applies them, B(A(x)) * scaling, so the answers are those of `generate` on the same
model, token for token, under greedy decoding (tests/engine/training/test_evaluation.py).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch

from engine.errors import ModelUnavailable
from engine.serving.decoder import BatchDecoder, supports
from engine.serving.lora import adapter_from_model

log = logging.getLogger("gptstore.serving")
_SAID: set[str] = set()  # model types already told to use the general path (said once)


def causal_model(model: Any) -> Any:
    """The transformers model under a PeftModel (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def fast_path(model: Any) -> tuple[bool, Any]:
    """(True, adapter) when BatchDecoder can answer for `model` with its active LoRA (None:
    no LoRA); (False, reason) otherwise, logged once per reason."""
    causal = causal_model(model)
    kind = getattr(causal.config, "model_type", "unknown")
    if not supports(causal):
        reason = f"the batched decoder does not run {kind} models"
    else:
        try:
            return True, adapter_from_model(model, causal.get_input_embeddings().weight.dtype)
        except ModelUnavailable as exc:
            reason = f"the batched decoder cannot apply this LoRA ({exc})"
    if reason not in _SAID:
        _SAID.add(reason)
        log.info("answering with transformers generate: %s", reason)
    return False, reason


@torch.inference_mode()
def greedy_answers(model: Any, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                   stop: set[int], *, batch_size: int = 16, adapter: Any = None,
                   copy: Sequence[Any] | None = None) -> list[list[int]]:
    """Greedy continuations of token-id prompts (each ends at its first `stop` token,
    excluded, or after max_new_tokens), `batch_size` rows at a time.

    copy: per prompt, a CopyLock (engine.serving.copying) or None: once an answer has begun
    to give one of its entries word for word, the rest of that entry is its next tokens."""
    causal = causal_model(model)
    if not prompts:
        return []
    limit = getattr(causal.config, "max_position_embeddings", 2048)
    longest = max(len(p) for p in prompts)
    decoder = BatchDecoder(causal, max_rows=max(1, batch_size),
                           max_len=min(limit, longest + max_new_tokens + 1))
    out: list[list[int]] = [[] for _ in prompts]
    waiting = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # longest first
    last: list[int] = []  # each row's newest token

    def finish(row: int, token: int) -> bool:
        index = decoder.payloads[row]
        lock = copy[index] if copy else None
        if lock:
            forced = lock.forced(out[index], 1)
            if forced:  # the row is fed the entry's token instead of the model's
                token = last[row] = forced[0]
        ended = token in stop
        if not ended:
            out[index].append(token)
        return (ended or len(out[index]) >= max_new_tokens
                or decoder.lengths[row] + 1 >= decoder.max_len)

    while waiting or decoder.rows:
        while waiting and decoder.rows < decoder.max_rows:
            index = waiting.pop()
            prompt = list(prompts[index])[-(decoder.max_len - 1):]
            first = decoder.add(prompt, adapter, index)
            last.append(first)
            if finish(decoder.rows - 1, first):
                decoder.drop(decoder.rows - 1)
                last.pop()
        if not decoder.rows:
            continue
        tokens = decoder.step(last)
        last = list(tokens)
        for row in reversed(range(decoder.rows)):
            if finish(row, tokens[row]):
                decoder.drop(row)  # the last row moves into its place
                last[row] = last[-1]
                last.pop()
    return out
