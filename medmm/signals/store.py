"""The windows store: one ``.npy`` array (windows x samples, float32) per record channel and kind.

Arrays live under ``RUN_DIR/windows/<record>/<channel>[.anchored].npy`` and are written atomically
(temp file + rename), so a killed run never leaves a half-written array; ``windows.parquet`` indexes
them (``path`` + ``row``). Reading one window memory-maps the file.

>>> import tempfile, pathlib, numpy as np
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> rel = write_windows(run, "p1/100", "MLII", np.zeros((2, 5)))
>>> rel, read_window(run, rel, 1).shape
('windows/p1/100/MLII.npy', (5,))
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["WindowWriter", "read_window", "window_path", "write_windows"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def window_path(record: str, channel: str, kind: str = "") -> str:
    """Relative path (POSIX) of a record channel's array; ``kind`` ``"anchored"`` for anchor windows.

    >>> window_path("a/b", "EEG Fpz-Cz", "anchored")
    'windows/a/b/EEG_Fpz-Cz.anchored.npy'
    """
    name = _UNSAFE.sub("_", channel) or "channel"
    suffix = f".{kind}" if kind else ""
    return f"windows/{record}/{name}{suffix}.npy"


def write_windows(run_dir: Path, record: str, channel: str, arr: NDArray[np.floating], kind: str = "") -> str:
    """Write ``arr`` (n_windows x n_samples) as float32; returns its path relative to ``run_dir``."""
    rel = window_path(record, channel, kind)
    path = Path(run_dir) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.asarray(arr, dtype=np.float32))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rel


class WindowWriter:
    """Write a record channel's windows row by row (for records processed in chunks); atomic on close.

    The file equals what :func:`write_windows` writes for the stacked rows.

    >>> import tempfile, pathlib, numpy as np
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> w = WindowWriter(run, "r", "II", n_rows=2, n_cols=3)
    >>> w.write(np.zeros(3)); w.write(np.ones(3)); w.close()
    'windows/r/II.npy'
    >>> read_window(run, "windows/r/II.npy", 1).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(
        self, run_dir: Path, record: str, channel: str, n_rows: int, n_cols: int, kind: str = ""
    ) -> None:
        self.rel = window_path(record, channel, kind)
        self.path = Path(run_dir) / self.rel
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.n_rows, self.n_cols, self.written = n_rows, n_cols, 0
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.fh = os.fdopen(fd, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
        np.lib.format.write_array_header_1_0(self.fh, {**header, "shape": (n_rows, n_cols)})

    def write(self, row: NDArray[np.floating]) -> None:
        """Append the next row (``n_cols`` values, stored as float32)."""
        r = np.asarray(row, dtype=np.float32)
        if r.shape != (self.n_cols,) or self.written >= self.n_rows:
            self.abort()
            raise ValueError(f"row {self.written} of {self.rel}: shape {r.shape}, expected ({self.n_cols},)")
        self.fh.write(r.tobytes())
        self.written += 1

    def close(self) -> str:
        """Check every row was written, move the file into place; returns its relative path."""
        self.fh.close()
        if self.written != self.n_rows:
            Path(self.tmp).unlink(missing_ok=True)
            raise ValueError(f"{self.rel}: {self.written} rows written, {self.n_rows} expected")
        os.replace(self.tmp, self.path)
        return self.rel

    def abort(self) -> None:
        """Drop the partial file."""
        self.fh.close()
        Path(self.tmp).unlink(missing_ok=True)


def read_window(run_dir: Path, rel: str, row: int) -> NDArray[np.float32]:
    """Row ``row`` of the array at ``run_dir/rel`` (memory-mapped read)."""
    arr = np.load(Path(run_dir) / rel, mmap_mode="r")
    return np.asarray(arr[row])
