"""Late fusion (the baseline): one head per modality, logits averaged over present modalities.

``fused`` holds task logits directly (``produces_logits = True``), so the model puts no extra head on
top. Weights are uniform over present modalities.

>>> import torch
>>> f = LateFusion({"a": 3, "b": 2}, out_dim=2)
>>> out = f({"a": torch.randn(2, 3), "b": torch.randn(2, 2)}, torch.tensor([[True, False], [True, True]]))
>>> tuple(out.fused.shape), out.weights[1].tolist()
((2, 2), [0.5, 0.5])
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from medmm.models.fusion.base import Fusion, FusionOutput

__all__ = ["LateFusion"]


class LateFusion(Fusion):
    """Average of unimodal heads; ``out_dim`` is the number of task logits."""

    produces_logits = True

    def __init__(self, dims: Mapping[str, int], out_dim: int, hidden: int = 32) -> None:
        super().__init__(dims, out_dim)
        self.heads = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
                for m, d in dims.items()
            }
        )

    def fuse(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> FusionOutput:
        stacked = self._stack_projected(self.heads, embeddings, mask)
        weights = mask.float() / mask.float().sum(dim=1, keepdim=True)
        return FusionOutput((stacked * weights.unsqueeze(-1)).sum(dim=1), weights)
