"""Fusion strategies by name; an unknown name is an error listing the valid ones.

>>> sorted(FUSIONS)
['attention', 'concat', 'gated', 'late', 'sum', 'weighted_sum']
>>> build_fusion("sum", {"a": 4}, out_dim=8).out_dim
8
"""

from __future__ import annotations

from collections.abc import Mapping

from medmm.errors import ConfigError
from medmm.models.fusion.attention import AttentionFusion
from medmm.models.fusion.base import Fusion
from medmm.models.fusion.concat import ConcatFusion
from medmm.models.fusion.gated import GatedFusion
from medmm.models.fusion.late import LateFusion
from medmm.models.fusion.sum import SumFusion
from medmm.models.fusion.weighted_sum import WeightedSumFusion

__all__ = ["FUSIONS", "build_fusion"]

FUSIONS: dict[str, type[Fusion]] = {
    "sum": SumFusion,
    "weighted_sum": WeightedSumFusion,
    "concat": ConcatFusion,
    "attention": AttentionFusion,
    "gated": GatedFusion,
    "late": LateFusion,
}


def build_fusion(name: str, dims: Mapping[str, int], out_dim: int) -> Fusion:
    """Instantiate strategy ``name`` for modality sizes ``dims`` with output size ``out_dim``."""
    try:
        cls = FUSIONS[name]
    except KeyError:
        raise ConfigError(f"unknown fusion strategy {name!r}; choose one of {sorted(FUSIONS)}") from None
    return cls(dims, out_dim)
