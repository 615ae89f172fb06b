"""LoRA fine-tuning as one explicit loop: batches, answer-only loss, checkpoints, resume."""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.errors import Cancelled, InvalidInput
from engine.training.checkpoint import (
    CHECKPOINT,
    fingerprint,
    load_weights,
    optimizer_parts,
    optimizer_state,
    read,
    trainable_weights,
    write,
)
from engine.training.config import TrainConfig, default_epochs, lr_factor
from engine.training.encoding import IGNORE, Encoded, Messages, encode_all
from engine.training.threads import cpu_threads
from engine.views import ProgressUpdate


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


SHARED_PREFIX_MIN = 8  # tokens every row must share before the prefix is computed once (0: never)


def shared_prefix(ids: Any, labels: Any, least: int | None = None) -> int:
    """How many leading tokens every row of the batch shares and none is trained to predict
    (the chat template's system prompt and turn opening): 0 when fewer than `least`."""
    least = SHARED_PREFIX_MIN if least is None else least
    rows, width = ids.shape
    if rows < 2 or not least:
        return 0
    same = int((ids == ids[:1]).all(0).long().cumprod(0).sum())
    quiet = int((labels == IGNORE).all(0).long().cumprod(0).sum())  # no loss up to here
    shared = min(same, quiet - 1, width - 1)  # the token after the prefix carries no loss
    return shared if shared >= least else 0


def answer_loss_sum(model: Any, ids: Any, labels: Any, *,
                    share_prefix: bool = True) -> tuple[Any, int]:
    """Summed cross-entropy over the answer tokens, and their count.

    The output layer (49,152 x 576 on SmolLM2) runs only on positions that predict an answer
    token: most of each example is prompt, whose logits nobody needs. The prefix every row
    shares (the system prompt: about a third of a short FAQ pair's tokens) goes through the
    model once for the batch, and the rows continue from its keys and values (gradients flow
    back through them, summed over the rows): the same loss, with less work."""
    import torch.nn.functional as F

    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = causal.get_decoder()
    shared = shared_prefix(ids, labels) if share_prefix else 0
    if shared:
        cache = decoder(input_ids=ids[:1, :shared], use_cache=True).cache
        cache.batch_repeat_interleave(ids.shape[0])
        hidden = decoder(input_ids=ids[:, shared:], cache=cache,
                         use_cache=True).last_hidden_state
    else:
        hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state
    targets = labels[:, shared + 1:]
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
          config: TrainConfig, *, on_progress: Callable[[ProgressUpdate], None] | None = None,
          should_stop: Callable[[], bool] | None = None, checkpoint_dir: Path | None = None,
          resume: bool = True, clock: Callable[[], float] = time.perf_counter,
          checkpoint_every: int = 0,
          on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
          start_from: dict[str, Any] | None = None) -> TrainResult:
    """Fine-tune LoRA adapters on `model` (a causal LM, changed in place) and return them.

    Examples are lists of {"role", "content"} messages. A checkpoint (safetensors + JSON) is
    written to checkpoint_dir every `checkpoint_every` optimizer steps (0: never mid-epoch)
    and after every epoch, then on_checkpoint(note) is called with the steps it covers; with
    resume=True a later call with the same data and config continues right after the last
    checkpointed step, with the same RNG state, so it ends with the same adapter as a run
    that was never stopped. should_stop() is checked before every step and raises Cancelled;
    on_progress gets a ProgressUpdate (event "start") before the first step this call
    trains, and one after every optimizer step and epoch.

    start_from: LoRA weights (trainable_weights() of an earlier run with the same LoRA
    settings) to continue from instead of a fresh adapter; the optimizer and schedule start
    afresh. They are part of the checkpoint's fingerprint."""
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
    if start_from is not None:
        _continue_from(peft_model, start_from)
    run = _Run(peft_model, config, epochs, device, train_enc, val_enc, pad_id,
               on_progress=on_progress, should_stop=should_stop, clock=clock,
               checkpoint=Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None,
               checkpoint_every=checkpoint_every, on_checkpoint=on_checkpoint,
               start_digest=weights_digest(start_from) if start_from is not None else "")
    try:
        with cpu_threads(device):
            if resume:
                run.resume()
            if on_progress is not None and not run.done:
                on_progress(ProgressUpdate(event="start", epoch=run.state.epoch + 1,
                                           epochs=epochs, step=run.step,
                                           total_steps=run.total_steps))
            while not run.done:
                run.epoch()
                run.save_checkpoint()
            return run.result()
    except BaseException:
        peft_model.unload()  # a failed or cancelled run hands the base model back unchanged
        raise


@dataclass
class _State:
    """What a checkpoint carries besides the weights and the optimizer."""

    epoch: int = 0  # epochs finished
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float = float("inf")
    bad_epochs: int = 0
    best_weights: dict[str, Any] | None = None  # kept only under early stopping
    stopped_early: bool = False
    # Inside the epoch under way (a checkpoint can fall mid-epoch):
    step_in_epoch: int = 0  # optimizer steps of it already done
    loss_sum: float = 0.0  # their summed answer loss
    answer_tokens: int = 0  # and the answer tokens it covers
    epoch_seconds: float = 0.0  # time spent on it before the checkpoint


class _Run:
    """One training run: the optimizer and schedule over the LoRA weights, one epoch at a
    time, checkpointed after each."""

    def __init__(self, model: Any, config: TrainConfig, epochs: int, device: Any,
                 train_enc: list[Encoded], val_enc: list[Encoded], pad_id: int, *,
                 on_progress: Callable[[ProgressUpdate], None] | None,
                 should_stop: Callable[[], bool] | None, clock: Callable[[], float],
                 checkpoint: Path | None, checkpoint_every: int = 0,
                 on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
                 start_digest: str = "") -> None:
        import torch

        self.model, self.config, self.epochs, self.device = model, config, epochs, device
        self.train_enc, self.val_enc, self.pad_id = train_enc, val_enc, pad_id
        self.on_progress, self.should_stop, self.clock = on_progress, should_stop, clock
        self.checkpoint = checkpoint
        self.checkpoint_every, self.on_checkpoint = checkpoint_every, on_checkpoint
        self.params = [p for p in model.parameters() if p.requires_grad]
        if config.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.params, lr=config.learning_rate, momentum=0.9,
                                             weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(self.params, lr=config.learning_rate,
                                               weight_decay=config.weight_decay)
        n_batches = -(-len(train_enc) // config.batch_size)
        self.steps_per_epoch = -(-n_batches // config.grad_accum)
        self.total_steps = self.steps_per_epoch * epochs
        warmup = int(config.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup, self.total_steps, config.lr_schedule))
        self.state = _State()
        self.fingerprint = fingerprint(config, epochs, train_enc, val_enc) + start_digest
        self.resumed_from = 0
        self.started = clock()
        self.tokens = 0
        self.step = 0
        self.steps_before = 0  # steps a resumed run had already done
        self.saved_step = 0  # the step of the last checkpoint

    @property
    def done(self) -> bool:
        return self.state.epoch >= self.epochs or self.state.stopped_early

    def resume(self) -> None:
        """Continue right after the last checkpointed step of a checkpoint for this data and
        config (none, another run's, or a damaged one: start from the beginning)."""
        import torch

        if self.checkpoint is None:
            return
        saved = read(self.checkpoint)
        if saved is None or saved[1].get("fingerprint") != self.fingerprint:
            return
        tensors, state = saved
        load_weights(self.model, _prefixed(tensors, "weights."))
        self.optimizer.load_state_dict(optimizer_state(tensors, state["optimizer"]))
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(tensors["rng.cpu"])
        if torch.cuda.is_available() and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all([tensors[f"rng.cuda.{i}"]
                                          for i in range(state["cuda_rng"])])
        best = _prefixed(tensors, "best.")
        self.state = _State(**{**state["loop"], "best_weights": best or None})
        self.resumed_from = self.state.epoch
        self.step = self.steps_before = self.saved_step = (
            self.state.epoch * self.steps_per_epoch + self.state.step_in_epoch)

    def epoch(self) -> None:
        """Train one epoch, then validate and keep the best epoch's figures."""
        number = self.state.epoch + 1
        state = self.state
        started = self.clock() - state.epoch_seconds
        self.model.train()
        batches = make_batches(self.train_enc, self.config.batch_size,
                               self.config.seed * 100_003 + number)
        accum = self.config.grad_accum
        for g in range(state.step_in_epoch * accum, len(batches), accum):
            if self.should_stop is not None and self.should_stop():
                raise Cancelled(f"Training stopped during epoch {number} of {self.epochs}.")
            group = [[self.train_enc[i] for i in b] for b in batches[g:g + accum]]
            summed, counted = self._optimizer_step(group)
            state.step_in_epoch += 1
            state.loss_sum, state.answer_tokens = state.loss_sum + summed, state.answer_tokens + counted
            self._report_step(number, state.loss_sum / max(state.answer_tokens, 1))
            if (self.checkpoint_every and self.step % self.checkpoint_every == 0
                    and g + accum < len(batches)):  # the epoch's own checkpoint follows
                state.epoch_seconds = self.clock() - started
                self.save_checkpoint()
        loss_sum, answer_tokens = state.loss_sum, state.answer_tokens
        state.step_in_epoch, state.loss_sum, state.answer_tokens, state.epoch_seconds = 0, 0.0, 0, 0.0
        val_loss = mean_answer_loss(self.model, self.val_enc, self.pad_id) if self.val_enc else None
        self.model.train()
        self.state.history.append(dict(epoch=number, train_loss=loss_sum / max(answer_tokens, 1),
                                       val_loss=val_loss, lr=self.scheduler.get_last_lr()[0],
                                       seconds=self.clock() - started))
        self._keep_best(number, val_loss)
        self.state.epoch = number
        if self.on_progress is not None:
            last = self.state.history[-1]
            self.on_progress(ProgressUpdate(
                event="epoch", epoch=number, epochs=self.epochs, step=self.step,
                total_steps=self.total_steps, train_loss=last["train_loss"], val_loss=val_loss))

    def _optimizer_step(self, group: list[list[Encoded]]) -> tuple[float, int]:
        """Forward and backward over a group of batches, then one optimizer step. Returns
        the summed answer loss and the number of answer tokens it covers."""
        import torch

        n_answer = sum(sum(1 for y in lab[1:] if y != IGNORE) for b in group for _, lab in b)
        summed = 0.0
        for batch in group:
            ids, labels = collate(batch, self.pad_id, self.device)
            with _autocast(self.device):
                loss, _ = answer_loss_sum(self.model, ids, labels)
            (loss / n_answer).backward()
            summed += float(loss.detach())
            self.tokens += sum(len(x) for x, _ in batch)
        if self.config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return summed, n_answer

    def _report_step(self, epoch: int, loss: float) -> None:
        if self.on_progress is None:
            return
        elapsed = self.clock() - self.started
        rate = elapsed / max(1, self.step - self.steps_before)
        self.on_progress(ProgressUpdate(
            event="step", epoch=epoch, epochs=self.epochs, step=self.step,
            total_steps=self.total_steps, loss=loss, eta_s=rate * (self.total_steps - self.step),
            tokens_per_s=self.tokens / elapsed if elapsed > 0 else 0.0))

    def _keep_best(self, epoch: int, val_loss: float | None) -> None:
        score = val_loss if val_loss is not None else -epoch  # no validation: latest is best
        state = self.state
        if score < state.best_loss:
            state.best_loss, state.best_epoch, state.bad_epochs = score, epoch, 0
            if self.config.early_stopping:
                state.best_weights = trainable_weights(self.model)
        else:
            state.bad_epochs += 1
            if self.config.early_stopping and state.bad_epochs >= self.config.early_stopping:
                state.stopped_early = True

    def save_checkpoint(self) -> None:
        """Write the checkpoint (tensors + JSON), then tell on_checkpoint which steps it holds."""
        import torch

        if self.checkpoint is None:
            return
        tensors, optimizer = optimizer_parts(self.optimizer.state_dict())
        tensors.update({f"weights.{k}": v for k, v in trainable_weights(self.model).items()})
        tensors.update({f"best.{k}": v for k, v in (self.state.best_weights or {}).items()})
        tensors["rng.cpu"] = torch.get_rng_state()
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        tensors.update({f"rng.cuda.{i}": t for i, t in enumerate(cuda)})
        loop = {f.name: getattr(self.state, f.name) for f in fields(_State)
                if f.name != "best_weights"}
        write(self.checkpoint, tensors, dict(fingerprint=self.fingerprint, optimizer=optimizer,
                                             scheduler=self.scheduler.state_dict(), loop=loop,
                                             cuda_rng=len(cuda)))
        note = dict(epoch=self.state.epoch + (1 if self.state.step_in_epoch else 0),
                    epochs=self.epochs, from_step=self.saved_step + 1, to_step=self.step,
                    total_steps=self.total_steps, mid_epoch=bool(self.state.step_in_epoch))
        self.saved_step = self.step
        if self.on_checkpoint is not None:
            self.on_checkpoint(note)

    def result(self) -> TrainResult:
        kept = self.state.epoch
        if self.config.early_stopping and self.state.best_weights is not None:
            load_weights(self.model, self.state.best_weights)
            kept = self.state.best_epoch
        self.model.eval()
        seconds = self.clock() - self.started
        return TrainResult(model=self.model, history=list(self.state.history),
                           best_epoch=self.state.best_epoch, epochs_kept=kept,
                           epochs_planned=self.epochs, stopped_early=self.state.stopped_early,
                           train_seconds=seconds, tokens=self.tokens,
                           tokens_per_s=self.tokens / seconds if seconds > 0 else 0.0,
                           resumed_from_epoch=self.resumed_from)


def weights_digest(weights: dict[str, Any]) -> str:
    """A short hash of LoRA weights (names, shapes and values)."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().to("cpu").contiguous()
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(tensor.float().numpy().tobytes())
    return digest.hexdigest()[:16]


def _continue_from(peft_model: Any, weights: dict[str, Any]) -> None:
    """Load an earlier run's LoRA weights into a fresh adapter; refuse ones that do not
    match it (other LoRA settings or another base model)."""
    own = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    if set(own) != set(weights) or any(tuple(own[n].shape) != tuple(weights[n].shape)
                                       for n in own):
        peft_model.unload()
        raise InvalidInput("The adapter to continue from does not match this model's LoRA "
                           "settings; train from scratch instead.")
    load_weights(peft_model, weights)


def _prefixed(tensors: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


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
