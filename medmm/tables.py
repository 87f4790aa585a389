"""Atomic, schema-shaped writes of run artifacts (parquet tables, JSON, bytes).

Writes go to a temporary file in the destination folder and are renamed into place, so a killed run
never leaves a half-written artifact and a re-run can trust whatever exists.

>>> import tempfile, pathlib
>>> from medmm.records import ManifestRow, Status
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> rows = [ManifestRow(path="a.nii", size=1, format="nifti", status=Status.ingested)]
>>> write_table(rows, d / "manifest.parquet", ManifestRow)
PosixPath('...manifest.parquet')
>>> read_table(d / "manifest.parquet")["status"].tolist()
['ingested']
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pydantic import BaseModel

if TYPE_CHECKING:  # pandas is imported where a table is built: workers that only write bytes/JSON skip it
    import pandas as pd

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_write_with",
    "read_table",
    "records_to_frame",
    "write_table",
]


def atomic_write_with(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Let ``write`` fill a temporary file beside ``path`` (``.NAME.XXXXXXXX.tmp``), fsync it and rename
    it into place; the temporary file is removed when ``write`` fails or the run is interrupted.

    Streams: ``write`` writes to the open file (e.g. ``np.save``), so a large array is never held a
    second time as bytes.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_with(d / "a.bin", lambda fh: fh.write(b"xy")).read_bytes()
    b'xy'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    return atomic_write_with(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (non-JSON values are rendered with ``str``; NaN and
    infinities, which JSON has not, as ``null``).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = atomic_write_json(d / "m.json", {"auroc": float("nan"), "n": [1.5]})
    >>> json.loads(p.read_text())
    {'auroc': None, 'n': [1.5]}
    """
    return atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=True, default=str) + "\n")


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf; also numpy floats) in dicts, lists and tuples
    replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def records_to_frame(rows: Iterable[BaseModel], model: type[BaseModel]) -> pd.DataFrame:
    """Turn records into a DataFrame whose columns are exactly ``model``'s fields, in order.

    Enums become their string values; an empty input still yields the right columns.
    """
    import pandas as pd

    data = [r.model_dump(mode="json") for r in rows]
    columns = list(model.model_fields)
    return pd.DataFrame(data, columns=columns)


def write_table(
    rows: Sequence[BaseModel] | pd.DataFrame, path: Path, model: type[BaseModel] | None = None
) -> Path:
    """Write records (or a frame) as a parquet table atomically.

    Parameters
    ----------
    rows
        Records of type ``model`` or a DataFrame already shaped like it.
    path
        Destination ``.parquet`` file.
    model
        The record type; required when ``rows`` are records, used to order columns for frames.
    """
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        frame = rows if model is None else rows.reindex(columns=list(model.model_fields))
    else:
        if model is None:
            raise TypeError("write_table needs `model` when given records")
        frame = records_to_frame(rows, model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_table(path: Path) -> pd.DataFrame:
    """Read a parquet table written by :func:`write_table`."""
    import pandas as pd

    return pd.read_parquet(path)
