"""Test support that ships with the engine (as httpx ships MockTransport): a tiny model built
from a config, for tests and benchmarks that need real training and generation in seconds."""

from __future__ import annotations

from pathlib import Path

from engine.weights import bundled_gguf


def tiny_model(folder: Path) -> Path:
    """A 2-layer Llama with the real SmolLM2 tokenizer and chat template, saved in Hugging
    Face layout in `folder` (about 7 MB): fast to train and to answer with, so the tests and
    the load benchmark exercise the real code paths without the real weights."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = bundled_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        initializer_range=0.2,  # larger random weights: varied answers, not one token repeated
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


# A Gemma-style chat template (turns between <start_of_turn> and <end_of_turn>, the system
# prompt folded into the first user turn, "model" as the assistant's role): enough for a tiny
# test model to train and answer the way Gemma checkpoints do.
GEMMA_TEMPLATE = (
    "{% set ns = namespace(system='') %}"
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{% set ns.system = m['content'] + '\\n\\n' %}{% endif %}{% endfor %}"
    "{% set first = namespace(done=false) %}"
    "{% for m in messages %}{% if m['role'] != 'system' %}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\\n' }}"
    "{% if m['role'] == 'user' and not first.done %}{{ ns.system }}"
    "{% set first.done = true %}{% endif %}"
    "{{ m['content'] | trim }}{{ '<end_of_turn>\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")

FAMILIES = ("llama", "qwen2", "gemma3")


def tiny_family_model(folder: Path, family: str) -> Path:
    """A 2-layer model of another family than Llama, saved like tiny_model(): "qwen2"
    (Qwen2Config: biased q/k/v projections, ChatML as SmolLM2 uses it) or "gemma3"
    (Gemma3TextConfig: q/k norms, sliding-window layers, scaled embeddings, and the
    Gemma-style template above with <end_of_turn> ending an answer); "llama" is tiny_model()."""
    import torch
    from transformers import (
        AutoTokenizer,
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    if family == "llama":
        return tiny_model(folder)
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    gguf = bundled_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.manual_seed(0)
    common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  tie_word_embeddings=True, initializer_range=0.2)
    if family == "qwen2":
        config = Qwen2Config(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, **common)
        model = Qwen2ForCausalLM(config)
    else:
        tokenizer.add_special_tokens({"additional_special_tokens": ["<start_of_turn>",
                                                                    "<end_of_turn>"]})
        tokenizer.eos_token = "<end_of_turn>"
        tokenizer.chat_template = GEMMA_TEMPLATE
        config = Gemma3TextConfig(
            vocab_size=len(tokenizer), head_dim=16, sliding_window=32,
            layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=16,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, **common)
        model = Gemma3ForCausalLM(config)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder
