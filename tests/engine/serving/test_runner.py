"""The chat runner and its decode loop, on the tiny model with random LoRA adapters."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import torch

from engine.errors import Busy, InvalidInput, StoreError
from engine.serving.decoder import greedy
from engine.serving.lora import load_lora
from engine.serving.runner import ChatRunner, build_prompt, on_loop
from engine.settings import Settings
from engine.views import Target
from engine.weights import ModelHub

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def make_adapter(base: Path, folder: Path, seed: int, rank: int = 4,
                 modules: str | list[str] = "all-linear") -> Path:
    """A random (non-zero) LoRA adapter for the tiny model, saved by PEFT."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=modules,
                        init_lora_weights=False, task_type="CAUSAL_LM")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    for name, param in model.named_parameters():  # big enough to change greedy answers
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def adapters(tiny_base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two random LoRA adapters on every projection of the tiny model."""
    return [make_adapter(tiny_base_dir, tmp_path_factory.mktemp(f"adapter-{seed}"), seed)
            for seed in (1, 2)]


@pytest.fixture
def hub(settings: Settings) -> ModelHub:
    return ModelHub(settings)


def target(base: Path, adapter: Path | None = None, system: str = "") -> Target:
    return Target(model_name="m", base_name="tiny", base_path=str(base),
                  adapter_path=str(adapter) if adapter else None, version=1, version_id=1,
                  system_prompt=system)


def prompt_ids(tokenizer, messages=QUESTION) -> list[int]:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                         return_dict=False)


def test_the_lean_loop_gives_the_tokens_of_generate(hub: ModelHub, tiny_base_dir: Path) -> None:
    model, tokenizer = hub.load(str(tiny_base_dir))
    ids = prompt_ids(tokenizer)
    with torch.inference_mode():
        expected = model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False)
    assert greedy(model, ids, 24) == expected[0, len(ids):].tolist()


def test_an_adapter_answers_like_peft_does(hub: ModelHub, tiny_base_dir: Path,
                                           adapters: list[Path]) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model, tokenizer = hub.load(str(tiny_base_dir))
    ids = prompt_ids(tokenizer)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base_dir),
                                           adapters[0]).eval()
    with torch.inference_mode():
        expected = peft_model.generate(input_ids=torch.tensor([ids]), max_new_tokens=16,
                                       do_sample=False)[0, len(ids):].tolist()
    ours = greedy(model, ids, 16, load_lora(adapters[0], "cpu", torch.float32))
    assert ours == expected
    assert ours != greedy(model, ids, 16)


def answers_alone_and_together(hub: ModelHub, settings: Settings,
                               targets: list[Target]) -> tuple[list[str], list[str], int]:
    """Each target's answer asked alone; then all submitted while the runner's first step is
    held, so they share a batch: (alone, together, the largest batch seen)."""
    alone = ChatRunner(hub, settings)
    expected = [alone.answer(t, QUESTION, max_new_tokens=12).text for t in targets]
    alone.close()
    gate, sizes = threading.Event(), []

    def hold_first_step(rows: int) -> None:
        sizes.append(rows)
        gate.wait(timeout=60)

    runner = ChatRunner(hub, settings, before_step=hold_first_step)
    futures = [runner.submit(t, QUESTION, max_new_tokens=12) for t in targets]
    gate.set()
    together = [f.result(timeout=60).text for f in futures]
    runner.close()
    return expected, together, max(sizes)


def test_requests_batched_together_answer_as_they_would_alone(
        settings: Settings, hub: ModelHub, tiny_base_dir: Path, adapters: list[Path]) -> None:
    targets = [target(tiny_base_dir, adapters[0]), target(tiny_base_dir),
               target(tiny_base_dir, adapters[1])]
    alone, together, batch = answers_alone_and_together(hub, settings, targets)
    assert len(set(alone)) == 3  # the adapters really change the answers
    assert together == alone and batch == 3


def test_adapters_of_different_ranks_and_projections_share_a_batch(
        settings: Settings, hub: ModelHub, tiny_base_dir: Path, adapters: list[Path],
        tmp_path: Path) -> None:
    narrow = make_adapter(tiny_base_dir, tmp_path / "narrow", seed=5, rank=2,
                          modules=["q_proj", "v_proj"])
    targets = [target(tiny_base_dir, narrow), target(tiny_base_dir, adapters[0]),
               target(tiny_base_dir), target(tiny_base_dir, narrow)]
    alone, together, batch = answers_alone_and_together(hub, settings, targets)
    assert len(set(alone)) == 3
    assert together == alone and batch == 4


def test_call_runs_on_the_worker_thread_and_reports_errors(settings: Settings,
                                                           hub: ModelHub) -> None:
    runner = ChatRunner(hub, settings)
    assert runner.call(lambda: threading.current_thread().name).result(timeout=60) == \
        "chat-runner"
    with pytest.raises(ZeroDivisionError):
        runner.call(lambda: 1 / 0).result(timeout=60)
    assert runner.call(lambda: "still serving").result(timeout=60) == "still serving"
    runner.close()
    with pytest.raises(StoreError, match="stopped"):
        runner.call(lambda: None)


def test_streamed_pieces_join_into_the_answer(settings: Settings, hub: ModelHub,
                                              tiny_base_dir: Path) -> None:
    pieces: list[str] = []
    runner = ChatRunner(hub, settings)
    answer = runner.answer(target(tiny_base_dir), QUESTION, max_new_tokens=10,
                           on_token=pieces.append)
    runner.close()
    assert len(pieces) > 1 and "".join(pieces) == answer.text
    assert answer.tokens == 10


def test_adapters_are_kept_in_an_lru_and_a_new_path_is_picked_up(
        settings: Settings, hub: ModelHub, tiny_base_dir: Path, adapters: list[Path]) -> None:
    runner = ChatRunner(hub, settings.with_(adapter_cache_size=1))
    base = str(tiny_base_dir)
    first = runner.answer(target(tiny_base_dir, adapters[0]), QUESTION, max_new_tokens=8)
    assert runner.loaded_adapters(base) == [str(adapters[0])]
    second = runner.answer(target(tiny_base_dir, adapters[1]), QUESTION, max_new_tokens=8)
    assert runner.loaded_adapters(base) == [str(adapters[1])]
    again = runner.answer(target(tiny_base_dir, adapters[0]), QUESTION, max_new_tokens=8)
    runner.close()
    assert first.text != second.text and again.text == first.text


def test_context_is_trimmed_from_the_oldest_turns(hub: ModelHub, tiny_base_dir: Path) -> None:
    _, tokenizer = hub.load(str(tiny_base_dir))
    history = [{"role": "system", "content": "You are terse."}]
    for i in range(6):
        history += [{"role": "user", "content": f"question number {i} " * 5},
                    {"role": "assistant", "content": f"answer number {i} " * 5}]
    history.append({"role": "user", "content": "the newest question"})
    full = len(prompt_ids(tokenizer, history))
    text = tokenizer.decode(build_prompt(tokenizer, history, "", full - 20))
    assert "You are terse." in text and "the newest question" in text
    assert "question number 0" not in text and "question number 5" in text
    with pytest.raises(InvalidInput, match="too long"):
        build_prompt(tokenizer, history, "", 10)
    kept = tokenizer.decode(build_prompt(tokenizer, QUESTION, "Speak like a pirate.", 500))
    assert "Speak like a pirate." in kept


def test_a_full_queue_says_busy_at_once(settings: Settings, hub: ModelHub,
                                        tiny_base_dir: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    def block(rows: int) -> None:
        entered.set()
        release.wait(timeout=60)

    runner = ChatRunner(hub, settings.with_(queue_size=1), before_step=block)
    running = runner.submit(target(tiny_base_dir), QUESTION, max_new_tokens=3)
    assert entered.wait(timeout=60)
    queued = runner.submit(target(tiny_base_dir), QUESTION, max_new_tokens=3)
    with pytest.raises(Busy, match="busy; try again in a moment"):
        runner.submit(target(tiny_base_dir), QUESTION, max_new_tokens=3)
    release.set()
    assert running.result(timeout=60).tokens == 3 and queued.result(timeout=60).tokens == 3
    runner.close()


def test_a_request_past_its_timeout_fails_clearly(settings: Settings, hub: ModelHub,
                                                  tiny_base_dir: Path) -> None:
    now = [0.0]

    def clock() -> float:  # every look at the clock is 4 s later
        now[0] += 4.0
        return now[0]

    runner = ChatRunner(hub, settings, clock=clock)
    with pytest.raises(Busy, match="longer than 10 s"):
        runner.answer(target(tiny_base_dir), QUESTION, max_new_tokens=50, timeout=10)
    runner.close()


def test_answer_async_streams_onto_the_event_loop(settings: Settings, hub: ModelHub,
                                                  tiny_base_dir: Path) -> None:
    runner = ChatRunner(hub, settings)

    async def chat() -> tuple:
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, bool]] = []
        on_token = on_loop(loop, lambda piece: seen.append(
            (piece, threading.current_thread() is threading.main_thread())))
        answer = await runner.answer_async(target(tiny_base_dir), QUESTION, max_new_tokens=6,
                                           on_token=on_token)
        await asyncio.sleep(0)  # let the last call_soon_threadsafe callbacks run
        return answer, seen

    answer, seen = asyncio.run(chat())
    runner.close()
    assert "".join(piece for piece, _ in seen) == answer.text
    assert all(on_main for _, on_main in seen)
