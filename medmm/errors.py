"""Data errors whose messages name the input, the problem and the fix.

Every stage turns a bad input into a manifest row with ``status="quarantined"`` and a ``reason``
made by :func:`reason_of`, so the class name tells *what kind* of problem it was and the message tells
*what to do*.

>>> err = InputError("a/b.dcm", "file is empty (0 bytes)", "re-export the file from the PACS")
>>> str(err)
'a/b.dcm: file is empty (0 bytes). Fix: re-export the file from the PACS'
>>> reason_of(err)
'InputError: a/b.dcm: file is empty (0 bytes). Fix: re-export the file from the PACS'
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InputError",
    "MedmmError",
    "reason_of",
]


class MedmmError(Exception):
    """Base class of all errors medmm raises on purpose."""


class InputError(MedmmError):
    """An input file (or row) cannot be used; says which one, why, and how to fix it.

    Subclass it per kind of problem (``TruncatedFileError``, ``MissingSliceError`` ...) so that the
    manifest's ``reason`` column can be grouped by class name.
    """

    def __init__(self, path: str, problem: str, fix: str) -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path}: {problem}. Fix: {fix}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:  # picklable across Dask workers
        return (type(self), (self.path, self.problem, self.fix))


class ConfigError(MedmmError):
    """A command-line option, workflow file or model name is wrong; the message says what is valid."""


def reason_of(exc: BaseException) -> str:
    """Render an exception as a manifest ``reason``: ``"ClassName: message"``.

    >>> reason_of(ValueError("bad"))
    'ValueError: bad'
    """
    text = str(exc).strip() or repr(exc)
    return f"{type(exc).__name__}: {text}"
