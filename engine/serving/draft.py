"""A 4-bit copy of a base model's weights that guesses tokens for speculative decoding.

On a CPU one decode step reads every fp32 weight (540 MB for SmolLM2-135M), so it is memory
bound. `DraftWeights` holds the same layers packed 4-bit in groups of 32 (the bundled GGUF's
layers are Q4_1, 4-bit in blocks of 32, so the packing loses little) and the output layer in
fp16: a step with them reads about a sixth of the bytes. `BatchDecoder.step(..., draft=...)`
runs those weights over the row's own KV cache; `engine.serving.speculative.speculate_with_draft`
guesses several tokens that way, checks them all with the full weights in one pass, and
keeps only what the full model chooses itself, so the answer stays the full model's answer.

The draft is built only where it pays: on the CPU, with torch's 4-bit kernels present, when a
packed matrix multiply is measured at least `MIN_SPEEDUP` times faster than the fp32 one
(CPUs without fast bf16 paths fail that check and keep prompt-lookup speculation).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

GROUP = 32  # input columns sharing one 4-bit scale and zero point (GGUF Q4_1's block)
MIN_SPEEDUP = 2.0  # packed / fp32 speed on the output layer below which no draft is built
# Projections that read the same input are packed as one matrix: one multiply instead of 3+2.
FUSED = {"qkv": ("q_proj", "k_proj", "v_proj"), "o_proj": ("o_proj",),
         "gate_up": ("gate_proj", "up_proj"), "down_proj": ("down_proj",)}


class DraftWeights:
    """Packed copies of a Llama-style model's projections and output layer."""

    def __init__(self, layers: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]],
                 head: torch.Tensor) -> None:
        self.layers = layers  # (layer, FUSED name) -> (packed int4, scales and zeros)
        self.head_weight = head  # fp16 [vocab, hidden]

    def linear(self, x: torch.Tensor, key: tuple[int, str]) -> torch.Tensor:
        packed, scales = self.layers[key]
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, packed, GROUP, scales)
        return out.to(x.dtype).reshape(*x.shape[:-1], out.shape[-1])

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(torch.float16), self.head_weight).float()


def available(model: Any) -> bool:
    """True when a 4-bit draft can run this model here (CPU, fp32, kernels, group sizes)."""
    kernels = hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu") and hasattr(
        torch.ops.aten, "_convert_weight_to_int4pack_for_cpu")
    weight = model.get_input_embeddings().weight
    if not kernels or weight.device.type != "cpu" or weight.dtype != torch.float32:
        return False
    return all(weight.shape[1] % GROUP == 0 for weight in draft_matrices(model).values())


def build(model: Any, *, check_speed: bool = True) -> DraftWeights | None:
    """Pack the model's weights, or None where a draft cannot run or would not be faster."""
    if not available(model):
        return None
    try:
        if check_speed and _speedup(model.lm_head.weight) < MIN_SPEEDUP:
            log.info("4-bit draft not used: packed matrix multiplies are not fast on this CPU")
            return None
        started = time.monotonic()
        with torch.inference_mode():
            layers = {key: pack(weight) for key, weight in draft_matrices(model).items()}
            head = model.lm_head.weight.detach().to(torch.float16)
        log.info("4-bit draft built in %.1f s", time.monotonic() - started)
        return DraftWeights(layers, head)
    except (RuntimeError, NotImplementedError) as exc:  # a torch build without these kernels
        log.info("4-bit draft not used: %s", exc)
        return None


def pack(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric 4-bit quantization in groups of GROUP input columns, packed for the CPU
    kernel, which computes w = (q - 8) * scale + zero."""
    rows, cols = weight.shape
    groups = weight.detach().float().reshape(rows, cols // GROUP, GROUP)
    low, high = groups.amin(-1), groups.amax(-1)
    scale = ((high - low) / 15).clamp(min=1e-8)
    q = ((groups - low[..., None]) / scale[..., None]).round().clamp(0, 15)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
        q.to(torch.int32).reshape(rows, cols), 1)
    scales = torch.stack([scale, low + 8 * scale], -1).transpose(0, 1).contiguous()
    return packed, scales.to(torch.bfloat16)


def draft_matrices(model: Any) -> dict[tuple[int, str], torch.Tensor]:
    """The full-precision matrices a draft packs: (layer, FUSED name) -> weight, with the
    projections of one input stacked (their outputs side by side)."""
    found = {}
    for index, layer in enumerate(model.model.layers):
        for fused, names in FUSED.items():
            parent = layer.mlp if fused in ("gate_up", "down_proj") else layer.self_attn
            weights = [getattr(parent, name).weight.detach() for name in names]
            found[(index, fused)] = weights[0] if len(weights) == 1 else torch.cat(weights)
    return found


def _speedup(weight: torch.Tensor) -> float:
    """fp32 time / packed time for one token through `weight` (best of a few runs)."""
    with torch.inference_mode():
        packed, scales = pack(weight)
        x = torch.randn(1, weight.shape[1])
        xb = x.to(torch.bfloat16)

        def best(run: Any) -> float:
            run()
            times = []
            for _ in range(9):
                started = time.perf_counter()
                run()
                times.append(time.perf_counter() - started)
            return min(times)

        fp32 = best(lambda: F.linear(x, weight))
        int4 = best(lambda: torch.ops.aten._weight_int4pack_mm_for_cpu(xb, packed, GROUP, scales))
    return fp32 / max(int4, 1e-9)
