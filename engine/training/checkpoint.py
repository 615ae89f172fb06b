"""Training checkpoints as tensors and JSON, never pickles: the LoRA weights, optimizer state,
RNG state and the best epoch's weights in one safetensors file; the schedule, the loop's
counters and the fingerprint of the data and config in a JSON file beside it.

A checkpoint is a folder. The tensors file is named after its content and written first;
`state.json` (which names it) is replaced atomically last, so a crash at any moment leaves
the previous checkpoint or the new one, never a mix. Nothing in it can run code when read.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from engine.training.config import TrainConfig
from engine.training.encoding import Encoded

CHECKPOINT = "last"  # the folder's name inside a job's checkpoint folder
STATE = "state.json"
FORMAT = 2  # 1 was a torch.save pickle (last.pt), never read again


def trainable_weights(peft_model: Any) -> dict[str, Any]:
    return {n: p.detach().to("cpu", copy=True) for n, p in peft_model.named_parameters()
            if p.requires_grad}


def load_weights(peft_model: Any, weights: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if name in weights:
                parameter.copy_(weights[name])


def optimizer_parts(state_dict: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An optimizer's state_dict as (tensors, JSON): per-parameter tensors keyed
    "optimizer.<index>.<name>", numbers and the parameter groups in the JSON."""
    import torch

    tensors: dict[str, Any] = {}
    numbers: dict[str, dict[str, Any]] = {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value
            else:
                numbers.setdefault(str(index), {})[name] = value
    return tensors, {"numbers": numbers, "param_groups": state_dict["param_groups"]}


def optimizer_state(tensors: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in saved["numbers"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": saved["param_groups"]}


def write(folder: Path, tensors: dict[str, Any], state: dict[str, Any]) -> None:
    """Write one checkpoint into `folder` (tensors first, then state.json atomically)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".tensors-{uuid.uuid4().hex[:8]}.tmp"
    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()},
              str(staging))
    digest = _sha256(staging)
    name = f"tensors-{digest[:16]}.safetensors"
    os.replace(staging, folder / name)
    temporary = folder / (STATE + ".tmp")
    temporary.write_text(json.dumps({**state, "format": FORMAT, "tensors": name,
                                     "tensors_sha256": digest}))
    os.replace(temporary, folder / STATE)  # the commit point
    for old in folder.glob("tensors-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def read(folder: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(tensors, state) of the checkpoint in `folder`, or None when there is none (or it is
    of an older format or damaged: training then starts over rather than trusting it)."""
    from safetensors.torch import load_file

    state_file = folder / STATE
    if not state_file.is_file():
        return None
    try:
        state = json.loads(state_file.read_text())
        tensors_file = folder / state["tensors"]
        if state.get("format") != FORMAT or _sha256(tensors_file) != state["tensors_sha256"]:
            return None
        return load_file(str(tensors_file)), state
    except (OSError, ValueError, KeyError):
        return None


def fingerprint(config: TrainConfig, epochs: int, train_enc: list[Encoded],
                 val_enc: list[Encoded]) -> str:
    digest = hashlib.sha256(repr((config.as_dict(), epochs)).encode())
    for ids, labels in train_enc + [([-1], [-1])] + val_enc:
        digest.update(repr((ids, labels)).encode())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()
