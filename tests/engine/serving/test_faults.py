"""One bad input fails only itself: a corrupt adapter in a mixed batch, a near-window
conversation in a full batch (KV cache memory, reported), one workspace flooding the
queue, a conversation past its context budget. On the tiny model."""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.errors import Busy, ModelUnavailable
from engine.serving.runner import ChatRunner
from engine.settings import Settings
from engine.weights import ModelHub
from tests.engine.serving.test_runner import QUESTION, adapters, hub, target  # noqa: F401

MB = 1024 * 1024


class Gate:
    """A before_step hook that holds the first step until opened, and records batch sizes."""

    def __init__(self) -> None:
        self.open, self.entered, self.sizes = threading.Event(), threading.Event(), []

    def __call__(self, rows: int) -> None:
        self.sizes.append(rows)
        self.entered.set()
        self.open.wait(timeout=120)


def corrupt(adapter: Path, folder: Path, how: str) -> Path:
    """A copy of `adapter` broken in one way: damaged file, NaN weights, or a misfit shape."""
    shutil.copytree(adapter, folder)
    weights = folder / "adapter_model.safetensors"
    if how == "damaged":
        weights.write_bytes(weights.read_bytes()[: 200])
        return folder
    tensors = load_file(str(weights))
    key = sorted(k for k in tensors if "lora_B" in k)[0]
    if how == "nan":
        tensors[key] = torch.full_like(tensors[key], float("nan"))
    else:  # an adapter trained for a wider model
        tensors[key] = torch.zeros(tensors[key].shape[0] + 8, tensors[key].shape[1])
    save_file(tensors, str(weights))
    return folder


@pytest.mark.parametrize("how", ["damaged", "nan", "misfit"])
def test_a_corrupt_adapter_fails_only_its_own_request_at_once(
        settings: Settings, hub: ModelHub, tiny_base_dir: Path,  # noqa: F811
        adapters: list[Path], tmp_path: Path, how: str) -> None:  # noqa: F811
    good, plain = target(tiny_base_dir, adapters[0]), target(tiny_base_dir)
    bad = replace(target(tiny_base_dir, corrupt(adapters[1], tmp_path / "broken", how)),
                  model_name="broken", version=3)
    alone = ChatRunner(hub, settings)
    expected = [alone.answer(t, QUESTION, max_new_tokens=10).text for t in (good, plain)]
    alone.close()

    gate, hold = Gate(), threading.Event()
    runner = ChatRunner(hub, settings, before_step=gate)
    try:
        runner.call(lambda: hold.wait(timeout=120))  # the worker waits: all three queue first
        first = runner.submit(good, QUESTION, max_new_tokens=10)
        broken = runner.submit(bad, QUESTION, max_new_tokens=10)
        second = runner.submit(plain, QUESTION, max_new_tokens=10)
        hold.set()
        assert gate.entered.wait(timeout=120)
        # At once: refused while the batch's first step is still held, not at the timeout.
        error = broken.exception(timeout=60)
        assert not gate.open.is_set()
        assert isinstance(error, ModelUnavailable)
        reason = {"damaged": "its adapter files are missing or damaged",
                  "nan": "its adapter holds invalid numbers (NaN or infinity)",
                  "misfit": "its adapter does not fit the base model"}[how]
        assert str(error).startswith(f"'broken' v3 cannot answer: {reason}")
        assert str(error).endswith("roll back to another version (`/store versions broken`) "
                                   "or retrain it.")
        assert str(tmp_path) not in str(error)  # no server paths in a chat reply
        gate.open.set()
        assert [first.result(timeout=120).text, second.result(timeout=120).text] == expected
        assert gate.sizes[0] == 2  # the others shared a batch, without the broken one
        assert runner.loaded_adapters(str(tiny_base_dir)) == [str(adapters[0])]
        with pytest.raises(ModelUnavailable, match="'broken' v3 cannot answer"):
            runner.answer(bad, QUESTION, max_new_tokens=4, timeout=30)  # again, at once
    finally:
        gate.open.set()
        runner.close()


def near_window(tokenizer, window: int, reserve: int) -> list[dict[str, str]]:
    """A conversation that fills the context window but for `reserve` tokens."""
    turns: list[dict[str, str]] = []
    while True:
        grown = turns + [{"role": "user", "content": f"Tell me about item {len(turns)} " * 6},
                         {"role": "assistant", "content": f"Item {len(turns)} is fine. " * 6}]
        size = len(tokenizer.apply_chat_template(grown + QUESTION, add_generation_prompt=True,
                                                 tokenize=True, return_dict=False))
        if size > window - reserve:
            return turns + QUESTION
        turns = grown


def test_a_near_window_conversation_in_a_full_batch_keeps_the_cache_in_budget(
        settings: Settings, hub: ModelHub, tiny_base_dir: Path) -> None:  # noqa: F811
    """Before: the KV cache became rows x window (16 x 2048 positions here, 16 MiB for the
    tiny model; 6 GiB for SmolLM2-135M at its 8192) and never shrank. Now it stays within
    GPTSTORE_KV_CACHE_MB, the long conversation waits for room, and the cache is freed when
    the batch empties. Figures for the real model: docs/serving.md."""
    budget = 4 * MB
    settings = settings.with_(max_batch=16, kv_cache_bytes=budget, speculation="off")
    model, tokenizer = hub.load(str(tiny_base_dir))
    window = model.config.max_position_embeddings
    per_token = 2 * model.config.num_hidden_layers * model.config.num_key_value_heads * (
        model.config.hidden_size // model.config.num_attention_heads) * 4
    long_talk = near_window(tokenizer, window, reserve=24)
    base = str(tiny_base_dir)

    alone = ChatRunner(hub, settings)
    expected_long = alone.answer(target(tiny_base_dir), long_talk, max_new_tokens=8).text
    expected_short = alone.answer(target(tiny_base_dir), QUESTION, max_new_tokens=8).text
    alone.close()

    gate, hold = Gate(), threading.Event()
    runner = ChatRunner(hub, settings, before_step=gate)
    try:
        runner.call(lambda: hold.wait(timeout=120))  # the worker waits: all of them queue first
        shorts = [runner.submit(target(tiny_base_dir), QUESTION, max_new_tokens=8)
                  for _ in range(15)]
        long_one = runner.submit(target(tiny_base_dir), long_talk, max_new_tokens=8)
        hold.set()
        assert gate.entered.wait(timeout=120)
        gate.open.set()
        assert long_one.result(timeout=300).text == expected_long
        assert {f.result(timeout=300).text for f in shorts} == {expected_short}
        # read on the worker thread, between steps: after the last row was dropped
        now, peak = runner.call(lambda: runner.kv_cache(base)).result(timeout=60)
        old_peak = 16 * window * per_token  # what the cache grew to before (and kept)
        print(f"\nKV cache peak, 15 short + 1 near-window conversation, batch of 16: "
              f"{peak / MB:.2f} MiB (budget {budget / MB:.0f} MiB; before: {old_peak / MB:.0f} MiB)")
        assert max(gate.sizes) == 15  # the short ones filled the batch
        assert 0 < peak <= budget < old_peak
        assert now == 0  # freed with the last row
    finally:
        gate.open.set()
        runner.close()


def test_a_conversation_past_its_context_budget_loses_its_oldest_turns(
        settings: Settings, hub: ModelHub, tiny_base_dir: Path) -> None:  # noqa: F811
    model, tokenizer = hub.load(str(tiny_base_dir))
    long_talk = near_window(tokenizer, model.config.max_position_embeddings, reserve=24)
    runner = ChatRunner(hub, settings.with_(context_tokens=128, speculation="off"))
    try:
        answer = runner.answer(target(tiny_base_dir), long_talk, max_new_tokens=8)
        _, peak = runner.call(lambda: runner.kv_cache(str(tiny_base_dir))).result(timeout=60)
    finally:
        runner.close()
    per_token = 2 * model.config.num_hidden_layers * model.config.num_key_value_heads * (
        model.config.hidden_size // model.config.num_attention_heads) * 4
    assert answer.tokens >= 1
    assert 0 < peak <= 256 * per_token  # 128 + 8 new tokens, not the window's 2048


def test_one_workspace_cannot_make_the_others_busy(settings: Settings, hub: ModelHub,  # noqa: F811
                                                   tiny_base_dir: Path) -> None:
    gate, done = Gate(), []
    runner = ChatRunner(hub, settings.with_(queue_size=8, max_batch=1, speculation="off"),
                        before_step=gate)
    flood = replace(target(tiny_base_dir), tenant="slack:TA")
    other = replace(flood, tenant="slack:TB")
    try:
        running = runner.submit(flood, QUESTION, max_new_tokens=2)
        assert gate.entered.wait(timeout=120)
        queued = [runner.submit(flood, QUESTION, max_new_tokens=2) for _ in range(4)]
        with pytest.raises(Busy, match="busy with this workspace's other questions"):
            runner.submit(flood, QUESTION, max_new_tokens=2)  # A holds half the line
        theirs = runner.submit(other, QUESTION, max_new_tokens=2)  # B still gets in
        for name, future in [("A", f) for f in queued] + [("B", theirs)]:
            future.add_done_callback(lambda _, name=name: done.append(name))
        gate.open.set()
        for future in [running, *queued, theirs]:
            assert future.result(timeout=120).tokens == 2
        assert done.index("B") <= 1  # taken in turn, not after all of A's line
    finally:
        gate.open.set()
        runner.close()
