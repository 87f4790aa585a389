"""PNG plots: training history (losses, LR) and metrics with confidence intervals (matplotlib, Agg).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> plot_history([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "lr": 0.1}], d / "h.png").exists()
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_history", "plot_metrics"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Train/validation loss per epoch.

    An undefined validation loss (``None``: no val split, or no known label in it) is left out; when
    every epoch's is, the legend says "validation: undefined (no labels)" instead of drawing nothing.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    val = [(e, h["val_loss"]) for e, h in zip(epochs, history, strict=True) if h.get("val_loss") is not None]
    if val:
        ax.plot([e for e, _ in val], [v for _, v in val], label="validation")
    else:
        ax.plot([], [], " ", label="validation: undefined (no labels)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_metrics(
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path, title: str = ""
) -> Path:
    """Bar chart of the macro metrics with 95% CI error bars."""
    plt = _plt()
    macro = metrics["macro"]
    names = list(macro)
    vals = [macro[n]["value"] for n in names]
    err = [
        [max(0.0, macro[n]["value"] - macro[n]["lo"]) for n in names],
        [max(0.0, macro[n]["hi"] - macro[n]["value"]) for n in names],
    ]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(names, vals, yerr=err, capsize=3, color="#4c72b0")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
