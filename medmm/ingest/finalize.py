"""The final tables written in pieces: memory bounded by a row group, not by the archive.

:func:`write_manifest` merges ``manifest.parquet`` from the last finished run's manifest and the journal
parts (later rows win, one row per input, sorted by path, a quarantined safety-net row for an input with
no row) as an external sort: the sorted input paths (read twice from the walk's spill) cut the path
space into buckets of :data:`ROWS_PER_GROUP` inputs; every row is routed to its bucket's file on disk;
then each bucket is settled (last row per path, in path order) and written as one parquet row group. The
schema and pandas metadata are those pandas gives the whole table, derived from a few witness rows (a
null and a value of each column) without importing pandas (:mod:`.arrow_rows`), so pandas reads back the
same frame; an archive of at most :data:`ROWS_PER_GROUP` inputs gives one row group and the same bytes
as before. :func:`write_volumes` writes ``volumes.parquet`` the same way from the volume parts, a row
group of records listing :data:`SOURCES_PER_GROUP` source files at a time.

>>> import tempfile, pathlib
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> write_manifest(run, run / ".parts", lambda: ["a.dcm"], run / "manifest.parquet").counts
{'quarantined': 1}
"""

from __future__ import annotations

import bisect
import os
import pickle
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from medmm.ingest.arrow_rows import pandas_schema, table_from_columns
from medmm.ingest.merge import MANIFEST, conform, no_outcome_row, row_schema
from medmm.records import Status

__all__ = [
    "ROWS_PER_GROUP",
    "SOURCES_PER_GROUP",
    "VOLUME_COLUMNS",
    "ManifestSummary",
    "system_memory_pool",
    "write_manifest",
    "write_volumes",
]

#: Inputs per bucket of the merge, and rows per row group of ``manifest.parquet``.
ROWS_PER_GROUP = 1024
#: Source paths per row group of ``volumes.parquet`` (a volume's record lists its sources): a group is
#: closed once its volumes list this many (a volume with more sources is a group of its own).
SOURCES_PER_GROUP = 1024
#: The columns of ``volumes.parquet``: the fields of :class:`medmm.imaging.records.VolumeRecord`, in
#: order (tested equal), named here so that writing the table needs neither that model nor the
#: imaging package it lives in (the driver's import of it costs ~40 ms of CPU).
VOLUME_COLUMNS = (
    "volume_id",
    "path",
    "sidecar",
    "shape",
    "spacing",
    "orientation",
    "affine",
    "modality",
    "n_sources",
    "source_format",
    "sources",
    "patient_id",
    "study_id",
    "series_id",
    "study_time",
    "warnings",
    "dtype",
    "accession_id",
    "study_time_precision",
)

Row = dict[str, Any]


@dataclass
class ManifestSummary:
    """What the written manifest holds: rows, counts by status, the volumes its ingested rows use."""

    n_rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    volume_ids: list[str] = field(default_factory=list)  # sorted


def _atomic_writer(dest: Path, schema: pa.Schema) -> tuple[pq.ParquetWriter, str]:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    return pq.ParquetWriter(tmp, schema, compression="snappy"), tmp


@contextmanager
def system_memory_pool() -> Iterator[None]:
    """Allocate Arrow memory with the C library's ``malloc`` while the block runs (then restore).

    Arrow's default pool (mimalloc) keeps the pages of freed buffers: writing a table a row group at a
    time grew the driver's RSS by ~0.5 MiB per row group (+11 MiB for the 10 row groups of a 20,000-file
    manifest) although Arrow never held more than ~5 MiB at once; ``malloc`` reuses and returns them.

    >>> with system_memory_pool():
    ...     pa.default_memory_pool().backend_name
    'system'
    """
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def _write_groups(dest: Path, schema: pa.Schema, groups: Iterable[pa.Table]) -> None:
    """Write ``groups`` (each one row group, cast to ``schema``) to ``dest`` atomically, as
    ``pq.write_table`` writes one table: the same writer and options."""
    writer, tmp = _atomic_writer(dest, schema)
    try:
        with writer:
            wrote = False
            for table in groups:
                writer.write_table(table)
                wrote = True
                del table
            if not wrote:  # as pq.write_table writes an empty table
                writer.write_table(schema.empty_table())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Witness:
    """A few rows of a table that give pandas' whole-table types: for each column the first row with a
    null, the first with a value and (lists) the first with a non-empty value."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._seen: set[tuple[str, str]] = set()
        self.rows: dict[int, Row] = {}

    def add(self, index: int, row: Row) -> None:
        for name in self.names:
            value = row.get(name)
            kinds = ["null"] if value is None else ["value"]
            if isinstance(value, list) and value:
                kinds.append("nonempty")
            for kind in kinds:
                if (name, kind) not in self._seen:
                    self._seen.add((name, kind))
                    self.rows.setdefault(index, row)

    def add_columns(self, offset: int, rows: list[Row], columns: list[list[Any]]) -> None:
        """The witnesses of ``rows`` (scalar columns; ``columns`` holds their cells by column, in the
        order of :attr:`names`), whose first is row ``offset`` of the whole."""
        for name, cells in zip(self.names, columns, strict=True):
            if (name, "null") not in self._seen and None in cells:
                self._seen.add((name, "null"))
                self.rows.setdefault(offset + cells.index(None), rows[cells.index(None)])
            if (name, "value") not in self._seen:
                hit = next((i for i, v in enumerate(cells) if v is not None), -1)
                if hit >= 0:
                    self._seen.add((name, "value"))
                    self.rows.setdefault(offset + hit, rows[hit])

    def schema(self) -> pa.Schema:
        """The schema and pandas metadata pandas gives the whole table (:func:`.arrow_rows.pandas_schema`)."""
        return pandas_schema(self.names, [self.rows[i] for i in sorted(self.rows)])


def _row_sources(run_dir: Path, parts: Path, schema: pa.Schema) -> Iterator[list[Row]]:
    """The rows of the last finished manifest and of every journal part, in the order written, a
    part (or a row group's worth of the manifest) at a time."""
    from medmm.ingest.journal import row_parts

    if (run_dir / MANIFEST).exists():
        with pq.ParquetFile(run_dir / MANIFEST) as pf:
            for batch in pf.iter_batches(batch_size=ROWS_PER_GROUP, use_threads=False):
                yield conform(pa.Table.from_batches([batch]), schema).to_pylist()
    for part in row_parts(parts):
        if part.suffix == ".pkl":
            with part.open("rb") as fh:
                yield pickle.load(fh)  # our own journal part (0600)
        else:
            yield conform(pq.read_table(part, use_threads=False), schema).to_pylist()


def _frames(path: Path) -> Iterator[list[Any]]:
    if not path.exists():
        return
    with path.open("rb") as fh:
        while True:
            try:
                yield pickle.load(fh)  # our own bucket file (0600 folder)
            except EOFError:
                return


def _append(path: Path, rows: list[Any]) -> None:
    with path.open("ab") as fh:
        pickle.dump(rows, fh, protocol=pickle.HIGHEST_PROTOCOL)


def write_manifest(
    run_dir: Path,
    parts: Path,
    paths: Callable[[], Iterable[str]],
    dest: Path,
    rows_per_group: int = ROWS_PER_GROUP,
) -> ManifestSummary:
    """Write ``dest`` (the manifest) from the journal, holding one bucket of rows at a time.

    Parameters
    ----------
    run_dir, parts
        The run directory (its ``manifest.parquet`` is the last finished run's) and its journal parts.
    paths
        Called twice; each call iterates every input of this run once, **sorted**.
    dest
        Where the manifest goes (written atomically; may be ``run_dir``'s own manifest).
    rows_per_group
        Inputs per bucket and per row group.

    Returns
    -------
    ManifestSummary
        Rows written, counts by status, sorted ids of the volumes its ingested rows point to.

    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> write_manifest(run, run / ".parts", lambda: [], run / "m.parquet").n_rows
    0
    """
    source = row_schema()
    names = source.names
    work = Path(tempfile.mkdtemp(prefix=".merge-", dir=run_dir))  # 0700
    try:
        bounds = list(islice(paths(), 0, None, rows_per_group))  # first path of each bucket
        for rows in _row_sources(run_dir, parts, source):
            by_bucket: dict[int, list[Row]] = {}
            for row in rows:
                b = bisect.bisect_right(bounds, row["path"]) - 1
                if b >= 0:
                    by_bucket.setdefault(b, []).append(row)
            for b, some in by_bucket.items():
                _append(work / f"{b:08d}.pkl", some)
            del rows, by_bucket
        summary, witness = ManifestSummary(), _Witness(names)
        ingested = Status.ingested.value
        status, volume = names.index("status"), names.index("volume_id")
        counts: Counter[str] = Counter()
        volume_ids: set[str] = set()
        wanted = iter(paths())
        for b in range(len(bounds)):
            latest: dict[str, Row] = {}
            for frame in _frames(work / f"{b:08d}.pkl"):
                for row in frame:
                    latest[row["path"]] = row  # frames are in journal order: the last row wins
            settled = [latest.get(p) or no_outcome_row(p) for p in islice(wanted, rows_per_group)]
            del latest
            columns = [[row.get(n) for row in settled] for n in names]
            witness.add_columns(summary.n_rows, settled, columns)
            summary.n_rows += len(settled)
            counts.update(columns[status])
            volume_ids.update(
                v for s, v in zip(columns[status], columns[volume], strict=True) if v and s == ingested
            )
            (work / f"{b:08d}.pkl").unlink(missing_ok=True)
            _append(work / f"final-{b:08d}.pkl", columns)
            del settled, columns
        schema = witness.schema()  # the types are known once every row was seen: built only now

        def groups() -> Iterator[pa.Table]:
            for b in range(len(bounds)):
                for columns in _frames(work / f"final-{b:08d}.pkl"):
                    yield table_from_columns(columns, schema)  # one bucket's rows at a time

        _write_groups(dest, schema, groups())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary.counts = dict(sorted(counts.items()))
    summary.volume_ids = sorted(volume_ids)
    return summary


def _plain(value: Any) -> Any:
    """A cell of a table read with pandas as it was written: numpy arrays (list cells) as lists, a
    NaN cell as None (pandas writes a NaN of an object column as null).

    >>> import numpy as np
    >>> _plain(np.array([np.array([1.0]), np.array([2.0])], dtype=object)), _plain(float("nan"))
    ([[1.0], [2.0]], None)
    """
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        if value.dtype == object:
            return [_plain(v) for v in value]
        return value.tolist()
    return value


def write_volumes(
    parts: Path,
    previous: Mapping[str, dict[str, Any]],
    volume_ids: list[str],
    dest: Path,
    per_group: int = SOURCES_PER_GROUP,
) -> int:
    """Write ``dest`` (``volumes.parquet``): the records of ``volume_ids`` that are known, in that order,
    from ``previous`` (the last finished run's) and the journal's volume parts (later parts win), as
    :func:`~medmm.tables.write_table` writes them, one row group of records in memory at a time.

    Parameters
    ----------
    parts
        The journal parts folder.
    previous
        Volume records of earlier runs, by id.
    volume_ids
        The volumes the manifest points to, sorted.
    dest
        Where the table goes (written atomically).
    per_group
        Source paths listed by the records of a row group, at most (unless one record lists more).

    Returns
    -------
    int
        Records written.

    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> write_volumes(run / ".parts", {}, ["vol-x"], run / "volumes.parquet")
    0
    """
    from medmm.ingest.journal import volume_parts

    names = list(VOLUME_COLUMNS)
    where: dict[str, Path | Row] = dict(previous)
    for part in volume_parts(parts):  # an id -> the part holding its last record
        if part.suffix == ".pkl":
            with part.open("rb") as fh:
                where.update((str(rec["volume_id"]), part) for rec in pickle.load(fh))
        else:  # parquet parts of older versions: few, kept as records
            import pandas as pd

            frame = pd.read_parquet(part)
            for old in frame.to_dict(orient="records"):
                where[str(old["volume_id"])] = {str(k): v for k, v in old.items()}
    kept = [vid for vid in volume_ids if vid in where]

    def record(vid: str) -> Row:
        src = where[vid]
        if isinstance(src, Path):
            with src.open("rb") as fh:
                src = next(r for r in pickle.load(fh) if str(r["volume_id"]) == vid)
        return {name: _plain(src.get(name)) for name in names}

    def chunks() -> Iterator[list[Row]]:  # records in order, a row group's worth at a time
        chunk: list[Row] = []
        n_sources = 0
        for vid in kept:
            rec = record(vid)
            chunk.append(rec)
            n_sources += len(rec.get("sources") or ())
            if n_sources >= per_group:
                yield chunk
                chunk, n_sources = [], 0
        if chunk:
            yield chunk

    witness = _Witness(names)
    index = 0
    for chunk in chunks():
        for rec in chunk:
            witness.add(index, rec)
            index += 1
    schema = witness.schema()

    def groups() -> Iterator[pa.Table]:
        for chunk in chunks():
            yield table_from_columns([[rec.get(n) for rec in chunk] for n in names], schema)
            del chunk

    _write_groups(dest, schema, groups())
    return len(kept)
