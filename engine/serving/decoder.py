"""A lean greedy decode loop for Llama-family models, batched, with a different LoRA per row.

transformers `generate` spends most of a CPU decode step outside the matrix multiplies (cache
objects, mask building, logits processors, module hooks). `BatchDecoder` runs the same maths
from the model's own weights with one preallocated KV cache: each row has its own length and
position, so requests join and leave between steps (continuous batching) without padding, and
each row may use its own LoRA adapter (or none) in the same forward pass. Adapters are read
straight from PEFT folders (`load_lora`); the base model is never modified.

The KV cache is one tensor per layer of (rows, heads, length, head_dim), sized for the batch
it holds: it grows as rows join and lengthen, and shrinks back when the rows that needed it
leave (`_fit`), so one long conversation costs memory only while it is in the batch.
`bytes_for` says what a batch would take, so the runner keeps it within GPTSTORE_KV_CACHE_MB.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from engine.errors import ModelUnavailable
from engine.serving.draft import FUSED, DraftWeights
from engine.serving.lora import STACKS_KEPT, LoraAdapter, RowLora, stack

SUPPORTED_TYPES = {"llama", "mistral", "qwen2"}


def supports(model: Any) -> bool:
    """True when BatchDecoder can run this model (Llama-style decoder, plain attention)."""
    return getattr(model.config, "model_type", "") in SUPPORTED_TYPES


class BatchDecoder:
    """Rows of greedy decoding over one base model; each row carries an opaque payload.

    add() prefills a prompt into a new row and returns its first token; step() advances every
    row by one token. drop(i) frees a row by moving the last row into its place, so row indexes
    (and `payloads`) stay dense.
    """

    def __init__(self, model: Any, max_rows: int, max_len: int, base: str = "") -> None:
        if not supports(model):
            raise ModelUnavailable(
                f"Chat supports Llama-style models ({', '.join(sorted(SUPPORTED_TYPES))}); "
                f"this one is {getattr(model.config, 'model_type', 'unknown')}.")
        self.model = model
        inner = model.model
        config = model.config
        self.layers = list(inner.layers)
        self.embed = inner.embed_tokens
        self.norm = inner.norm
        self.rotary = inner.rotary_emb
        self.lm_head = model.lm_head
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.max_rows, self.max_len = max_rows, max_len
        self.base = base  # which base model this batch runs (the runner keeps one per base)
        self.stop = eos_ids(model)  # token ids that end a row
        self.device = self.embed.weight.device
        self.dtype = self.embed.weight.dtype
        self.lengths: list[int] = []
        self.adapters: list[LoraAdapter | None] = []
        self.payloads: list[Any] = []
        self._k: list[torch.Tensor] = []
        self._v: list[torch.Tensor] = []
        self.bytes_per_token = (len(self.layers) * 2 * self.kv_heads * self.head_dim
                                * self.embed.weight.element_size())  # K and V, every layer
        self.peak_cache_bytes = 0  # the most the KV cache has held (figures and tests)
        self._lora: RowLora | None = None  # the rows' adapters, for the next steps
        self._stacks: dict[tuple[int, ...], tuple[tuple[LoraAdapter, ...], dict]] = {}

    @property
    def rows(self) -> int:
        return len(self.lengths)

    # -- rows ---------------------------------------------------------------------------

    @torch.inference_mode()
    def add(self, prompt: list[int], adapter: LoraAdapter | None, payload: Any = None) -> int:
        """Prefill `prompt` into a new row; returns the row's first generated token."""
        if self.rows >= self.max_rows:
            raise RuntimeError("BatchDecoder is full")
        if not prompt or len(prompt) >= self.max_len:
            raise ValueError(f"prompt length {len(prompt)} outside 1..{self.max_len - 1}")
        row = self.rows
        self._reserve(row + 1, len(prompt) + 1)
        self.lengths.append(len(prompt))
        self.adapters.append(adapter)
        self.payloads.append(payload)
        ids = torch.tensor([prompt], device=self.device)
        positions = torch.arange(len(prompt), device=self.device)[None]
        try:
            logits = self._forward(ids, positions, slice(row, row + 1),
                                   self._row_lora([adapter]), prefill=True)
        except BaseException:  # this row only: the others stay as they were
            for values in (self.lengths, self.adapters, self.payloads):
                values.pop()
            self._fit()
            raise
        self._regroup()
        return int(logits[0].argmax())

    def check_adapter(self, adapter: LoraAdapter) -> None:
        """Refuse an adapter that does not fit this model or holds non-finite numbers: in a
        shared batch either would break every row's answer, not only its own. The message
        is a phrase ("holds invalid numbers ..."): the runner puts it in its sentence."""
        for (layer, name), (a, b, _) in adapter.weights.items():
            module = _projection(self.layers[layer], name) if layer < len(self.layers) else None
            if module is None or a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1] \
                    or a.shape[1] != module.in_features or b.shape[0] != module.out_features:
                raise ModelUnavailable(f"does not fit the base model (layer {layer} {name})")
            if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
                raise ModelUnavailable("holds invalid numbers (NaN or infinity)")

    @torch.inference_mode()
    def extend(self, row: int, tokens: list[int]) -> list[int]:
        """Feed one row several tokens at once; returns the greedy token after each of them.

        The cache then holds all of them; `rewind` takes back the ones not kept (speculative
        decoding verifies a guessed continuation this way, in one forward pass).
        """
        start = self.lengths[row]
        if start + len(tokens) > self.max_len:
            raise ValueError(f"row {row} would pass {self.max_len} tokens")
        self._reserve(self.rows, start + len(tokens) + 1)
        ids = torch.tensor([tokens], device=self.device)
        positions = torch.arange(start, start + len(tokens), device=self.device)[None]
        # Alone in the batch (speculation, every round), the row's LoRA is the batch's.
        lora = self._lora if self.rows == 1 else self._row_lora([self.adapters[row]])
        logits = self._forward(ids, positions, slice(row, row + 1), lora, prefill=True,
                               start=start)
        self.lengths[row] = start + len(tokens)
        return logits[0].argmax(-1).tolist()

    def rewind(self, row: int, length: int) -> None:
        """Forget a row's cache past `length` tokens (its later entries are overwritten)."""
        if not 0 < length <= self.lengths[row]:
            raise ValueError(f"cannot rewind row {row} of {self.lengths[row]} to {length}")
        self.lengths[row] = length

    @torch.inference_mode()
    def step(self, last_tokens: list[int], draft: DraftWeights | None = None) -> list[int]:
        """Feed each row its last token; returns each row's next token.

        With `draft` (engine.serving.draft), the step runs those cheaper weights instead of the
        model's: a guess, which a later `extend` with the full weights checks and overwrites."""
        n = self.rows
        longest = max(self.lengths) + 1
        self._reserve(n, longest)
        ids = torch.tensor(last_tokens, device=self.device)[:, None]
        positions = torch.tensor(self.lengths, device=self.device)[:, None]
        logits = self._forward(ids, positions, slice(0, n), self._lora, prefill=False,
                               draft=draft)
        for i in range(n):
            self.lengths[i] += 1
        return logits.argmax(-1).tolist()

    @torch.inference_mode()
    def drop(self, row: int) -> None:
        last = self.rows - 1
        if row != last:
            for cache in (*self._k, *self._v):
                cache[row, :, : self.lengths[last]] = cache[last, :, : self.lengths[last]]
            for values in (self.lengths, self.adapters, self.payloads):
                values[row] = values[last]
        for values in (self.lengths, self.adapters, self.payloads):
            values.pop()
        self._regroup()
        self._fit()

    # -- the KV cache -------------------------------------------------------------------

    @property
    def cache_bytes(self) -> int:
        """What the KV cache holds now."""
        return sum(t.numel() * t.element_size() for t in (*self._k, *self._v))

    def bytes_for(self, rows: int, length: int) -> int:
        """What the KV cache would take to hold `rows` rows of up to `length` tokens, given
        what it holds now (it grows in steps, see _reserve)."""
        have_rows, have_len = self._shape()
        new_rows = min(self.max_rows, max(have_rows, _pow2(rows)))
        new_len = min(self.max_len, max(have_len, _length_step(length)))
        return new_rows * new_len * self.bytes_per_token

    def _shape(self) -> tuple[int, int]:
        return (self._k[0].shape[0], self._k[0].shape[2]) if self._k else (0, 0)

    def _reserve(self, rows: int, length: int) -> None:
        """Grow the KV cache (copying) so it holds `rows` x `length`: rows in powers of two,
        length in powers of two up to 512 and then in steps of 512."""
        have_rows, have_len = self._shape()
        if rows <= have_rows and length <= have_len:
            return
        self._resize(min(self.max_rows, max(have_rows, _pow2(rows))),
                     min(self.max_len, max(have_len, _length_step(length))))

    def _fit(self) -> None:
        """Shrink the cache once the rows it holds need at most half of it in rows or length
        (and free it with the last row), so memory follows the batch back down."""
        if not self.rows:
            self._k, self._v = [], []
            return
        have_rows, have_len = self._shape()
        need_rows = _pow2(self.rows)
        need_len = min(self.max_len, _length_step(max(self.lengths) + 1))
        if have_rows >= 2 * need_rows or have_len >= 2 * need_len:
            self._resize(min(have_rows, need_rows), min(have_len, need_len))

    def _resize(self, rows: int, length: int) -> None:
        have_rows, have_len = self._shape()
        keep_rows, keep_len = min(rows, have_rows), min(length, have_len)
        shape = (rows, self.kv_heads, length, self.head_dim)
        for caches in (self._k, self._v):
            for i in range(len(self.layers)):
                fresh = torch.zeros(shape, device=self.device, dtype=self.dtype)
                if i < len(caches):
                    fresh[:keep_rows, :, :keep_len] = caches[i][:keep_rows, :, :keep_len]
                    caches[i] = fresh  # the old tensor goes as soon as it is replaced
                else:
                    caches.append(fresh)
        self.peak_cache_bytes = max(self.peak_cache_bytes, self.cache_bytes)

    # -- internals ----------------------------------------------------------------------

    def _regroup(self) -> None:
        self._lora = self._row_lora(self.adapters)

    def _row_lora(self, adapters: list[LoraAdapter | None]) -> RowLora | None:
        """The LoRA deltas for rows using `adapters` (None: the base model alone)."""
        distinct = list({id(a): a for a in adapters if a is not None}.values())
        if not distinct:
            return None
        if len(distinct) == 1:
            stacks = stack(distinct)  # the adapter's own tensors, nothing copied
            if all(a is distinct[0] for a in adapters):
                return RowLora(stacks, None)  # every row on one adapter: no mask needed
        else:
            key = tuple(id(a) for a in distinct)
            cached = self._stacks.pop(key, None) or (tuple(distinct), stack(distinct))
            self._stacks[key] = cached  # holds the adapters, so their ids stay theirs
            while len(self._stacks) > STACKS_KEPT:  # least recently used first
                self._stacks.pop(next(iter(self._stacks)))
            stacks = cached[1]
        masks: dict[tuple, torch.Tensor] = {}
        for blocks in {blocks for _, _, blocks in stacks.values()}:
            mask = torch.zeros(len(adapters), 1, sum(rank for _, rank, _ in blocks),
                               device=self.device, dtype=self.dtype)
            at = 0
            for adapter_id, rank, scaling in blocks:
                for row, adapter in enumerate(adapters):
                    if id(adapter) == adapter_id:
                        mask[row, 0, at:at + rank] = scaling
                at += rank
            masks[blocks] = mask
        return RowLora(stacks, masks)

    def _linear(self, x: torch.Tensor, module: Any, key: tuple[int, str],
                lora: RowLora | None, draft: DraftWeights | None = None) -> torch.Tensor:
        if draft is None:
            return self._delta(F.linear(x, module.weight, module.bias), x, key, lora)
        return self._delta(draft.linear(x, key), x, key, lora, module.bias)

    def _project(self, x: torch.Tensor, modules: tuple, index: int, fused: str,
                 lora: RowLora | None, draft: DraftWeights | None) -> list[torch.Tensor]:
        """x through projections that share it (q, k, v or gate, up): one multiply of the
        draft's stacked matrix, or one per projection with the full weights."""
        names = FUSED[fused]
        if draft is None:
            return [self._linear(x, m, (index, n), lora) for m, n in zip(modules, names)]
        outs = draft.linear(x, (index, fused)).split([m.out_features for m in modules], -1)
        return [self._delta(out, x, (index, name), lora, m.bias)
                for out, m, name in zip(outs, modules, names)]

    @staticmethod
    def _delta(y: torch.Tensor, x: torch.Tensor, key: tuple[int, str], lora: RowLora | None,
               bias: torch.Tensor | None = None) -> torch.Tensor:
        """y plus `bias` (when the multiply did not add it) and the rows' LoRA deltas."""
        if bias is not None:
            y = y + bias
        stacked = lora.stacks.get(key) if lora is not None else None
        if stacked is None:
            return y
        a, b, blocks = stacked
        if lora.masks is None:  # one adapter: PEFT's own order, B(A(x)) * scaling
            return y + F.linear(F.linear(x, a), b) * blocks[0][2]
        return y + F.linear(F.linear(x, a) * lora.masks[blocks], b)

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, rows: slice,
                 lora: RowLora | None, *, prefill: bool, start: int | None = None,
                 draft: DraftWeights | None = None) -> torch.Tensor:
        """Logits of the last position, or of every position when `start` is given (one row
        continuing at `start`)."""
        batch, width = ids.shape
        hidden = self.embed(ids)
        cos, sin = self.rotary(hidden, positions)
        mask = None
        if start:  # later positions see the row's cache and, causally, each other
            end = start + width
            mask = (torch.arange(end, device=self.device)[None, :]
                    <= torch.arange(start, end, device=self.device)[:, None])[None, None]
        if not prefill:
            span = int(positions.max()) + 1
            if batch > 1 and int(positions.min()) + 1 != span:
                mask = torch.arange(span, device=self.device)[None, :] <= positions
                mask = mask[:, None, None, :]
            write_rows = torch.arange(batch, device=self.device)
            write_pos = positions[:, 0]
        for index, layer in enumerate(self.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(hidden)
            q, k, v = self._project(x, (attn.q_proj, attn.k_proj, attn.v_proj), index, "qkv",
                                    lora, draft)
            q = q.view(batch, width, self.heads, self.head_dim).transpose(1, 2)
            k = k.view(batch, width, self.kv_heads, self.head_dim).transpose(1, 2)
            v = v.view(batch, width, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            k_cache, v_cache = self._k[index], self._v[index]
            if start:
                k_cache[rows, :, start:end] = k
                v_cache[rows, :, start:end] = v
                out = F.scaled_dot_product_attention(
                    q, k_cache[rows, :, :end], v_cache[rows, :, :end], attn_mask=mask,
                    enable_gqa=True, scale=attn.scaling)
            elif prefill:
                k_cache[rows, :, :width] = k
                v_cache[rows, :, :width] = v
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True,
                                                     scale=attn.scaling)
            else:
                k_cache[write_rows, :, write_pos] = k[:, :, 0]
                v_cache[write_rows, :, write_pos] = v[:, :, 0]
                out = F.scaled_dot_product_attention(
                    q, k_cache[:batch, :, :span], v_cache[:batch, :, :span], attn_mask=mask,
                    enable_gqa=True, scale=attn.scaling)
            out = out.transpose(1, 2).reshape(batch, width, -1)
            hidden = hidden + self._linear(out, attn.o_proj, (index, "o_proj"), lora, draft)
            mlp = layer.mlp
            x = layer.post_attention_layernorm(hidden)
            gate, up = self._project(x, (mlp.gate_proj, mlp.up_proj), index, "gate_up", lora,
                                     draft)
            hidden = hidden + self._linear(mlp.act_fn(gate) * up, mlp.down_proj,
                                           (index, "down_proj"), lora, draft)
        if start is not None:
            return self.lm_head(self.norm(hidden)).float()
        last = self.norm(hidden[:, -1])
        if draft is not None:
            return draft.head(last)
        return self.lm_head(last).float()


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


LENGTH_STEP = 512  # past this, the cache grows by this many positions at a time


def _length_step(n: int) -> int:
    n = max(n, 64)
    return _pow2(n) if n <= LENGTH_STEP else -(-n // LENGTH_STEP) * LENGTH_STEP


def _projection(layer: Any, name: str) -> Any:
    for part in (layer.self_attn, layer.mlp):
        found = getattr(part, name, None)
        if found is not None:
            return found
    return None


def eos_ids(model: Any) -> set[int]:
    """The token ids that end an answer (generation config first, then the model config)."""
    found = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if found is None:
        found = getattr(model.config, "eos_token_id", None)
    if found is None:
        return set()
    return {int(found)} if isinstance(found, int) else {int(t) for t in found}


def greedy(model: Any, prompt: list[int], max_new_tokens: int,
           adapter: LoraAdapter | None = None) -> list[int]:
    """One prompt, greedy, through BatchDecoder: the tokens plain `generate` would give."""
    stop = eos_ids(model)
    limit = getattr(model.config, "max_position_embeddings", 2048)
    decoder = BatchDecoder(model, max_rows=1, max_len=min(limit, len(prompt) + max_new_tokens + 1))
    tokens = [decoder.add(prompt, adapter)]
    while tokens[-1] not in stop and len(tokens) < max_new_tokens:
        tokens.append(decoder.step([tokens[-1]])[0])
    return tokens
