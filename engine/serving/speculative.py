"""Speculative decoding: greedy answers, several tokens per forward pass of the full model.

Two ways to guess. With a 4-bit draft (engine.serving.draft), `speculate_with_draft` runs the
draft weights step by step over the row's own KV cache (a draft step reads about a sixth of
the bytes of a full one) and checks the guesses with the full weights in one pass, which
also overwrites the draft's cache entries with exact ones. Without one, prompt lookup:

A support answer often repeats words of its question or context. `propose` guesses the next
tokens by finding the newest earlier place where the last few tokens of the conversation
occurred and copying what followed them there. `speculate` feeds the last token plus that
guess to the decoder in one forward pass (on a memory-bound CPU this costs about one plain
step), keeps the longest prefix the model itself would have produced, adds the model's own
next token, and rewinds the KV cache past the rest. Every kept token is the model's greedy
choice, so the answer is the plain greedy answer; only the number of passes changes.
"""

from __future__ import annotations

from typing import Any

NGRAM = 3  # longest run of recent tokens looked up (shorter ones are tried next)
MIN_NGRAM = 2  # a single matching token guesses too often wrongly to pay for itself
MAX_DRAFT = 4  # most tokens guessed per pass (each costs ~1/7 of a step to verify on a CPU)
DRAFT_TOKENS = 12  # tokens the 4-bit draft guesses per check (it agrees ~99.5% of the time)


def propose(history: list[int], max_draft: int = MAX_DRAFT, ngram: int = NGRAM,
            min_ngram: int = MIN_NGRAM) -> list[int]:
    """The tokens that followed the newest earlier occurrence of the last `n` tokens."""
    size = len(history)
    for n in range(min(ngram, size - 1), min_ngram - 1, -1):
        pattern = history[size - n:]
        first = pattern[0]
        for at in range(size - n - 1, -1, -1):  # newest match first, never the tail itself
            if history[at] == first and history[at:at + n] == pattern:
                follow = history[at + n:at + n + max_draft]
                if follow:
                    return follow
    return []


def speculate(decoder: Any, history: list[int], max_draft: int = MAX_DRAFT) -> list[int]:
    """The next tokens (at least one) of a decoder's only row; history = prompt + answer so
    far, its last token not yet fed. The row then holds all of them but the last, as after
    step(). Only for one row: in a batch, the other rows would wait on this row's guesses."""
    if decoder.rows != 1:
        raise ValueError("speculate() runs a decoder with exactly one row")
    start = decoder.lengths[0]
    room = decoder.max_len - start - 2
    draft = propose(history, min(max_draft, room)) if room > 0 else []
    if not draft:
        return decoder.step([history[-1]])
    predicted = decoder.extend(0, [history[-1], *draft])
    kept = 0
    while kept < len(draft) and draft[kept] == predicted[kept]:
        kept += 1
    decoder.rewind(0, start + 1 + kept)
    return predicted[:kept + 1]


def speculate_with_draft(decoder: Any, draft: Any, last: int,
                         max_draft: int = DRAFT_TOKENS) -> list[int]:
    """Like `speculate`, with the guesses made by the draft weights from `last` (the row's
    newest token, not yet fed): up to `max_draft` draft steps (stopping at an end token), one
    full pass over them, the agreeing prefix kept."""
    if decoder.rows != 1:
        raise ValueError("speculate_with_draft() runs a decoder with exactly one row")
    start = decoder.lengths[0]
    count = min(max_draft, decoder.max_len - start - 2)
    if count <= 0:
        return decoder.step([last])
    guess = [last]
    while len(guess) <= count and (len(guess) == 1 or guess[-1] not in decoder.stop):
        guess.append(decoder.step([guess[-1]], draft=draft)[0])
    decoder.rewind(0, start)
    predicted = decoder.extend(0, guess)
    kept = 0
    while kept < len(guess) - 1 and guess[kept + 1] == predicted[kept]:
        kept += 1
    decoder.rewind(0, start + 1 + kept)
    if kept and guess[kept] in decoder.stop:  # the answer ended inside the guess
        return guess[1:kept + 1]
    return [*guess[1:kept + 1], predicted[kept]]


def greedy_speculative(model: Any, prompt: list[int], max_new_tokens: int,
                       adapter: Any = None, max_draft: int | None = None,
                       draft: Any = None) -> list[int]:
    """One prompt, greedy, with prompt lookup (or `draft`, engine.serving.draft weights): the
    tokens `greedy()` (and `generate`) give."""
    from engine.serving.decoder import BatchDecoder, eos_ids

    stop = eos_ids(model)
    limit = getattr(model.config, "max_position_embeddings", 2048)
    decoder = BatchDecoder(model, max_rows=1, max_len=min(limit, len(prompt) + max_new_tokens + 1))
    tokens = [decoder.add(prompt, adapter)]
    max_draft = max_draft or (DRAFT_TOKENS if draft is not None else MAX_DRAFT)
    while tokens[-1] not in stop and len(tokens) < max_new_tokens:
        if draft is not None:
            ahead = speculate_with_draft(decoder, draft, tokens[-1],
                                         min(max_draft, max_new_tokens - len(tokens) - 1))
        else:
            ahead = speculate(decoder, prompt + tokens, max_draft)
        for token in ahead:
            tokens.append(token)
            if token in stop or len(tokens) >= max_new_tokens:
                break
    return tokens
