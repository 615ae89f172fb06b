"""How a fine-tune runs: TrainConfig (one typed field per setting), the epochs picked from a
dataset's size, user option parsing with errors that name the setting, the learning-rate
schedule. Torch-free."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from engine.errors import InvalidInput

LLAMA_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def default_epochs(n_train: int) -> int:
    """Epochs when the user names none, picked from the dataset size as hosted services do.

    Three passes for large sets (fewer past 25,000 examples); small sets get enough passes
    for about 400 example-updates, at most 25: a 40-pair FAQ needs a dozen passes before the
    model repeats its answers (FACTS: 8 epochs on 20 pairs reached only F1 0.65)."""
    if n_train * 3 > 25_000:
        return max(1, 25_000 // max(n_train, 1))
    return int(min(25, max(3, math.ceil(400 / max(n_train, 1)))))


def grounded_default_epochs(n_plain: int, n_grounded: int) -> int:
    """default_epochs for a set with grounded copies: each grounded copy counts as half an
    example (an entry's two copies and its plain pair make two, not three), so adding the
    copies costs fewer passes over the entries than a third of them would. On the sample
    FAQ's 46 entries that is 5 epochs where counting every copy gives 3, which left the
    adapter copying its context badly (docs/grounding.md)."""
    return default_epochs(n_plain + n_grounded // 2)


def continuation_epochs(epochs: int) -> int:
    """Epochs of a tune's final pass, which continues from the selection run's adapter on
    every example (the held-out and validation ones are new to it): half the selection's
    epochs, at least 2 (at most `epochs`). A third (4 of 12 on the sample FAQ) gave
    trained-question F1 0.98 against 1.00 for a second training from scratch (bench tune,
    docs/benchmarks.md)."""
    return max(1, min(epochs, max(2, math.ceil(epochs / 2))))


# What each setting accepts, in the words of the error message; (low, high) for numbers.
RULES: dict[str, tuple[str, Any]] = {
    "epochs": ("a whole number between 1 and 100", (1, 100)),
    "learning_rate": ("a number between 1e-07 and 1", (1e-7, 1.0)),
    "batch_size": ("a whole number between 1 and 512", (1, 512)),
    "grad_accum": ("a whole number between 1 and 256", (1, 256)),
    "optimizer": ("adamw or sgd", ("adamw", "sgd")),
    "weight_decay": ("a number between 0 and 1", (0.0, 1.0)),
    "warmup_ratio": ("a number between 0 and 0.9", (0.0, 0.9)),
    "lr_schedule": ("cosine, linear or constant", ("cosine", "linear", "constant")),
    "max_grad_norm": ("a number between 0 (no clipping) and 1000", (0.0, 1000.0)),
    "lora_r": ("a whole number between 1 and 512", (1, 512)),
    "lora_alpha": ("a whole number between 1 and 4096", (1, 4096)),
    "lora_dropout": ("a number between 0 and 0.9", (0.0, 0.9)),
    "early_stopping": ("a whole number between 0 (off) and 100", (0, 100)),
    "max_length": ("a whole number between 16 and 32768", (16, 32768)),
    "seed": ("a whole number between 0 and 2147483647", (0, 2**31 - 1)),
    "device": ("auto, cpu or cuda", ("auto", "cpu", "cuda")),
}
WHOLE = {"epochs", "batch_size", "grad_accum", "lora_r", "lora_alpha", "early_stopping",
         "max_length", "seed"}
ALIASES = {"lr": "learning_rate", "optim": "optimizer", "patience": "early_stopping",
           "early_stop": "early_stopping", "r": "lora_r", "alpha": "lora_alpha"}
SHOWN = {"learning_rate": "lr"}  # the name users type in chat
NOT_TRAINING = {"base", "name", "validation", "wait", "dry_run", "json"}


@dataclass(frozen=True)
class TuneOption:
    """One setting a user may give `tune`, wherever it is given: the command language
    (`epochs=3`), the command line (`--epochs 3`), Slack's tune modal and Discord's slash
    options are all built from TUNE_OPTIONS."""

    name: str  # as typed in chat: "lr"
    field: str  # the TrainConfig field it sets: "learning_rate"
    label: str  # a form's label: "Learning rate"
    type: str  # int|float|choice
    help: str
    example: str = ""  # a placeholder value for forms

    @property
    def choices(self) -> tuple[str, ...]:
        allowed = RULES[self.field][1]
        return tuple(allowed) if self.type == "choice" else ()

    @property
    def bounds(self) -> tuple[float, float] | None:
        """(lowest, highest) for a number, None for a choice."""
        allowed = RULES[self.field][1]
        return None if self.type == "choice" else (allowed[0], allowed[1])

    @property
    def flag(self) -> str:
        """The command-line flag: --learning-rate, --batch-size."""
        return "--" + self.field.replace("_", "-")


TUNE_OPTIONS: tuple[TuneOption, ...] = (
    TuneOption("epochs", "epochs", "Epochs", "int",
               "passes over the data (default: chosen from the file's size)", "3"),
    TuneOption("lr", "learning_rate", "Learning rate", "float", "learning rate, e.g. 1e-3",
               "0.001"),
    TuneOption("batch_size", "batch_size", "Batch size", "int", "examples per step", "8"),
    TuneOption("optimizer", "optimizer", "Optimizer", "choice", "adamw or sgd"),
    TuneOption("lora_r", "lora_r", "LoRA rank", "int", "LoRA rank", "16"),
    TuneOption("lora_alpha", "lora_alpha", "LoRA alpha", "int",
               "LoRA alpha (default: twice the rank)", "32"),
    TuneOption("early_stopping", "early_stopping", "Early stopping", "int",
               "epochs without a better validation loss before stopping (0: off)", "0"),
)
"""The tune options users see, in the order they are shown."""


def tune_usage(name: str = "NAME") -> str:
    """`tune NAME [base=MODEL] [epochs=N] [lr=X] ...`, from TUNE_OPTIONS."""
    shown = {"int": "N", "float": "X"}
    words = [f"[{o.name}={'|'.join(o.choices) if o.choices else shown[o.type]}]"
             for o in TUNE_OPTIONS]
    return f"tune {name} [base=MODEL] " + " ".join(words)


@dataclass(frozen=True)
class TrainConfig:
    """How one LoRA fine-tune runs. Defaults suit a ~100M-parameter model and a small FAQ."""

    epochs: int | None = None
    """Passes over the training examples; None picks them from the dataset size."""
    learning_rate: float = 2e-3
    """Peak learning rate, reached after warm-up (LoRA tolerates far more than full tuning)."""
    batch_size: int = 8
    """Examples per forward pass."""
    grad_accum: int = 1
    """Forward passes whose gradients add up to one optimizer step."""
    optimizer: str = "adamw"
    """adamw, or sgd with momentum 0.9."""
    weight_decay: float = 0.0
    """Decoupled weight decay on the LoRA weights."""
    warmup_ratio: float = 0.1
    """Share of the optimizer steps over which the learning rate climbs from 0."""
    lr_schedule: str = "cosine"
    """Decay after warm-up: cosine, linear or constant."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this norm (0 = no clipping)."""
    lora_r: int = 16
    """Rank of the LoRA matrices."""
    lora_alpha: int = 32
    """LoRA scale numerator: updates are scaled by alpha / r."""
    lora_dropout: float = 0.0
    """Dropout on LoRA inputs; 0 by default because the goal is to learn the file's answers."""
    target_modules: tuple[str, ...] = LLAMA_LINEAR
    """Module names that get LoRA: all linear projections of a Llama block."""
    early_stopping: int = 0
    """Stop after this many epochs without a better validation loss and keep the best
    epoch's weights (0 = off: run every epoch and keep the last)."""
    max_length: int = 1024
    """Longest tokenised example; longer ones are cut at the end."""
    seed: int = 0
    """Seeds LoRA initialisation, shuffling and dropout: same seed, same adapter."""
    device: str = "auto"
    """auto (wherever the model already is), cpu or cuda; cuda trains under bf16 autocast."""

    def __post_init__(self) -> None:
        for name, (expected, allowed) in RULES.items():
            value = getattr(self, name)
            if name == "epochs" and value is None:
                continue
            if isinstance(allowed[0], str):
                ok = value in allowed
            else:
                ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                      and allowed[0] <= value <= allowed[1]
                      and (name not in WHOLE or float(value).is_integer()))
            if not ok:
                raise InvalidInput(f"{SHOWN.get(name, name)} must be {expected}, not {value!r}.")
        if not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules):
            raise InvalidInput(f"target_modules must name at least one module, not "
                               f"{self.target_modules!r}.")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "TrainConfig":
        """A validated config from user options (strings from chat or the command line).

        Raises InvalidInput naming the setting: "epochs must be a whole number between 1 and
        100, not 'x'." Keys that belong to the job rather than to training are ignored."""
        values: dict[str, Any] = {}
        for raw_key, raw in options.items():
            key = str(raw_key).strip().lower().replace("-", "_")
            key = ALIASES.get(key, key)
            if key in NOT_TRAINING or raw is None:
                continue
            if key not in RULES:
                known = ", ".join(sorted(SHOWN.get(k, k) for k in RULES))
                raise InvalidInput(f"Unknown training option {raw_key!r}; known options: {known}.")
            values[key] = _parse(key, raw)
        if "lora_r" in values and "lora_alpha" not in values:
            values["lora_alpha"] = 2 * values["lora_r"]  # keep the default alpha / r ratio
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready hyperparameters, stored with the version."""
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data


def _parse(key: str, raw: Any) -> Any:
    expected, allowed = RULES[key]
    text = str(raw).strip()
    if isinstance(allowed[0], str):
        if text.lower() not in allowed:
            raise InvalidInput(f"{SHOWN.get(key, key)} must be {expected}, not {raw!r}.")
        return text.lower()
    try:
        value = float(text)
        if value != value or math.isinf(value) or (key in WHOLE and not value.is_integer()):
            raise ValueError(text)
        if not allowed[0] <= value <= allowed[1]:
            raise ValueError(text)
    except ValueError:
        raise InvalidInput(f"{SHOWN.get(key, key)} must be {expected}, not {raw!r}.") from None
    return int(value) if key in WHOLE else value


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Learning-rate multiplier at an optimizer step: linear warm-up, then the decay."""
    if warmup and step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
