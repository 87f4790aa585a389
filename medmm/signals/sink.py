"""Per-beat, per-window and per-value tables written record by record, so the driver never holds them all.

``beats.parquet``, ``features.parquet``, ``windows.parquet`` and ``vitals.parquet`` grow with the
archive (a 24 h Holter lead has ~100,000 beats, ~300 bytes each as pandas rows with their key strings,
and 8,640 ten-second windows, ~1.5 kB each as row objects). The signals stage keeps only each record's
small rows (manifest, channels, events) in memory; these tables are streamed into one Parquet file per
table, one row group per record (:class:`FrameSink`), from the per-record results saved under
``RUN_DIR/.signals_parts``. Column types are fixed up front (``record``/``patient_id``/``channel``/
``units``/``ref_symbol`` text, ``sample``/``beat`` int64, ``complete`` bool, other columns float64),
so a record without an absolute start (``abs_time_s`` null) and one with it write the same schema.

>>> import tempfile, pandas as pd
>>> from pathlib import Path
>>> out = Path(tempfile.mkdtemp()) / "beats.parquet"
>>> sink = FrameSink(out, ["record", "sample", "abs_time_s"])
>>> sink.add(pd.DataFrame({"record": ["a"], "sample": [5], "abs_time_s": [None]}))
>>> sink.add(pd.DataFrame({"record": ["b"], "sample": [7], "abs_time_s": [12.5]}))
>>> _ = sink.close()
>>> pd.read_parquet(out)["abs_time_s"].tolist()
[nan, 12.5]
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["FrameSink", "column_type", "model_types"]

_TEXT = {"record", "patient_id", "channel", "units", "ref_symbol", "label", "source", "path"}
_INT = {"sample", "beat"}
_BOOL = {"complete"}


def column_type(name: str) -> Any:
    """The Arrow type of a per-beat / per-value column (see module doc).

    >>> str(column_type("sample")), str(column_type("hr_bpm"))
    ('int64', 'double')
    """
    import pyarrow as pa

    if name in _TEXT:
        return pa.string()
    if name in _INT:
        return pa.int64()
    if name in _BOOL:
        return pa.bool_()
    return pa.float64()


def model_types(model: Any) -> dict[str, Any]:
    """Arrow types of a row model's fields (``str``/``int``/``float``/``bool``, optional or not).

    >>> from medmm.signals.records import WindowRow
    >>> t = model_types(WindowRow)
    >>> str(t["row"]), str(t["start_abs_s"]), str(t["anchor"])
    ('int64', 'double', 'string')
    """
    import typing

    import pyarrow as pa

    simple = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    out = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)] or [ann]
        out[name] = simple.get(args[0], column_type(name))
    return out


class FrameSink:
    """A Parquet table written frame by frame (one row group each), atomically on :meth:`close`.

    Parameters
    ----------
    path
        Destination ``.parquet`` file.
    columns
        Column names in output order; every frame is reindexed to them (missing columns are null).
    types
        Arrow types by column (e.g. :func:`model_types`); other columns get :func:`column_type`.
    """

    def __init__(self, path: Path, columns: Sequence[str], types: dict[str, Any] | None = None) -> None:
        import pyarrow as pa

        self.path = Path(path)
        self.columns = list(columns)
        types = types or {}
        self.schema = pa.schema([(c, types.get(c) or column_type(c)) for c in self.columns])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self._writer: Any = None

    def add(self, frame: pd.DataFrame | None) -> None:
        """Append ``frame``'s rows (nothing for ``None`` or an empty frame)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if frame is None or not len(frame):
            return
        frame = frame.reindex(columns=self.columns)
        arrays = []
        for name, typ in zip(self.schema.names, self.schema.types, strict=True):
            col = frame[name]
            if pa.types.is_floating(typ) and col.dtype != "float64":  # None / object columns
                col = pd.to_numeric(col, errors="coerce").astype("float64")
            arrays.append(pa.array(col, type=typ, from_pandas=True))
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, self.schema)
        self._writer.write_table(table)

    def close(self) -> Path:
        """Finish the file (an empty table with the columns when nothing was added) and move it in place."""
        import pyarrow.parquet as pq

        try:
            if self._writer is None:
                pq.write_table(self.schema.empty_table(), self.tmp)
            else:
                self._writer.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            with contextlib.suppress(Exception):  # already broken; the file is removed below
                self._writer.close()
        self.tmp.unlink(missing_ok=True)
