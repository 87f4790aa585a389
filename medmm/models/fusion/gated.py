"""Gated (element-wise) fusion: each present modality's projection is scaled by a sigmoid gate
computed from that modality, then averaged over present modalities (a gated multimodal unit).

Reported weights are each modality's mean gate, renormalised over present modalities.

>>> import torch
>>> f = GatedFusion({"a": 3, "b": 2}, out_dim=4)
>>> out = f({"a": torch.randn(2, 3), "b": torch.randn(2, 2)}, torch.tensor([[True, False], [True, True]]))
>>> tuple(out.fused.shape), out.weights[0].tolist()
((2, 4), [1.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from medmm.models.fusion.base import Fusion, FusionOutput

__all__ = ["GatedFusion"]


class GatedFusion(Fusion):
    """``fused = mean_{m present} sigmoid(G_m x_m) * tanh(W_m x_m)``."""

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims, out_dim)
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})
        self.gate = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})

    def fuse(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> FusionOutput:
        cols, gates = [], []
        for j, name in enumerate(self.modalities):
            x = embeddings[name]
            g = torch.sigmoid(self.gate[name](x))
            h = g * torch.tanh(self.proj[name](x))
            present = mask[:, j : j + 1]
            cols.append(torch.where(present, h, torch.zeros_like(h)))
            gates.append(torch.where(present[:, 0], g.mean(dim=1), torch.zeros_like(g[:, 0])))
        count = mask.float().sum(dim=1, keepdim=True)
        fused = torch.stack(cols, dim=1).sum(dim=1) / count
        gate_means = torch.stack(gates, dim=1)
        weights = gate_means / gate_means.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return FusionOutput(fused, weights)
