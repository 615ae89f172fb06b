"""LoRA adapters for the batched decoder: read a PEFT folder into per-projection A/B pairs, and
stack the adapters of one batch side by side so each projection's deltas are two multiplies."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.errors import ModelUnavailable

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.[^.]+)?\.weight$")


@dataclass
class LoraAdapter:
    """One PEFT LoRA adapter: (layer, projection) -> (A [r, in], B [out, r], scaling)."""

    path: str
    weights: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor, float]] = field(
        default_factory=dict)


def load_lora(folder: str | Path, device: Any, dtype: Any) -> LoraAdapter:
    """Read a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors)."""
    folder = Path(folder)
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise ModelUnavailable(
            f"The adapter folder {folder} is missing adapter_config.json; retrain the model or "
            "roll back to a version whose files exist (`/store rollback MODEL VERSION`).")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora"):
        raise ModelUnavailable(
            f"The adapter in {folder} is not a plain LoRA adapter; only LoRA adapters can answer.")
    tensors = _read_tensors(folder)
    alpha, rslora = float(config.get("lora_alpha", 8)), bool(config.get("use_rslora"))
    patterns = config.get("alpha_pattern") or {}
    pairs: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = _KEY.search(key)
        if match is None or match.group(2) not in PROJECTIONS:
            raise ModelUnavailable(
                f"The adapter in {folder} changes {key}, which chat cannot apply; train LoRA on "
                "the attention and MLP projections only.")
        layer, name, part = int(match.group(1)), match.group(2), match.group(3)
        pairs.setdefault((layer, name), {})[part] = tensor.to(device=device, dtype=dtype)
    adapter = LoraAdapter(path=str(folder))
    for (layer, name), ab in pairs.items():
        a, b = ab["A"], ab["B"]
        module = f"model.layers.{layer}.{'mlp' if name in PROJECTIONS[4:] else 'self_attn'}.{name}"
        a_value = next((float(v) for p, v in patterns.items()
                        if re.match(rf"(.*\.)?{p}$", module)), alpha)
        rank = a.shape[0]
        adapter.weights[(layer, name)] = (a, b, a_value / (rank ** 0.5 if rslora else rank))
    return adapter


def _read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    safetensors_file = folder / "adapter_model.safetensors"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        return load_file(str(safetensors_file))
    bin_file = folder / "adapter_model.bin"
    if bin_file.is_file():
        return torch.load(bin_file, map_location="cpu", weights_only=True)
    raise ModelUnavailable(f"The adapter folder {folder} holds no adapter weights.")


@dataclass(frozen=True)
class RowLora:
    """LoRA for a batch: per projection, every adapter's A and B side by side (A [R, in],
    B [out, R], R = the ranks summed) and the blocks (adapter id, rank, scaling) they hold;
    `masks` per block layout ([rows, 1, R]: a row's own adapter's scaling on its columns,
    zero on the others'), or None when every row uses the one adapter. Each projection's
    deltas for the whole batch are then two matrix multiplies instead of one pair per
    adapter with row gathers."""

    stacks: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor, tuple]]
    masks: dict[tuple, torch.Tensor] | None


STACKS_KEPT = 4  # adapter combinations whose stacked copies a decoder keeps (~20 MB per
# r=16 adapter of SmolLM2-135M in each)


def stack(adapters: list[LoraAdapter]) -> dict[tuple[int, str], tuple[torch.Tensor,
                                                                       torch.Tensor, tuple]]:
    stacks = {}
    for key in sorted({key for adapter in adapters for key in adapter.weights}):
        having = [(id(adapter), adapter.weights[key]) for adapter in adapters
                  if key in adapter.weights]
        if len(having) == 1:
            stacked_a, stacked_b = having[0][1][0], having[0][1][1]
        else:
            stacked_a = torch.cat([a for _, (a, _, _) in having])
            stacked_b = torch.cat([b for _, (_, b, _) in having], dim=1)
        blocks = tuple((adapter_id, a.shape[0], scaling) for adapter_id, (a, _, scaling) in having)
        stacks[key] = (stacked_a, stacked_b, blocks)
    return stacks


_MODULE = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)$")


def adapter_from_model(model: Any, dtype: Any = None) -> LoraAdapter | None:
    """The active LoRA weights of a model holding PEFT layers (a PeftModel, or the base
    model PEFT injected its layers into), without copying where they already are in `dtype`
    (the base weights' dtype the decoder multiplies in): None when it has none active.

    Raises ModelUnavailable when a LoRA layer sits where the batched decoder cannot apply it
    (another module than the attention and MLP projections)."""
    adapter = LoraAdapter(path="<in memory>")
    for name, module in model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if not isinstance(lora_a, torch.nn.ModuleDict) or not len(lora_a):
            continue
        if getattr(module, "merged", False) or getattr(module, "disable_adapters", False):
            continue  # merged into the base weights, or switched off: the base is the model
        active = getattr(module, "active_adapters", None) or list(lora_a.keys())
        if len(active) != 1 or active[0] not in lora_a:
            raise ModelUnavailable(f"{name} runs several LoRA adapters at once")
        key = active[0]
        if getattr(module, "use_dora", {}).get(key, False):
            raise ModelUnavailable(f"{name} is a DoRA layer, not a plain LoRA one")
        match = _MODULE.search(name)
        if match is None or match.group(2) not in PROJECTIONS:
            raise ModelUnavailable(f"{name} has LoRA outside the attention and MLP projections")
        a, b = lora_a[key].weight.detach(), module.lora_B[key].weight.detach()
        if dtype is not None:
            a, b = a.to(dtype), b.to(dtype)
        adapter.weights[(int(match.group(1)), match.group(2))] = (a, b,
                                                                  float(module.scaling[key]))
    return adapter if adapter.weights else None
