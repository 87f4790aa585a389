"""Rows (plain dicts) to Arrow as pandas would write them, without importing pandas.

``manifest.parquet`` and ``volumes.parquet`` are written with the schema, and the ``pandas`` schema
metadata, that ``pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)`` gives, so that they
read back as before. Importing pandas costs the driver ~0.15 s of CPU per run (and ``pyarrow.array``
on Python objects imports it: pyarrow checks every input for pandas types). This module infers the
same types from a few witness rows with pandas' rules (:func:`pandas_schema`) and builds the columns
from their buffers with numpy (:func:`table_from_columns`), so a fresh ``medmm ingest`` run imports
neither pandas nor ``pyarrow.compute``. Values outside these rules (or another pandas major version)
fall back to pandas itself, so the result is always what pandas gives; ``tests/ingest`` compares the
two byte for byte.

>>> schema = pandas_schema(["a", "n"], [{"a": "x", "n": 1}, {"a": None, "n": None}])
>>> [str(t) for t in schema.types]
['large_string', 'double']
>>> table_from_columns([["x", None], [1, None]], schema).column("n").to_pylist()
[1.0, None]
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["pandas_schema", "pandas_version", "table_from_columns"]

Row = dict[str, Any]


class _Unsupported(Exception):
    """Values outside the rules here: pandas decides."""


def pandas_version() -> str:
    """The installed pandas' version, as pandas reports it, without importing pandas if not yet done.

    >>> pandas_version().count(".") >= 1
    True
    """
    module = sys.modules.get("pandas")
    if module is not None and hasattr(module, "__version__"):
        return str(module.__version__)
    return _installed_pandas()


@functools.cache
def _installed_pandas() -> str:
    """pandas' version from its package metadata (parsed once per process: ~2 ms a time)."""
    from importlib import metadata

    return metadata.version("pandas")


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _element_type(values: list[Any]) -> pa.DataType:
    """Arrow's inferred type for the (non-null) items of Python lists (``pa.array``'s rules)."""
    items = [v for v in values if v is not None]
    if not items:
        return pa.null()
    if all(isinstance(v, bool) for v in items):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        if all(-(2**63) <= v < 2**63 for v in items):
            return pa.int64()
        raise _Unsupported
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        return pa.float64()
    if all(isinstance(v, str) for v in items):
        return pa.string()
    if all(isinstance(v, list) for v in items):
        return pa.list_(_element_type([x for v in items for x in v]))
    raise _Unsupported


def _column_type(values: list[Any]) -> tuple[pa.DataType, str]:
    """(Arrow type, numpy dtype name) of a column of ``values`` in pandas >= 3 (string inference)."""
    present = [v for v in values if not _null(v)]
    nulls = len(present) < len(values)
    if not present:
        return pa.null(), "object"
    if all(isinstance(v, bool) for v in present):
        return pa.bool_(), "object" if nulls else "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if not all(-(2**63) <= v < 2**63 for v in present):
            raise _Unsupported
        return (pa.float64(), "float64") if nulls else (pa.int64(), "int64")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.float64(), "float64"
    if all(isinstance(v, str) for v in present):
        return pa.large_string(), "str"
    if all(isinstance(v, list) for v in present):
        return pa.list_(_element_type([x for v in present for x in v])), "object"
    raise _Unsupported


_LOGICAL = {
    pa.null(): "empty",
    pa.bool_(): "bool",
    pa.int64(): "int64",
    pa.float64(): "float64",
    pa.string(): "unicode",
}


def _logical(arrow_type: pa.DataType) -> str:
    """pyarrow's ``pandas_type`` of a column of ``arrow_type`` (``pandas_compat.get_logical_type``)."""
    if isinstance(arrow_type, pa.ListType):
        return f"list[{_logical(arrow_type.value_type)}]"
    return _LOGICAL.get(arrow_type, "object")


def _rule_schema(names: Sequence[str], rows: Sequence[Row]) -> pa.Schema:
    if int(pandas_version().split(".")[0]) != 3:  # the string rules below are pandas 3's
        raise _Unsupported
    fields, columns = [], []
    for name in names:
        arrow_type, numpy_type = _column_type([row.get(name) for row in rows])
        fields.append(pa.field(name, arrow_type))
        columns.append(
            {
                "name": name,
                "field_name": name,
                "pandas_type": _logical(arrow_type),
                "numpy_type": numpy_type,
                "metadata": None,
            }
        )
    meta = {
        "index_columns": [],
        "column_indexes": [],
        "columns": columns,
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": pandas_version(),
    }
    return pa.schema(fields, metadata={b"pandas": json.dumps(meta).encode("utf8")})


def pandas_schema(names: Sequence[str], rows: Sequence[Row]) -> pa.Schema:
    """The schema (with pandas metadata) of ``pa.Table.from_pandas(pd.DataFrame(rows, columns=names),
    preserve_index=False)``, derived without pandas where its inference rules are covered here.

    Parameters
    ----------
    names
        Column names, in order.
    rows
        The rows that decide the types (e.g. per column one with a null and one with a value).

    Returns
    -------
    pyarrow.Schema
        Field types and the ``pandas`` metadata bytes that pandas and pyarrow would write.

    Examples
    --------
    >>> pandas_schema(["v"], [{"v": [[1.0]]}]).field("v").type
    ListType(list<item: list<item: double>>)
    """
    try:
        return _rule_schema(names, rows)
    except _Unsupported:
        import pandas as pd

        frame = pd.DataFrame(list(rows), columns=list(names))
        return pa.Table.from_pandas(frame, preserve_index=False).schema


def _validity(values: Sequence[Any], nan_is_null: bool = False) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap of ``values`` (``None`` when there is no null) and the number of nulls."""
    n = len(values)
    if not nan_is_null:
        nulls = list(values).count(None)
        if not nulls:
            return None, 0
        valid = np.fromiter((v is not None for v in values), np.bool_, n)
    else:
        valid = np.fromiter((not _null(v) for v in values), np.bool_, n)
        nulls = n - int(valid.sum())
        if not nulls:
            return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), nulls


def _strings(arrow_type: pa.DataType, values: Sequence[Any]) -> pa.Array:
    """A string column; a non-string cell (a float NaN included) raises for :func:`pa.array` to decide."""
    n = len(values)
    validity, nulls = _validity(values)
    cells = ["" if v is None else v for v in values] if nulls else list(values)
    joined = "".join(cells)  # TypeError for a cell that is not a string
    width = np.int64 if arrow_type == pa.large_string() else np.int32
    if joined.isascii():  # one byte per character: lengths and data straight from the strings
        data, lengths = joined.encode("ascii"), np.fromiter(map(len, cells), width, n)
    else:
        encoded = [v.encode("utf-8") for v in cells]
        data, lengths = b"".join(encoded), np.fromiter(map(len, encoded), width, n)
    offsets = np.zeros(n + 1, width)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(arrow_type, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)], nulls)


def _array(arrow_type: pa.DataType, values: Sequence[Any]) -> pa.Array:
    """An Arrow array of ``values`` built from numpy buffers (``pa.array`` would import pandas)."""
    n = len(values)
    if arrow_type == pa.null():
        if any(not _null(v) for v in values):
            raise _Unsupported
        return pa.nulls(n)
    if arrow_type in (pa.string(), pa.large_string()):
        return _strings(arrow_type, values)
    if arrow_type == pa.int64():  # a NaN or a float cell raises: pa.array decides
        validity, nulls = _validity(values)
        cells = [0 if v is None else v for v in values] if nulls else values
        if not all(type(v) is int for v in cells):
            raise _Unsupported
        data = np.array(cells, np.int64)
    elif arrow_type == pa.float64():  # an int becomes the nearest double, as pandas converts it
        validity, nulls = _validity(values, nan_is_null=True)
        data = np.fromiter((0.0 if _null(v) else float(v) for v in values), np.float64, n)
    elif arrow_type == pa.bool_():
        validity, nulls = _validity(values, nan_is_null=True)
        flags = np.fromiter((bool(v) and not _null(v) for v in values), np.bool_, n)
        bits = np.packbits(flags, bitorder="little")
        return pa.Array.from_buffers(arrow_type, n, [validity, pa.py_buffer(bits)], nulls)
    elif isinstance(arrow_type, pa.ListType):
        validity, nulls = _validity(values, nan_is_null=True)
        present = [v for v in values if not _null(v)]
        if not all(isinstance(v, list) for v in present):
            raise _Unsupported
        lengths = np.fromiter((0 if _null(v) else len(v) for v in values), np.int32, n)
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        child = _array(arrow_type.value_type, [x for v in present for x in v])
        buffers = [validity, pa.py_buffer(offsets)]
        return pa.Array.from_buffers(arrow_type, n, buffers, nulls, children=[child])
    else:
        raise _Unsupported
    return pa.Array.from_buffers(arrow_type, n, [validity, pa.py_buffer(data)], nulls)


def table_from_columns(columns: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` from Python column lists, equal to ``pa.Table.from_pylist`` of the same
    rows, without importing pandas for the common types (strings, int64, float64, bool, null, lists
    of those); other types go through ``pa.array``.

    Parameters
    ----------
    columns
        One list of cell values per field of ``schema``, all of the same length.
    schema
        The table's schema (its metadata is kept).

    Returns
    -------
    pyarrow.Table

    Examples
    --------
    >>> s = pa.schema([("a", pa.list_(pa.int64()))])
    >>> table_from_columns([[[1, 2], None, []]], s).column("a").to_pylist()
    [[1, 2], None, []]
    """
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        try:
            arrays.append(_array(field.type, values))
        except (_Unsupported, TypeError, ValueError, OverflowError, AttributeError):
            arrays.append(pa.array(list(values), field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)
