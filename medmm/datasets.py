"""Where the real third-party data lives (``$MEDMM_DATA`` or ``../shared/data`` beside the checkout).

Tests and benchmarks read it in place and skip when it is absent.

>>> p = shared_data_dir()
>>> p is None or p.is_dir()
True
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "shared_data_dir"]

DATA_ENV = "MEDMM_DATA"


def shared_data_dir() -> Path | None:
    """The shared data folder, or ``None`` when neither ``$MEDMM_DATA`` nor ``../shared/data`` exists."""
    env = os.environ.get(DATA_ENV)
    candidates = [Path(env)] if env else []
    repo = Path(__file__).resolve().parent.parent
    candidates += [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return None
