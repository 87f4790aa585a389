"""medmm.models: encoders, fusion strategies, heads, multi-task losses, training, evaluation, checkpoints.

Names are imported lazily so that ``medmm --help`` (and every Dask worker, which re-imports the CLI)
does not pay for importing torch.

>>> from medmm.models import MultimodalModel
>>> MultimodalModel.__module__
'medmm.models.model'
"""

from __future__ import annotations

from medmm._lazy import lazy_exports

__all__ = ["ModelOutput", "MultimodalModel", "TaskSpec"]

_WHERE = {
    "ModelOutput": "medmm.models.model",
    "MultimodalModel": "medmm.models.model",
    "TaskSpec": "medmm.models.heads",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
