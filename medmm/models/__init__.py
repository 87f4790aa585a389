"""medmm.models: encoders, fusion strategies, heads, multi-task losses, training, evaluation, checkpoints.

Names are imported lazily so that ``medmm --help`` (and every Dask worker, which re-imports the CLI)
does not pay for importing torch.

>>> from medmm.models import MultimodalModel
>>> MultimodalModel.__module__
'medmm.models.model'
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ModelOutput", "MultimodalModel", "TaskSpec"]

_WHERE = {
    "ModelOutput": "medmm.models.model",
    "MultimodalModel": "medmm.models.model",
    "TaskSpec": "medmm.models.heads",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'medmm.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
