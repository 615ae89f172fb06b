"""LoRA fine-tuning as one explicit loop: batches, answer-only loss, checkpoints, resume."""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.errors import Cancelled, InvalidInput
from engine.training.checkpoint import (
    CHECKPOINT,
    fingerprint,
    load_weights,
    save,
    trainable_weights,
)
from engine.training.config import TrainConfig, default_epochs, lr_factor
from engine.training.encoding import IGNORE, Encoded, Messages, encode_all
from engine.training.threads import cpu_threads


@dataclass
class TrainResult:
    """What a run produced. `model` is the PEFT model holding the kept adapter weights."""

    model: Any
    history: list[dict[str, Any]]  # per epoch: epoch, train_loss, val_loss, lr, seconds
    best_epoch: int  # lowest validation loss (the last epoch when there is no validation)
    epochs_kept: int  # epochs behind the weights in `model` (best_epoch under early stopping)
    epochs_planned: int
    stopped_early: bool
    train_seconds: float  # this call's training time, validation included
    tokens: int  # real (unpadded) tokens trained on in this call
    tokens_per_s: float
    resumed_from_epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def make_batches(encoded: Sequence[Encoded], batch_size: int, seed: int) -> list[list[int]]:
    """Indices in batches of similar length (little padding), in an order fixed by the seed."""
    rng = random.Random(seed)
    order = list(range(len(encoded)))
    rng.shuffle(order)
    chunk = batch_size * 16  # sort within large chunks: similar lengths, still shuffled
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: len(encoded[i][0]))
        batches += [part[k:k + batch_size] for k in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(encoded: Sequence[Encoded], pad_id: int, device: Any) -> tuple[Any, Any]:
    """Right-padded ids and labels. No attention mask is needed: under causal attention a real
    token never sees the padding after it, and padding carries no loss."""
    import torch

    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    for row, (x, y) in enumerate(encoded):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
    return ids.to(device), labels.to(device)


def answer_loss_sum(model: Any, ids: Any, labels: Any) -> tuple[Any, int]:
    """Summed cross-entropy over the answer tokens, and their count.

    The output layer (49,152 x 576 on SmolLM2) runs only on positions that predict an answer
    token: most of each example is prompt, whose logits nobody needs."""
    import torch.nn.functional as F

    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logits = causal.get_output_embeddings()(hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum"), int(keep.sum())


def mean_answer_loss(model: Any, encoded: Sequence[Encoded], pad_id: int,
                     batch_size: int = 8) -> float:
    """Mean loss per answer token (the validation loss), computed without gradients."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    with torch.inference_mode(), _autocast(device), cpu_threads(device):
        for k in range(0, len(order), batch_size):
            ids, labels = collate([encoded[i] for i in order[k:k + batch_size]], pad_id, device)
            loss, n = answer_loss_sum(model, ids, labels)
            total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(count, 1)


def train(model: Any, tokenizer: Any, train: Sequence[Messages], validation: Sequence[Messages],
          config: TrainConfig, *, on_progress: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None, checkpoint_dir: Path | None = None,
          resume: bool = True, clock: Callable[[], float] = time.perf_counter) -> TrainResult:
    """Fine-tune LoRA adapters on `model` (a causal LM, changed in place) and return them.

    Examples are lists of {"role", "content"} messages. A checkpoint is written after every
    epoch to checkpoint_dir; with resume=True a later call with the same data and config
    continues after the last finished epoch. should_stop() is checked before every step and
    raises Cancelled; on_progress gets a dict after every optimizer step and epoch."""
    import torch
    from peft import LoraConfig, get_peft_model

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_enc = encode_all(tokenizer, train, config.max_length)
    val_enc = encode_all(tokenizer, validation, config.max_length)
    if not train_enc:
        raise InvalidInput("There is nothing to train on: no example has an answer. "
                           "Check that the file has an answer column.")
    epochs = config.epochs or default_epochs(len(train_enc))
    device = _place(model, config.device)
    torch.manual_seed(config.seed)  # LoRA's A matrices are initialised from it
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, bias="none",
                      lora_dropout=config.lora_dropout, task_type="CAUSAL_LM",
                      target_modules=list(config.target_modules))
    peft_model = get_peft_model(model, lora)
    try:
        with cpu_threads(device):
            return _run(peft_model, train_enc, val_enc, pad_id, epochs, device, config,
                        on_progress, should_stop, checkpoint_dir, resume, clock)
    except BaseException:
        peft_model.unload()  # a failed or cancelled run hands the base model back unchanged
        raise


def _run(peft_model: Any, train_enc: list[Encoded], val_enc: list[Encoded], pad_id: int,
         epochs: int, device: Any, config: TrainConfig,
         on_progress: Callable[[dict], None] | None, should_stop: Callable[[], bool] | None,
         checkpoint_dir: Path | None, resume: bool, clock: Callable[[], float]) -> TrainResult:
    import torch

    params = [p for p in peft_model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.learning_rate, momentum=0.9,
                                    weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate,
                                      weight_decay=config.weight_decay)
    n_batches = -(-len(train_enc) // config.batch_size)
    steps_per_epoch = -(-n_batches // config.grad_accum)
    total_steps = steps_per_epoch * epochs
    warmup = int(config.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup, total_steps, config.lr_schedule))

    state = dict(epoch=0, history=[], best_epoch=0, best_loss=float("inf"), bad_epochs=0,
                 best_weights=None, stopped_early=False)
    data_print = fingerprint(config, epochs, train_enc, val_enc)
    path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    if path and resume and path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.get("fingerprint") == data_print:
            load_weights(peft_model, saved["weights"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["rng"])
            state.update(saved["state"])
    resumed_from = state["epoch"]

    started, tokens, step = clock(), 0, state["epoch"] * steps_per_epoch
    done_before = step
    peft_model.train()
    while state["epoch"] < epochs and not state["stopped_early"]:
        epoch = state["epoch"] + 1
        epoch_started, epoch_loss, epoch_count = clock(), 0.0, 0
        batches = make_batches(train_enc, config.batch_size, config.seed * 100_003 + epoch)
        for g in range(0, len(batches), config.grad_accum):
            if should_stop is not None and should_stop():
                raise Cancelled(f"Training stopped during epoch {epoch} of {epochs}.")
            group = [[train_enc[i] for i in b] for b in batches[g:g + config.grad_accum]]
            n_answer = sum(sum(1 for y in lab[1:] if y != IGNORE) for b in group for _, lab in b)
            for batch in group:
                ids, labels = collate(batch, pad_id, device)
                with _autocast(device):
                    loss_sum, _ = answer_loss_sum(peft_model, ids, labels)
                (loss_sum / n_answer).backward()
                epoch_loss += float(loss_sum.detach())
                tokens += sum(len(x) for x, _ in batch)
            epoch_count += n_answer
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            elapsed = clock() - started
            rate = elapsed / max(1, step - done_before)
            if on_progress is not None:
                on_progress(dict(event="step", epoch=epoch, epochs=epochs, step=step,
                                 total_steps=total_steps, loss=epoch_loss / max(epoch_count, 1),
                                 lr=scheduler.get_last_lr()[0], eta_s=rate * (total_steps - step),
                                 tokens_per_s=tokens / elapsed if elapsed > 0 else 0.0))
        val_loss = mean_answer_loss(peft_model, val_enc, pad_id) if val_enc else None
        peft_model.train()
        state["history"].append(dict(epoch=epoch, train_loss=epoch_loss / max(epoch_count, 1),
                                     val_loss=val_loss, lr=scheduler.get_last_lr()[0],
                                     seconds=clock() - epoch_started))
        score = val_loss if val_loss is not None else -epoch  # no validation: latest is best
        if score < state["best_loss"]:
            state.update(best_loss=score, best_epoch=epoch, bad_epochs=0,
                         best_weights=trainable_weights(peft_model) if config.early_stopping else None)
        else:
            state["bad_epochs"] += 1
            if config.early_stopping and state["bad_epochs"] >= config.early_stopping:
                state["stopped_early"] = True
        state["epoch"] = epoch
        if path:
            save(path, dict(fingerprint=data_print, weights=trainable_weights(peft_model),
                             optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                             rng=torch.get_rng_state(), state=state))
        if on_progress is not None:
            on_progress(dict(state["history"][-1], event="epoch", epochs=epochs, step=step,
                             total_steps=total_steps))

    kept = state["epoch"]
    if config.early_stopping and state["best_weights"] is not None:
        load_weights(peft_model, state["best_weights"])
        kept = state["best_epoch"]
    peft_model.eval()
    seconds = clock() - started
    return TrainResult(model=peft_model, history=list(state["history"]),
                       best_epoch=state["best_epoch"], epochs_kept=kept, epochs_planned=epochs,
                       stopped_early=state["stopped_early"], train_seconds=seconds,
                       tokens=tokens, tokens_per_s=tokens / seconds if seconds > 0 else 0.0,
                       resumed_from_epoch=resumed_from)


def _place(model: Any, wanted: str) -> Any:
    import torch

    current = next(model.parameters()).device
    if wanted == "auto" or current.type == wanted:
        return current
    if wanted == "cuda" and not torch.cuda.is_available():
        raise InvalidInput("device is cuda but this machine has no usable CUDA GPU; "
                           "use device=cpu or auto.")
    model.to(wanted)
    return next(model.parameters()).device


def _autocast(device: Any) -> Any:
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
