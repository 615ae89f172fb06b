"""Answering: the chat runner with its bounded queue and continuous batching (runner.py), the
batched greedy decoder over a preallocated KV cache (decoder.py), LoRA adapters for the
decoder (lora.py), speculation (speculative.py), the 4-bit draft (draft.py), and holding an answer to the
entry it gives (copying.py).

May import: engine's top-level modules and engine.weights; torch and transformers.
"""
