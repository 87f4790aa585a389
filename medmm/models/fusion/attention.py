"""Attention over modalities: a per-sample score for each present modality, masked softmax.

Scores come from ``v^T tanh(W h_m)`` on the projected embedding ``h_m`` (additive attention), so the
weights differ per sample and are returned for inspection (``predictions.parquet`` stores them).

>>> import torch
>>> f = AttentionFusion({"a": 3, "b": 2}, out_dim=4)
>>> out = f({"a": torch.randn(2, 3), "b": torch.randn(2, 2)}, torch.tensor([[True, False], [True, True]]))
>>> out.weights[0].tolist(), round(float(out.weights[1].sum()), 5)
([1.0, 0.0], 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from medmm.models.fusion.base import Fusion, FusionOutput, masked_softmax

__all__ = ["AttentionFusion"]


class AttentionFusion(Fusion):
    """Additive attention pooling over modality embeddings with per-sample weights."""

    def __init__(self, dims: Mapping[str, int], out_dim: int, attn_dim: int = 32) -> None:
        super().__init__(dims, out_dim)
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})
        self.modality_bias = nn.Parameter(torch.zeros(len(dims), out_dim))  # tells modalities apart
        self.score = nn.Sequential(nn.Linear(out_dim, attn_dim), nn.Tanh(), nn.Linear(attn_dim, 1))

    def fuse(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> FusionOutput:
        stacked = self._stack_projected(self.proj, embeddings, mask)
        scores = self.score(stacked + self.modality_bias).squeeze(-1)
        weights = masked_softmax(scores, mask)
        return FusionOutput((stacked * weights.unsqueeze(-1)).sum(dim=1), weights)
