"""Report encoder: per-finding present/absent/uncertain one-hot vectors -> MLP embedding.

:func:`finding_vector` builds the input from a report's ``(finding, status)`` rows (the
``report_labels`` table) and a fixed vocabulary; findings not mentioned get all three slots zero
("not mentioned" is a fourth, implicit state).

>>> rows = [("cardiomegaly", "present"), ("effusion", "absent")]
>>> finding_vector(rows, ["cardiomegaly", "effusion", "nodule"])
array([1., 0., 0., 0., 1., 0., 0., 0., 0.], dtype=float32)
>>> import torch
>>> tuple(ReportEncoder(n_inputs=9, out_dim=8)(torch.zeros(2, 9)).shape)
(2, 8)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from torch import Tensor, nn

__all__ = ["STATUSES", "ReportEncoder", "finding_vector"]

STATUSES = ("present", "absent", "uncertain")


def finding_vector(rows: Iterable[tuple[str, str]], vocabulary: Sequence[str]) -> np.ndarray:
    """One-hot ``[len(vocabulary) * 3]`` vector of (finding, status) pairs; unknown findings are ignored."""
    index = {f: i for i, f in enumerate(vocabulary)}
    out = np.zeros(len(vocabulary) * len(STATUSES), dtype=np.float32)
    for finding, status in rows:
        i = index.get(finding)
        if i is None or status not in STATUSES:
            continue
        out[i * len(STATUSES) + STATUSES.index(status)] = 1.0
    return out


class ReportEncoder(nn.Module):
    """Two-layer MLP over a finding vector."""

    def __init__(self, n_inputs: int, out_dim: int = 32, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.net = nn.Sequential(
            nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, n_inputs]`` -> ``[B, out_dim]``."""
        out: Tensor = self.net(x)
        return out
