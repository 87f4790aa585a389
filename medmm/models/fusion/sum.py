"""Sum fusion: project each modality to a common size and average over the present ones.

The sum is divided by the number of present modalities so the fused scale does not change when a
modality is missing (a plain sum would shift every downstream activation).

>>> import torch
>>> f = SumFusion({"a": 3, "b": 2}, out_dim=4)
>>> out = f({"a": torch.randn(2, 3), "b": torch.randn(2, 2)}, torch.tensor([[True, False], [True, True]]))
>>> tuple(out.fused.shape), out.weights.tolist()
((2, 4), [[1.0, 0.0], [0.5, 0.5]])
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from medmm.models.fusion.base import Fusion, FusionOutput

__all__ = ["SumFusion"]


class SumFusion(Fusion):
    """Masked mean of per-modality linear projections (uniform weights over present modalities)."""

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims, out_dim)
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})

    def fuse(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> FusionOutput:
        stacked = self._stack_projected(self.proj, embeddings, mask)
        weights = mask.float() / mask.float().sum(dim=1, keepdim=True)
        return FusionOutput((stacked * weights.unsqueeze(-1)).sum(dim=1), weights)
