"""Evaluation: SQuAD-style scores, greedy answers, validation loss and the loss plot."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.training.evaluation import (
    evaluate,
    exact_match,
    normalize,
    token_f1,
    validation_loss,
)
from engine.training.plots import loss_plot


def test_scores_ignore_case_punctuation_and_articles() -> None:
    assert normalize("The  Answer, is: an Apple!") == "answer is apple"
    assert exact_match("Paris.", "paris") == 1.0
    assert exact_match("Paris, France", "Paris") == 0.0
    assert token_f1("The capital is Paris", "Paris is the capital") == 1.0
    assert token_f1("Paris", "It is Paris") == pytest.approx(2 * 1 * 1 / 3 / (1 + 1 / 3))
    assert token_f1("London", "Paris") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "Paris") == 0.0


def test_evaluate_scores_greedy_answers_in_batches(tiny_base_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir)
    examples = [[{"role": "user", "content": f"Question number {i}" + "?" * i},
                 {"role": "assistant", "content": f"Answer {i}"}] for i in range(5)]
    one_by_one = [evaluate(model, tokenizer, [ex], max_new_tokens=6, with_answers=True)
                  for ex in examples]
    together = evaluate(model, tokenizer, examples, max_new_tokens=6, batch_size=5,
                        with_answers=True)
    assert together["n"] == 5 and 0.0 <= together["token_f1"] <= 1.0
    # left padding in a batch must not change a greedy answer
    assert [a["answer"] for a in together["answers"]] == [
        r["answers"][0]["answer"] for r in one_by_one]
    assert tokenizer.padding_side == "right"
    loss = validation_loss(model, tokenizer, examples)
    assert 5.0 < loss < 20.0  # an untrained model over a 49k vocabulary: about ln(49152)


def test_the_batched_decoder_gives_generate_answers_with_and_without_lora(
        tiny_base_dir: Path) -> None:
    """Evaluation runs through the batched decoder (continuous batching, the tuned LoRA read
    in place); its greedy answers are those of plain `generate`, one question at a time."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.training.config import LLAMA_LINEAR

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir)
    examples = [[{"role": "user", "content": f"Where is office {i}?" + " Please." * (i % 3)},
                 {"role": "assistant", "content": f"Office {i} is on floor {i}."}]
                for i in range(7)]
    base_slow = [evaluate(model, tokenizer, [ex], max_new_tokens=10, with_answers=True,
                          method="generate")["answers"][0]["answer"] for ex in examples]
    base_fast = evaluate(model, tokenizer, examples, max_new_tokens=10, batch_size=3,
                         with_answers=True)
    assert [a["answer"] for a in base_fast["answers"]] == base_slow
    torch.manual_seed(1)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(
        LLAMA_LINEAR), task_type="CAUSAL_LM"))
    with torch.no_grad():  # B starts at zero; make the adapter change the answers
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    slow = [evaluate(peft_model, tokenizer, [ex], max_new_tokens=10, with_answers=True,
                     method="generate")["answers"][0]["answer"] for ex in examples]
    fast = evaluate(peft_model, tokenizer, examples, max_new_tokens=10, batch_size=3,
                    with_answers=True)
    assert slow != base_slow  # the adapter is in the answers...
    assert [a["answer"] for a in fast["answers"]] == slow  # ...of both paths alike
    with peft_model.disable_adapter():  # switched off: the base model's answers
        assert [evaluate(peft_model, tokenizer, [ex], max_new_tokens=10, with_answers=True)[
            "answers"][0]["answer"] for ex in examples[:2]] == base_slow[:2]
    peft_model.unload()


def test_loss_plot_is_a_png(tmp_path: Path) -> None:
    history = [{"epoch": 1, "train_loss": 3.0, "val_loss": 3.2},
               {"epoch": 2, "train_loss": 2.0, "val_loss": 2.9},
               {"epoch": 3, "train_loss": 1.2, "val_loss": None}]
    path = loss_plot(history, tmp_path / "plots" / "loss.png", best_epoch=2)
    data = path.read_bytes()
    assert path.exists() and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
