"""Task heads on the fused representation: multi-label diagnosis (sigmoid logits) and an anomaly score.

Both output raw logits; :func:`torch.sigmoid` turns them into probabilities / scores in ``[0, 1]``.

>>> import torch
>>> tasks = [TaskSpec("diagnosis", "multilabel", ("abnormal", "tumour"))]
>>> tasks.append(TaskSpec("anomaly", "anomaly", ("score",)))
>>> heads = build_heads(tasks, 8)
>>> {k: tuple(h(torch.zeros(3, 8)).shape) for k, h in heads.items()}
{'diagnosis': (3, 2), 'anomaly': (3, 1)}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from medmm.errors import ConfigError

__all__ = ["TASK_KINDS", "AnomalyHead", "DiagnosisHead", "TaskSpec", "build_heads"]

TASK_KINDS = ("multilabel", "anomaly")


@dataclass(frozen=True)
class TaskSpec:
    """A task: its name, kind (``multilabel`` or ``anomaly``) and label names (one for anomaly)."""

    name: str
    kind: str
    labels: tuple[str, ...]


class DiagnosisHead(nn.Module):
    """Multi-label diagnosis: one sigmoid logit per label."""

    def __init__(self, in_dim: int, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, n_labels))

    def forward(self, h: Tensor) -> Tensor:
        """``[B, in_dim]`` -> logits ``[B, n_labels]``."""
        out: Tensor = self.net(h)
        return out


class AnomalyHead(nn.Module):
    """Anomaly score: a small MLP to one logit (sigmoid -> score in [0, 1])."""

    def __init__(self, in_dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, h: Tensor) -> Tensor:
        """``[B, in_dim]`` -> logit ``[B, 1]``."""
        out: Tensor = self.net(h)
        return out


def build_heads(tasks: Sequence[TaskSpec], in_dim: int) -> nn.ModuleDict:
    """One head per task, keyed by task name."""
    heads = nn.ModuleDict()
    for t in tasks:
        if t.kind == "multilabel":
            heads[t.name] = DiagnosisHead(in_dim, len(t.labels))
        elif t.kind == "anomaly":
            if len(t.labels) != 1:
                raise ConfigError(
                    f"anomaly task {t.name!r} must have exactly one label, got {list(t.labels)}"
                )
            heads[t.name] = AnomalyHead(in_dim)
        else:
            raise ConfigError(f"task {t.name!r}: unknown kind {t.kind!r}; choose one of {list(TASK_KINDS)}")
    return heads
