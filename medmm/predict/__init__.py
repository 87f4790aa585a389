"""medmm.predict: inference over multimodal records with provenance (model hash, modality weights)."""

from medmm.predict.records import PredictionRow

__all__ = ["PredictionRow"]
