"""``python -m medmm``: the ``medmm`` command line (see :mod:`medmm._entry`).

>>> import medmm.__main__
"""

from __future__ import annotations

from medmm._entry import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
