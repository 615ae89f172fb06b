"""The loss curve of a fine-tune (train and validation loss per epoch) as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def loss_plot(history: Sequence[dict[str, Any]], path: Path | str, *,
              title: str = "Fine-tuning loss", best_epoch: int | None = None) -> Path:
    """Draw train and validation loss per epoch into `path` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the chat adapters post the file
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(6.4, 4.0), dpi=120)
    axes = figure.subplots()
    epochs = [int(h["epoch"]) for h in history]
    train = [h.get("train_loss") for h in history]
    axes.plot(epochs, train, marker="o", label="train loss")
    valid = [(e, h["val_loss"]) for e, h in zip(epochs, history) if h.get("val_loss") is not None]
    if valid:
        axes.plot([e for e, _ in valid], [v for _, v in valid], marker="s",
                  label="validation loss")
    if best_epoch:
        axes.axvline(best_epoch, color="grey", linestyle="--", linewidth=1,
                     label=f"best epoch ({best_epoch})")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss per answer token")
    axes.set_title(title)
    if epochs:
        axes.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
