"""Lazy package exports (PEP 562), so importing a stage package imports none of its heavy modules.

>>> getattr_, dir_ = lazy_exports("medmm.x", {"Path": "pathlib"})
>>> getattr_("Path").__name__, dir_()
('Path', ['Path'])

:func:`import_optional` imports a module that an optional extra may not have installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

__all__ = ["import_optional", "lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``; each name in ``where`` is imported on first use."""

    def getattr_(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted(where)

    return getattr_, dir_


def import_optional(name: str) -> ModuleType | None:
    """Module ``name``, or ``None`` when ``name`` itself is not installed (a stage left out of the
    install); an import error from inside the module (a missing dependency of it) is raised.

    >>> import_optional("json").__name__, import_optional("medmm.no_such_stage")
    ('json', None)
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
