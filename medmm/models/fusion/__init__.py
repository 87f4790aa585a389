"""Fusion strategies, one module each, with one interface (:class:`Fusion`)."""

from medmm.models.fusion.attention import AttentionFusion
from medmm.models.fusion.base import (
    EmptySampleError,
    Fusion,
    FusionOutput,
    check_mask,
    masked_softmax,
    modality_dropout,
)
from medmm.models.fusion.concat import ConcatFusion
from medmm.models.fusion.gated import GatedFusion
from medmm.models.fusion.late import LateFusion
from medmm.models.fusion.registry import FUSIONS, build_fusion
from medmm.models.fusion.sum import SumFusion
from medmm.models.fusion.weighted_sum import WeightedSumFusion

__all__ = [
    "FUSIONS",
    "AttentionFusion",
    "ConcatFusion",
    "EmptySampleError",
    "Fusion",
    "FusionOutput",
    "GatedFusion",
    "LateFusion",
    "SumFusion",
    "WeightedSumFusion",
    "build_fusion",
    "check_mask",
    "masked_softmax",
    "modality_dropout",
]
