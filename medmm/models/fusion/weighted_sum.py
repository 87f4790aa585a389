"""Learned weighted sum: one learned scalar per modality, softmax-normalised over present modalities.

>>> import torch
>>> f = WeightedSumFusion({"a": 3, "b": 2}, out_dim=4)
>>> out = f({"a": torch.randn(2, 3), "b": torch.randn(2, 2)}, torch.tensor([[True, False], [True, True]]))
>>> out.weights.tolist()
[[1.0, 0.0], [0.5, 0.5]]
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from medmm.models.fusion.base import Fusion, FusionOutput, masked_softmax

__all__ = ["WeightedSumFusion"]


class WeightedSumFusion(Fusion):
    """Projections plus a learned logit per modality (the same for every sample)."""

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims, out_dim)
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})
        self.logits = nn.Parameter(torch.zeros(len(dims)))

    def fuse(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> FusionOutput:
        stacked = self._stack_projected(self.proj, embeddings, mask)
        weights = masked_softmax(self.logits.expand(mask.shape[0], -1), mask)
        return FusionOutput((stacked * weights.unsqueeze(-1)).sum(dim=1), weights)
