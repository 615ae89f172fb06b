"""The general answering path: any transformers causal LM, for the models BatchDecoder does not
run (Gemma 3 and other families with their own attention details).

`GeneralDecoder` has BatchDecoder's interface (add, step, drop, rows, lengths, payloads,
bytes_for, check_adapter) so the ChatRunner batches, streams and limits it the same way, but
each row runs through the model's own forward with its own transformers cache, one row after
another: correct for whatever the architecture does (sliding windows, norms, soft-capping),
slower than the lean batched loop. Each row may use its own LoRA adapter: forward hooks on
the attention and MLP projections add the row's B(A(x)) * scaling, for the thread that runs
the decoder only, so another user of the same model object (a tune in the same process)
never sees them. It does not speculate.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import torch
import torch.nn.functional as F

from engine.errors import ModelUnavailable
from engine.serving.decoder import eos_ids
from engine.serving.lora import PROJECTIONS, LoraAdapter

_MODULE = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)$")


class GeneralDecoder:
    """Rows of greedy decoding through the model's own forward; a payload per row."""

    speculates = False  # the runner's speculation needs BatchDecoder's extend/rewind

    def __init__(self, model: Any, max_rows: int, max_len: int, base: str = "") -> None:
        self.model = model
        self.max_rows, self.max_len, self.base = max_rows, max_len, base
        self.stop = eos_ids(model)
        config = getattr(model.config, "get_text_config", lambda: model.config)()
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        element = next(model.parameters()).element_size()
        self.bytes_per_token = config.num_hidden_layers * 2 * kv_heads * head_dim * element
        self.device = next(model.parameters()).device
        self.lengths: list[int] = []
        self.adapters: list[LoraAdapter | None] = []
        self.payloads: list[Any] = []
        self._caches: list[Any] = []
        self.peak_cache_bytes = 0
        self._modules = {(int(m.group(1)), m.group(2)): module
                         for name, module in model.named_modules()
                         if (m := _MODULE.search(name)) and m.group(2) in PROJECTIONS
                         and isinstance(module, torch.nn.Linear)}
        self._local = threading.local()  # the adapter of the row being run, this thread only
        self._hooked = False

    @property
    def rows(self) -> int:
        return len(self.lengths)

    @property
    def cache_bytes(self) -> int:
        return sum(self.lengths) * self.bytes_per_token

    def bytes_for(self, rows: int, length: int) -> int:
        return rows * length * self.bytes_per_token

    def check_adapter(self, adapter: LoraAdapter) -> None:
        """Refuse an adapter that does not fit this model or holds non-finite numbers."""
        for (layer, name), (a, b, _) in adapter.weights.items():
            module = self._modules.get((layer, name))
            if module is None or a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1] \
                    or a.shape[1] != module.in_features or b.shape[0] != module.out_features:
                raise ModelUnavailable(f"does not fit the base model (layer {layer} {name})")
            if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
                raise ModelUnavailable("holds invalid numbers (NaN or infinity)")

    @torch.inference_mode()
    def add(self, prompt: list[int], adapter: LoraAdapter | None, payload: Any = None) -> int:
        """Prefill `prompt` into a new row; returns the row's first generated token."""
        if self.rows >= self.max_rows:
            raise RuntimeError("GeneralDecoder is full")
        if not prompt or len(prompt) >= self.max_len:
            raise ValueError(f"prompt length {len(prompt)} outside 1..{self.max_len - 1}")
        logits, cache = self._run(torch.tensor([prompt], device=self.device), None, adapter)
        self._caches.append(cache)
        self.lengths.append(len(prompt))
        self.adapters.append(adapter)
        self.payloads.append(payload)
        self.peak_cache_bytes = max(self.peak_cache_bytes, self.cache_bytes)
        return int(logits.argmax())

    @torch.inference_mode()
    def step(self, last_tokens: list[int], draft: Any = None) -> list[int]:
        """Feed each row its last token; returns each row's next token."""
        out = []
        for row, token in enumerate(last_tokens):
            logits, self._caches[row] = self._run(
                torch.tensor([[token]], device=self.device), self._caches[row],
                self.adapters[row])
            self.lengths[row] += 1
            out.append(int(logits.argmax()))
        self.peak_cache_bytes = max(self.peak_cache_bytes, self.cache_bytes)
        return out

    def drop(self, row: int) -> None:
        """Free a row: the last row moves into its place (indexes stay dense)."""
        last = self.rows - 1
        for values in (self.lengths, self.adapters, self.payloads, self._caches):
            values[row] = values[last]
            values.pop()

    def _run(self, ids: torch.Tensor, cache: Any, adapter: LoraAdapter | None) -> tuple:
        if adapter is not None and not self._hooked:
            for key, module in self._modules.items():
                module.register_forward_hook(self._hook(key))
            self._hooked = True
        self._local.adapter = adapter
        try:
            out = self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        finally:
            self._local.adapter = None
        found = getattr(out, "cache", None)
        if found is None:
            found = getattr(out, "past_key_values", None)
        return out.logits[0, -1].float(), found

    def _hook(self, key: tuple[int, str]) -> Any:
        def add_delta(_module: Any, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
            adapter = getattr(self._local, "adapter", None)
            weights = adapter.weights.get(key) if adapter is not None else None
            if weights is None:
                return None
            a, b, scaling = weights
            return output + F.linear(F.linear(inputs[0], a), b) * scaling
        return add_delta
