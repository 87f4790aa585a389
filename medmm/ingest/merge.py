"""The manifest from the journal: Arrow tables merged part by part, never one record object per file.

:func:`merge_rows` reads ``manifest.parquet`` of the last finished run and every journal part (later
parts win), keeps the last row per path for the given inputs, adds a safety-net row for an input with
no row, and sorts by path; :func:`write_like_pandas` writes it byte for byte as
:func:`~medmm.tables.write_table` writes the same records. Arrow holds a few hundred bytes per file.

>>> import tempfile, pathlib
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> merge_rows(run, run / ".parts", ["a.dcm"])["reason"][0].as_py().split(":")[0]
'IngestTaskError'
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from medmm.errors import reason_of
from medmm.ingest.errors import IngestTaskError
from medmm.ingest.records import IngestManifestRow
from medmm.records import Status

__all__ = [
    "as_written",
    "conform",
    "merge_rows",
    "no_outcome_row",
    "read_all",
    "row_schema",
    "write_like_pandas",
]

MANIFEST = "manifest.parquet"


def row_schema() -> pa.Schema:
    """Arrow schema of manifest rows (integers as int64, everything else as strings)."""
    ints = {"size", "mtime_ns"}
    return pa.schema([(n, pa.int64() if n in ints else pa.string()) for n in IngestManifestRow.model_fields])


#: Rows of pickled parts turned into one Arrow table at a time: many small tables cost far more memory
#: (allocator pages, dictionaries) than their rows; a few thousand rows as Python dicts stay small.
CHUNK_ROWS = 1024


def _read_chunks(sources: list[Path], schema: pa.Schema) -> Iterator[pa.Table]:
    """The rows of ``sources`` in order, as compact tables of about :data:`CHUNK_ROWS` rows."""
    pending: list[dict[str, object]] = []
    for source in sources:
        if source.suffix == ".pkl":
            with source.open("rb") as fh:
                pending += pickle.load(fh)  # our own journal part (0600)
            if len(pending) < CHUNK_ROWS:
                continue
        if pending:
            yield _compact(pa.Table.from_pylist(pending, schema=schema))
            pending = []
        if source.suffix != ".pkl":
            yield _compact(_read_parquet(source, schema))
    if pending:
        yield _compact(pa.Table.from_pylist(pending, schema=schema))


def _read_parquet(path: Path, schema: pa.Schema) -> pa.Table:
    return conform(pq.read_table(path, use_threads=False), schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``schema``, in its order and types (missing columns all null).

    >>> conform(pa.table({"path": ["a"], "size": [1.0]}), row_schema()).schema.field("size").type
    DataType(int64)
    """
    cols = [
        table[n].cast(f.type) if n in table.column_names else pa.nulls(len(table), f.type)
        for n, f in zip(schema.names, schema, strict=True)
    ]
    return pa.Table.from_arrays(cols, schema=schema)


#: Columns with few distinct values (statuses, reasons, ids of series ...): dictionary-encoded while
#: merging, so that a row costs little more than its path.
_REPEATED = (
    "format",
    "status",
    "reason",
    "volume_id",
    "kind",
    "modality",
    "patient_id",
    "study_id",
    "series_id",
)


def _compact(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    for name in _REPEATED:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.dictionary_encode(table[name]))
    return table


def read_all(run_dir: Path, parts: Path) -> pa.Table:
    """Every row of the last finished run's manifest and of the journal parts, in the order written.

    String columns other than ``path`` are dictionary-encoded.

    >>> read_all(Path("/nonexistent"), Path("/nonexistent")).num_rows
    0
    """
    from medmm.ingest.journal import row_parts

    schema = row_schema()
    sources = [run_dir / MANIFEST] if (run_dir / MANIFEST).exists() else []
    sources += row_parts(parts)
    tables = list(_read_chunks(sources, schema))
    return pa.concat_tables(tables).combine_chunks() if tables else _compact(schema.empty_table())


def merge_rows(run_dir: Path, parts: Path, paths: Iterable[str]) -> pa.Table:
    """Rows of the last finished run and the parts, last per path, restricted to ``paths``, sorted.

    Parameters
    ----------
    run_dir, parts
        The run directory and its journal parts folder.
    paths
        Every input of this run, each once.
    """
    import pyarrow.compute as pc

    table = read_all(run_dir, parts)
    schema = row_schema()
    wanted = pa.array(paths, pa.string())
    table = table.filter(pc.is_in(table["path"], value_set=wanted))
    table = table.append_column("_order", pa.array(range(len(table)), pa.int64()))
    table = table.take(pc.sort_indices(table, [("path", "ascending"), ("_order", "descending")]))
    path_col = table["path"].combine_chunks()
    if len(table) > 1:
        first = pc.not_equal(path_col[1:], path_col[:-1])
        table = table.filter(pa.concat_arrays([pa.array([True]), first.fill_null(True)]))
    table = table.drop_columns(["_order"])
    missing = pc.filter(wanted, pc.invert(pc.is_in(wanted, value_set=table["path"]))).to_pylist()
    if missing:  # safety net: every input appears, even if a code path forgot it
        extra = [_no_outcome(rel).model_dump(mode="json") for rel in missing]
        table = pa.concat_tables([table, _compact(pa.Table.from_pylist(extra, schema=schema))])
        table = table.take(pc.sort_indices(table, [("path", "ascending")]))
    return table


def write_like_pandas(table: pa.Table, path: Path) -> None:
    """Write ``table`` as :func:`~medmm.tables.write_table` writes the same rows, without pandas.

    A DataFrame of the rows would cost a Python object per cell; instead the schema (and pandas
    metadata) that pandas would give the whole table is derived from a few rows: one null and one
    value of each column. Integer columns with nulls become float64 and all-null columns the null
    type, as in pandas; the file's bytes are identical.
    """
    import tempfile

    import pandas as pd
    import pyarrow.compute as pc

    pick: set[int] = set()
    for column in table.columns:
        nulls = column.is_null()
        for want in (True, False):
            hit = pc.index(nulls, want).as_py()
            if hit >= 0:
                pick.add(hit)
    sample = table.take(pa.array(sorted(pick), pa.int64()))
    frame = pd.DataFrame(sample.to_pylist(), columns=table.column_names)  # as records_to_frame
    schema = pa.Table.from_pandas(frame, preserve_index=False).schema
    out = as_written(table, schema)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(out, tmp, compression="snappy")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def no_outcome_row(rel: str) -> dict[str, Any]:
    """The safety-net row (as a journal dict) of an input that has no row: quarantined, to re-run.

    >>> no_outcome_row("a.dcm")["status"]
    'quarantined'
    """
    return _no_outcome(rel).model_dump(mode="json")


def as_written(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` cast to ``schema``, the types pandas gives the whole table: all-null columns null,
    integer columns with nulls float64 (rounded to the nearest double, as pandas converts them; an
    mtime in nanoseconds has more digits than a double holds).

    >>> t = pa.table({"n": pa.array([2**60 + 1, None], pa.int64())})
    >>> as_written(t, pa.schema([("n", pa.float64())]))["n"][0].as_py() == float(2**60)
    True
    """
    cols = [
        pa.nulls(len(table)) if f.type == pa.null() else table[f.name].cast(f.type, safe=False)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def _no_outcome(rel: str) -> IngestManifestRow:
    err = IngestTaskError(rel, "no outcome was recorded for this file", "re-run `medmm ingest`")
    return IngestManifestRow(path=rel, format="unknown", status=Status.quarantined, reason=reason_of(err))
