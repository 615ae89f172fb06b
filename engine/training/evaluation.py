"""How good a model's answers are: SQuAD-style exact match and token F1, and validation loss."""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any, Sequence

from engine.training.encoding import Messages, encode_all
from engine.training.loop import mean_answer_loss
from engine.training.threads import cpu_threads

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (as SQuAD scores answers)."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when both read the same after normalising, else 0.0."""
    return float(normalize(prediction) == normalize(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of word precision and recall after normalising (1.0 when both empty)."""
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def split_example(messages: Messages) -> tuple[list[dict[str, str]], str]:
    """The prompt (everything before the last assistant turn) and that turn's text."""
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def generate_answers(model: Any, tokenizer: Any, prompts: Sequence[Sequence[dict]],
                     max_new_tokens: int = 128, batch_size: int = 16,
                     method: str = "auto",
                     copy_from: Sequence[Sequence[str]] | None = None) -> list[str]:
    """Greedy answers to chat prompts.

    method "auto": through the batched decoder (engine.serving.batch, continuous batching)
    where it runs the model, else transformers `generate` (said once in the log);
    "generate": always `generate`, in left-padded batches of similar length.
    copy_from: per prompt, the entries' texts an answer is held to once it starts giving one
    (engine.serving.copying, as chat answers); the batched decoder only."""
    if method not in ("auto", "generate"):
        raise ValueError(f"method must be auto or generate, not {method!r}")
    if method == "auto":
        from engine.serving.batch import fast_path, greedy_answers

        fast, adapter = fast_path(model)
        if fast:
            device = next(model.parameters()).device
            ids = [tokenizer(tokenizer.apply_chat_template(list(p), tokenize=False,
                                                           add_generation_prompt=True),
                             add_special_tokens=False)["input_ids"] for p in prompts]
            locks = None
            if copy_from is not None:
                from engine.serving.copying import CopyLock, source_tokens

                locks = [CopyLock(source_tokens(tokenizer, texts)) for texts in copy_from]
            was_training = model.training
            model.eval()
            try:
                with cpu_threads(device):
                    out = greedy_answers(model, ids, max_new_tokens, {tokenizer.eos_token_id},
                                         batch_size=batch_size, adapter=adapter, copy=locks)
            finally:
                model.train(was_training)
            return [tokenizer.decode(t, skip_special_tokens=True).strip() for t in out]
    return _generate_answers(model, tokenizer, prompts, max_new_tokens, batch_size)


def _generate_answers(model: Any, tokenizer: Any, prompts: Sequence[Sequence[dict]],
                      max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy answers through transformers `generate`, in left-padded batches."""
    import torch

    device = next(model.parameters()).device
    texts = [tokenizer.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True)
             for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    answers: list[str] = [""] * len(texts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    try:
        for k in range(0, len(order), batch_size):
            chunk = order[k:k + batch_size]
            enc = tokenizer([texts[i] for i in chunk], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            with torch.inference_mode(), cpu_threads(device):
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            for row, i in enumerate(chunk):
                answers[i] = tokenizer.decode(new[row], skip_special_tokens=True).strip()
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def evaluate(model: Any, tokenizer: Any, examples: Sequence[Messages],
             max_new_tokens: int = 128, *, batch_size: int = 16,
             with_answers: bool = False, method: str = "auto") -> dict[str, Any]:
    """Mean exact match and token F1 of greedy answers against the examples' last answers.

    Returns {"exact_match", "token_f1", "n"} (plus "answers" when asked: question,
    reference, answer and f1 of each example). `method`: see generate_answers."""
    pairs = [split_example(ex) for ex in examples]
    if not pairs:
        return {"exact_match": 0.0, "token_f1": 0.0, "n": 0}
    answers = generate_answers(model, tokenizer, [p for p, _ in pairs], max_new_tokens,
                               batch_size, method)
    f1 = [token_f1(a, ref) for a, (_, ref) in zip(answers, pairs)]
    em = [exact_match(a, ref) for a, (_, ref) in zip(answers, pairs)]
    result: dict[str, Any] = {"exact_match": round(sum(em) / len(em), 4),
                              "token_f1": round(sum(f1) / len(f1), 4), "n": len(pairs)}
    if with_answers:
        result["answers"] = [
            {"question": prompt[-1]["content"] if prompt else "", "reference": ref,
             "answer": answer, "f1": round(score, 4)}
            for (prompt, ref), answer, score in zip(pairs, answers, f1)]
    return result


def validation_loss(model: Any, tokenizer: Any, examples: Sequence[Messages],
                    max_length: int = 1024, batch_size: int = 8) -> float:
    """Mean cross-entropy per answer token (prompts carry no loss), without gradients."""
    encoded = encode_all(tokenizer, examples, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return mean_answer_loss(model, encoded, pad_id, batch_size) if encoded else float("nan")
