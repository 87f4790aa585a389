"""medmm.models: encoders, fusion strategies, heads, multi-task losses, training, evaluation, checkpoints."""

from medmm.models.heads import TaskSpec
from medmm.models.model import ModelOutput, MultimodalModel

__all__ = ["ModelOutput", "MultimodalModel", "TaskSpec"]
