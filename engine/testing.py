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
