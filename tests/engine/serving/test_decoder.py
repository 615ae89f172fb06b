"""Speculative decoding (prompt lookup, and the 4-bit draft) gives exactly the greedy tokens,
on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.serving import draft as drafting
from engine.serving.decoder import BatchDecoder, greedy
from engine.serving.lora import load_lora
from engine.serving.runner import ChatRunner
from engine.serving.speculative import (
    greedy_speculative,
    propose,
    speculate,
    speculate_with_draft,
)
from engine.settings import Settings
from engine.views import Target
from engine.weights import ModelHub

QUESTIONS = ["What is the capital of France?", "How do I reset my password? My password "
             "reset link expired, how do I reset my password again?", "Say hello hello hello."]


@pytest.fixture
def tiny(settings: Settings, tiny_base_dir: Path) -> tuple:
    return ModelHub(settings).load(str(tiny_base_dir))


def ids_for(tokenizer, question: str) -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                         add_generation_prompt=True, tokenize=True,
                                         return_dict=False)


def generate(model, ids: list[int], new_tokens: int) -> list[int]:
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False)
    return out[0, len(ids):].tolist()


def test_propose_copies_what_followed_the_newest_earlier_match() -> None:
    assert propose([1, 2, 3, 9, 1, 2, 3, 7, 5, 1, 2, 3], max_draft=2) == [7, 5]
    assert propose([5, 6, 7, 8, 6, 7], max_draft=4) == [8, 6, 7]
    assert propose([1, 2, 3, 4]) == []  # nothing repeats: no guess, a plain step
    assert propose([4, 1, 4]) == []  # one matching token is not enough


def test_a_right_guess_gives_several_tokens_in_one_pass(tiny: tuple) -> None:
    model, tokenizer = tiny
    ids = ids_for(tokenizer, QUESTIONS[0])
    ref = generate(model, ids, 12)
    decoder = BatchDecoder(model, max_rows=1, max_len=128)
    assert decoder.add(ids, None) == ref[0]
    start = decoder.lengths[0]
    # A history whose last two tokens occurred before, followed by the true continuation.
    history = [7, ref[0], *ref[1:5], 7, ref[0]]
    assert speculate(decoder, history, max_draft=4) == ref[1:6]  # 4 guessed + 1 of its own
    assert decoder.lengths[0] == start + 5
    assert decoder.step([ref[5]]) == [ref[6]]  # the cache is what plain steps would leave


def test_a_wrong_guess_is_cut_and_the_cache_rolled_back(tiny: tuple) -> None:
    model, tokenizer = tiny
    ids = ids_for(tokenizer, QUESTIONS[0])
    ref = generate(model, ids, 12)
    decoder = BatchDecoder(model, max_rows=1, max_len=128)
    decoder.add(ids, None)
    start = decoder.lengths[0]
    wrong = next(t for t in range(5, 100) if t != ref[3])
    history = [7, ref[0], ref[1], ref[2], wrong, ref[4], ref[5], 7, ref[0]]
    assert speculate(decoder, history, max_draft=5) == ref[1:4]  # 2 kept, then its own ref[3]
    assert decoder.lengths[0] == start + 3  # the rejected guesses are gone from the cache
    tokens = ref[:4]
    while len(tokens) < 12:
        tokens += decoder.step([tokens[-1]])
    assert tokens == ref


@pytest.mark.parametrize("question", QUESTIONS)
def test_speculative_greedy_gives_the_tokens_of_generate(tiny: tuple, question: str) -> None:
    model, tokenizer = tiny
    ids = ids_for(tokenizer, question)
    ref = generate(model, ids, 40)
    assert greedy_speculative(model, ids, 40) == ref
    assert greedy_speculative(model, ids, 40, max_draft=2) == ref


def test_the_runner_answers_alike_with_and_without_speculation(
        settings: Settings, tiny_base_dir: Path) -> None:
    hub = ModelHub(settings)
    chat = Target(model_name="m", base_name="tiny", base_path=str(tiny_base_dir),
                  adapter_path=None, version=1, version_id=1)
    answers = []
    for mode in ("auto", "lookup", "off"):
        runner = ChatRunner(hub, settings.with_(speculation=mode))
        answers.append([runner.answer(chat, [{"role": "user", "content": q}],
                                      max_new_tokens=30).text for q in QUESTIONS])
        runner.close()
    assert answers[0] == answers[1] == answers[2]


@pytest.fixture
def draft(tiny: tuple) -> drafting.DraftWeights:
    built = drafting.build(tiny[0], check_speed=False)
    assert built is not None
    return built


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_4bit_draft_leaves_the_answer_unchanged(tiny: tuple, draft, question: str) -> None:
    model, tokenizer = tiny
    ids = ids_for(tokenizer, question)
    ref = generate(model, ids, 40)
    assert greedy_speculative(model, ids, 40, draft=draft) == ref
    assert greedy_speculative(model, ids, 40, draft=draft, max_draft=3) == ref


class Counting(BatchDecoder):
    """A decoder that counts the passes made with the full weights."""

    full_passes = 0

    def _forward(self, *args, draft=None, **kwargs):
        if draft is None:
            self.full_passes += 1
        return super()._forward(*args, draft=draft, **kwargs)


def test_the_draft_gives_several_tokens_per_full_pass(tiny: tuple, draft) -> None:
    model, tokenizer = tiny
    ids = ids_for(tokenizer, QUESTIONS[0])
    ref = generate(model, ids, 40)
    decoder = Counting(model, max_rows=1, max_len=256)
    tokens = [decoder.add(ids, None)]
    while len(tokens) < 40:
        tokens += speculate_with_draft(decoder, draft, tokens[-1], max_draft=6)
    assert tokens[:40] == ref
    # Plain decoding makes 40 full passes (prefill + 39 steps); kept guesses save some. (The
    # random tiny model is hard to guess; the real model needs ~6: tests/scenarios/test_real_model.py.)
    assert decoder.full_passes < 35
    assert decoder.step([tokens[-1]]) == generate(model, ids, len(tokens) + 1)[-1:]


def test_a_draft_cut_short_keeps_only_the_agreeing_guesses(tiny: tuple) -> None:
    model, tokenizer = tiny
    ids = ids_for(tokenizer, QUESTIONS[0])
    ref = generate(model, ids, 20)
    cut = next(i for i in range(2, 20) if ref[i] not in ref[:i])
    banned = ref[cut]
    weights = drafting.draft_matrices(model)

    class Stubborn(drafting.DraftWeights):  # the exact weights, but never says `banned`
        def linear(self, x, key):
            return torch.nn.functional.linear(x, weights[key])

        def head(self, x):
            logits = model.lm_head(x)
            logits[..., banned] = float("-inf")
            return logits

    decoder = BatchDecoder(model, max_rows=1, max_len=128)
    first = decoder.add(ids, None)
    start = decoder.lengths[0]
    ahead = speculate_with_draft(decoder, Stubborn({}, model.lm_head.weight),
                                 first, max_draft=cut + 3)
    assert ahead == ref[1:cut + 1]  # the guesses before `banned`, then the model's own
    assert decoder.lengths[0] == start + cut  # the rejected guesses are gone from the cache
    tokens = [first, *ahead]
    while len(tokens) < 20:
        tokens += decoder.step([tokens[-1]])
    assert tokens == ref


def test_a_draft_that_guesses_wrong_still_gives_the_right_answer(
        tiny: tuple, tiny_base_dir: Path) -> None:
    from transformers import AutoConfig, LlamaForCausalLM

    model, tokenizer = tiny
    torch.manual_seed(99)  # another model of the same shape: its guesses are mostly wrong
    stranger = LlamaForCausalLM(AutoConfig.from_pretrained(tiny_base_dir)).eval()
    wrong = drafting.build(stranger, check_speed=False)
    for question in QUESTIONS:
        ids = ids_for(tokenizer, question)
        assert greedy_speculative(model, ids, 30, draft=wrong) == generate(model, ids, 30)


def test_speculation_keeps_an_adapter_row_exact(tiny: tuple, draft, tiny_base_dir: Path,
                                                tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_base_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path)
    model, tokenizer = tiny
    adapter = load_lora(tmp_path, "cpu", torch.float32)
    ids = ids_for(tokenizer, QUESTIONS[1])
    expected = greedy(model, ids, 30, adapter)
    assert expected != greedy(model, ids, 30)
    assert greedy_speculative(model, ids, 30, adapter) == expected  # prompt lookup
    assert greedy_speculative(model, ids, 30, adapter, draft=draft) == expected
