"""Holding an answer to the entry it started to give (engine.serving.copying): the lock on
its own, and through the chat runner's two paths (alone, with the forced run fed in one
pass; and in a batch, one token per step)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.serving.copying import CopyLock, source_tokens
from engine.serving.runner import ChatRunner
from engine.settings import Settings
from engine.views import Target
from engine.weights import ModelHub

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_the_rest_of_the_entry_follows_once_its_first_tokens_are_given() -> None:
    lock = CopyLock([[1, 2, 3, 4, 5, 6, 7], [9, 9, 8, 8, 7]], commit=3)
    assert lock.forced([0, 1, 2]) == []  # two tokens of it: not yet
    assert lock.forced([0, 1, 2, 3]) == [4, 5, 6, 7]
    assert lock.forced([3, 4, 5], limit=2) == [6, 7]  # from the middle too
    assert lock.forced([5, 6, 7]) == []  # at its end: the model goes on by itself
    assert lock.forced([2, 3, 9]) == []  # the answer's own words


def test_words_two_entries_share_do_not_choose_between_them() -> None:
    lock = CopyLock([[1, 2, 3, 4, 5], [1, 2, 3, 8, 9]], commit=3)
    assert lock.forced([1, 2, 3]) == []
    assert lock.forced([1, 2, 3, 8]) == [9]


def test_an_empty_or_short_entry_holds_nothing() -> None:
    assert not CopyLock([[1, 2]], commit=3)
    assert CopyLock([[1, 2]], commit=3).forced([1, 2]) == []
    with pytest.raises(ValueError):
        CopyLock([[1, 2, 3]], commit=0)


@pytest.fixture
def hub(settings: Settings) -> ModelHub:
    return ModelHub(settings)


def target(base: Path) -> Target:
    return Target(model_name="m", base_name="tiny", base_path=str(base), adapter_path=None,
                  version=1, version_id=1, system_prompt="")


def entry_after_own_start(hub: ModelHub, base: Path) -> tuple[str, list[int], list[int]]:
    """An entry that begins with the model's own first answer tokens and goes on otherwise:
    (its text, the model's plain answer, the entry's tokens)."""
    runner = ChatRunner(hub, hub.settings)
    plain = runner.answer(target(base), QUESTION, max_new_tokens=24)
    runner.close()
    _, tokenizer = hub.load(str(base))
    own = tokenizer(plain.text, add_special_tokens=False)["input_ids"]
    text = tokenizer.decode(own[:6]) + " Paris is the capital and the largest city of France."
    tokens = source_tokens(tokenizer, [text])[0]
    assert tokens[:4] == own[:4], "the entry must start with the model's own first tokens"
    assert tokens[:len(own)] != own, "the entry must go on differently from the model"
    return text, own, tokens


def test_alone_the_answer_gives_the_rest_of_the_entry(settings: Settings, hub: ModelHub,
                                                      tiny_base_dir: Path) -> None:
    text, own, tokens = entry_after_own_start(hub, tiny_base_dir)
    runner = ChatRunner(hub, settings)
    held = runner.answer(target(tiny_base_dir), QUESTION, max_new_tokens=len(tokens),
                         copy_from=[text])
    free = runner.answer(target(tiny_base_dir), QUESTION, max_new_tokens=24)
    runner.close()
    assert held.text.startswith(text.strip())
    _, tokenizer = hub.load(str(tiny_base_dir))
    assert free.text == tokenizer.decode(own, skip_special_tokens=True).strip()  # unchanged


def test_in_a_batch_only_the_row_with_the_entry_is_held(settings: Settings, hub: ModelHub,
                                                        tiny_base_dir: Path) -> None:
    text, own, tokens = entry_after_own_start(hub, tiny_base_dir)
    gate, sizes = threading.Event(), []

    def hold_first_step(rows: int) -> None:
        sizes.append(rows)
        gate.wait(timeout=60)

    runner = ChatRunner(hub, settings, before_step=hold_first_step)
    futures = [runner.submit(target(tiny_base_dir), QUESTION, max_new_tokens=len(tokens),
                             copy_from=[text]),
               runner.submit(target(tiny_base_dir), QUESTION, max_new_tokens=len(tokens))]
    gate.set()
    held, free = [f.result(timeout=60).text for f in futures]
    runner.close()
    assert max(sizes) == 2
    assert held.startswith(text.strip())
    assert not free.startswith(text.strip())
