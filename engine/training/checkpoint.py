"""Training checkpoints: the LoRA weights, optimizer and schedule state of the last finished
epoch, written atomically, and the fingerprint that says which data and config they belong to."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from engine.training.config import TrainConfig
from engine.training.encoding import Encoded

CHECKPOINT = "last.pt"


def trainable_weights(peft_model: Any) -> dict[str, Any]:
    return {n: p.detach().to("cpu", copy=True) for n, p in peft_model.named_parameters()
            if p.requires_grad}


def load_weights(peft_model: Any, weights: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if name in weights:
                parameter.copy_(weights[name])


def save(path: Path, payload: dict[str, Any]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)  # a crash mid-write never leaves a torn checkpoint


def fingerprint(config: TrainConfig, epochs: int, train_enc: list[Encoded],
                 val_enc: list[Encoded]) -> str:
    digest = hashlib.sha256(repr((config.as_dict(), epochs)).encode())
    for ids, labels in train_enc + [([-1], [-1])] + val_enc:
        digest.update(repr((ids, labels)).encode())
    return digest.hexdigest()
