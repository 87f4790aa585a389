"""Concatenation + MLP. An absent modality is replaced by an explicit learned *missing* embedding
(one per modality) and the availability mask is appended, so the MLP knows what was missing; the
absent modality's encoder output is cut out with ``torch.where`` (no gradient reaches it).

>>> import torch
>>> f = ConcatFusion({"a": 3, "b": 2}, out_dim=4)
>>> out = f({"a": torch.randn(2, 3), "b": torch.randn(2, 2)}, torch.tensor([[True, False], [True, True]]))
>>> tuple(out.fused.shape), out.weights is None
((2, 4), True)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from medmm.models.fusion.base import Fusion, FusionOutput

__all__ = ["ConcatFusion"]


class ConcatFusion(Fusion):
    """``MLP([x_1 | missing_1, ..., x_M | missing_M, mask])``."""

    def __init__(self, dims: Mapping[str, int], out_dim: int, hidden: int = 64) -> None:
        super().__init__(dims, out_dim)
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(d)) for m, d in dims.items()})
        total = sum(dims.values()) + len(dims)
        self.mlp = nn.Sequential(nn.Linear(total, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def fuse(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> FusionOutput:
        parts = []
        for j, name in enumerate(self.modalities):
            x = embeddings[name]
            parts.append(torch.where(mask[:, j : j + 1], x, self.missing[name].to(x.dtype).expand_as(x)))
        parts.append(mask.to(parts[0].dtype))
        return FusionOutput(self.mlp(torch.cat(parts, dim=1)), None)
