"""The ingest progress journal: what is already done in a run directory, and what was done since.

Final manifest rows and volume records are appended, as tasks finish, to numbered parquet parts under
``RUN_DIR/.parts/`` (written atomically, a few seconds apart). A killed run leaves parts behind; the next
run reads ``manifest.parquet`` + ``volumes.parquet`` + the parts (later parts win) and skips every input
whose size and mtime are unchanged and whose volume exists. :meth:`Journal.finish` merges everything into
the tables and removes the parts.

>>> import tempfile, pathlib
>>> from medmm.records import Status
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> j = Journal(run)
>>> j.add([IngestManifestRow(path="a.txt", size=1, mtime_ns=0, format="text", status=Status.non_image)])
>>> j.flush()
>>> sorted(Journal(run).load()[0])
['a.txt']
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from medmm.errors import ConfigError
from medmm.ingest.errors import IngestTaskError
from medmm.ingest.records import IngestManifestRow
from medmm.records import Status
from medmm.tables import atomic_write_json, read_table, write_table

__all__ = ["Journal", "run_lock", "write_part"]

MANIFEST = "manifest.parquet"
VOLUMES = "volumes.parquet"
STATE = ".ingest_state.json"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``RUN_DIR/.ingest.lock`` for the run; a second ingest into the same folder is refused.

    The lock is an ``flock``: the OS releases it when the process ends, even when killed, so a killed
    run never leaves a stale lock behind.

    >>> import tempfile, pathlib
    >>> with run_lock(pathlib.Path(tempfile.mkdtemp())):
    ...     pass
    """
    import fcntl

    path = Path(run_dir) / ".ingest.lock"
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(
                f"{run_dir}: another `medmm ingest` is writing to this run directory; wait for it to "
                f"finish or choose another --out"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _volume_model() -> Any:
    from medmm.imaging.records import VolumeRecord

    return VolumeRecord


def write_part(run_dir: Path, stem: str, rows: list[IngestManifestRow], volumes: Iterable[Any] = ()) -> None:
    """Write one journal part (volumes first, then rows; each atomically) under ``RUN_DIR/.parts/``.

    Tasks on the workers write their own parts; the name ``stem`` starts with the run's sequence number.

    >>> import tempfile, pathlib
    >>> from medmm.records import Status
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> write_part(run, "000001-x", [IngestManifestRow(path="a", format="text", status=Status.non_image)])
    >>> sorted(Journal(run).load()[0])
    ['a']
    """
    parts = Path(run_dir) / ".parts"
    volumes = list(volumes)
    if volumes:
        write_table(volumes, parts / f"{stem}-volumes.parquet", _volume_model())
    if rows:
        write_table(rows, parts / f"{stem}-rows.parquet", IngestManifestRow)


class Journal:
    """Append-only record of finished inputs for one run directory.

    Parameters
    ----------
    run_dir
        The run directory.
    flush_every_s
        Buffered rows are written at most this many seconds after they arrive.
    """

    def __init__(self, run_dir: Path, flush_every_s: float = 5.0) -> None:
        self.run_dir = Path(run_dir)
        self.parts = self.run_dir / ".parts"
        self.flush_every_s = flush_every_s
        self._rows: list[IngestManifestRow] = []
        self._volumes: list[Any] = []
        self._last = time.monotonic()
        existing = (
            [int(p.name.split("-")[0]) for p in self.parts.glob("*-rows.parquet")]
            if self.parts.exists()
            else []
        )
        self._seq = max(existing, default=0) + 1

    # -- state of a previous run -------------------------------------------------------------------
    def state_matches(self, state: dict[str, str]) -> bool:
        """True when the previous run used the same key and archive (else its outputs are stale)."""
        path = self.run_dir / STATE
        if not path.exists():
            return not (self.run_dir / MANIFEST).exists() and not self.parts.exists()
        previous: dict[str, str] = json.loads(path.read_text())
        return previous == state

    def write_state(self, state: dict[str, str]) -> None:
        """Record the key fingerprint and archive this run directory belongs to."""
        atomic_write_json(self.run_dir / STATE, state)

    def discard(self) -> None:
        """Forget previous results (parts and tables), e.g. after the site key changed."""
        shutil.rmtree(self.parts, ignore_errors=True)
        for name in (MANIFEST, VOLUMES):
            (self.run_dir / name).unlink(missing_ok=True)
        self._seq = 1

    def load(self) -> tuple[dict[str, IngestManifestRow], dict[str, dict[str, Any]]]:
        """Rows (by path) and volume records (by volume_id) of the last finished run plus any parts."""
        row_frames, vol_frames = [], []
        if (self.run_dir / MANIFEST).exists():
            row_frames.append(read_table(self.run_dir / MANIFEST))
        if (self.run_dir / VOLUMES).exists():
            vol_frames.append(read_table(self.run_dir / VOLUMES))
        if self.parts.exists():
            for part in sorted(self.parts.glob("*-volumes.parquet")):
                vol_frames.append(read_table(part))
            for part in sorted(self.parts.glob("*-rows.parquet")):
                row_frames.append(read_table(part))
        rows: dict[str, IngestManifestRow] = {}
        for frame in row_frames:
            for rec in frame.to_dict(orient="records"):
                clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}
                row = IngestManifestRow.model_validate(clean)
                rows[row.path] = row
        volumes: dict[str, dict[str, Any]] = {}
        for frame in vol_frames:
            for rec in frame.to_dict(orient="records"):
                volumes[str(rec["volume_id"])] = {str(k): v for k, v in rec.items()}
        return rows, volumes

    # -- this run ---------------------------------------------------------------------------------
    def add(self, rows: Iterable[IngestManifestRow], volumes: Iterable[Any] = ()) -> None:
        """Buffer finished rows (and the volumes they point to); flushes when due."""
        self._rows.extend(rows)
        self._volumes.extend(volumes)
        if time.monotonic() - self._last >= self.flush_every_s:
            self.flush()

    def reserve(self) -> int:
        """A sequence number for parts written by tasks (this journal's own parts come after it)."""
        self.flush()
        seq, self._seq = self._seq, self._seq + 1
        return seq

    def flush(self) -> None:
        """Write buffered volumes, then rows, as the next numbered parts (atomic renames)."""
        self._last = time.monotonic()
        if not self._rows and not self._volumes:
            return
        write_part(self.run_dir, f"{self._seq:06d}", self._rows, self._volumes)
        self._seq += 1
        self._rows, self._volumes = [], []

    def finish(self, rows: list[IngestManifestRow], volumes: list[dict[str, Any]]) -> None:
        """Write the merged ``manifest.parquet`` and ``volumes.parquet``; then drop the parts."""
        self.flush()
        write_table(rows, self.run_dir / MANIFEST, IngestManifestRow)
        model = _volume_model()
        frame = pd.DataFrame(volumes, columns=list(model.model_fields))
        write_table(frame, self.run_dir / VOLUMES, model)
        shutil.rmtree(self.parts, ignore_errors=True)
        self._remove_orphans({str(v["volume_id"]) for v in volumes})

    def finish_from_parts(
        self, paths: Iterable[str], volumes: Mapping[str, dict[str, Any]]
    ) -> tuple[pa.Table, list[dict[str, Any]]]:
        """Write ``manifest.parquet`` from the journal (last row per path wins, one row per path).

        The tables are merged with Arrow (a few hundred bytes per file), never as row records. Inputs
        in ``paths`` without any row get a quarantined safety-net row.

        Parameters
        ----------
        paths
            Every input of this run (files and links), each once.
        volumes
            Volume records known to this run, by volume id (this run's and earlier runs').

        Returns
        -------
        manifest, volumes
            The manifest written (an Arrow table) and the volume records written to ``volumes.parquet``.
        """
        self.flush()
        table = _merge_rows(self.run_dir, self.parts, paths)
        _write_like_pandas(table, self.run_dir / MANIFEST)
        ingested = pc.equal(table["status"], Status.ingested.value)
        ids = sorted(v for v in pc.unique(table["volume_id"].filter(ingested)).to_pylist() if v)
        kept = [volumes[v] for v in ids if v in volumes]
        model = _volume_model()
        write_table(pd.DataFrame(kept, columns=list(model.model_fields)), self.run_dir / VOLUMES, model)
        shutil.rmtree(self.parts, ignore_errors=True)
        self._remove_orphans(set(ids))
        return table, kept

    def _remove_orphans(self, keep: set[str]) -> None:
        """Delete volumes no manifest row points to any more, and temp files of killed writers."""
        folder = self.run_dir / "volumes"
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            name = path.name
            vid = name.split(".")[0]
            temp = (name.startswith(".") and name.endswith(".tmp.nii.gz")) or name.endswith(".tmp")
            if temp or (vid.startswith("vol-") and vid not in keep):
                path.unlink(missing_ok=True)


def _schema() -> pa.Schema:
    ints = {"size", "mtime_ns"}
    return pa.schema([(n, pa.int64() if n in ints else pa.string()) for n in IngestManifestRow.model_fields])


def _read_rows(path: Path, schema: pa.Schema) -> pa.Table:
    table = pq.read_table(path, use_threads=False)
    cols = [
        table[n].cast(f.type) if n in table.column_names else pa.nulls(len(table), f.type)
        for n, f in zip(schema.names, schema, strict=True)
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def _merge_rows(run_dir: Path, parts: Path, paths: Iterable[str]) -> pa.Table:
    """Rows of the last finished run and the parts, last per path, restricted to ``paths``, sorted."""
    schema = _schema()
    sources = [run_dir / MANIFEST] if (run_dir / MANIFEST).exists() else []
    if parts.exists():
        sources += sorted(parts.glob("*-rows.parquet"))
    tables = [_read_rows(p, schema) for p in sources]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    wanted = pa.array(paths, pa.string())
    table = table.filter(pc.is_in(table["path"], value_set=wanted))
    order = pa.array(range(len(table)), pa.int64())
    table = table.append_column("_order", order)
    table = table.take(pc.sort_indices(table, [("path", "ascending"), ("_order", "descending")]))
    path_col = table["path"].combine_chunks()
    if len(table) > 1:
        first = pc.not_equal(path_col[1:], path_col[:-1])
        keep = pa.concat_arrays([pa.array([True]), first.fill_null(True)])
        table = table.filter(keep)
    table = table.drop_columns(["_order"])
    missing = pc.filter(wanted, pc.invert(pc.is_in(wanted, value_set=table["path"]))).to_pylist()
    if missing:  # safety net: every input appears, even if a code path forgot it
        extra = [_no_outcome(rel) for rel in missing]
        rows = pa.Table.from_pylist([r.model_dump(mode="json") for r in extra], schema=schema)
        table = pa.concat_tables([table, rows])
        table = table.take(pc.sort_indices(table, [("path", "ascending")]))
    return table.combine_chunks()


def _write_like_pandas(table: pa.Table, path: Path) -> None:
    """Write ``table`` as :func:`~medmm.tables.write_table` writes the same rows, without pandas.

    A DataFrame of the rows would cost ~1 KB per file (a Python object per cell); instead the schema
    (and pandas metadata) that pandas would give the whole table is derived from a few rows: one null
    and one value of each column. Integer columns with nulls become float64 and all-null columns the
    null type, as in pandas; the file's bytes are identical.
    """
    import tempfile

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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        cols = [pa.nulls(len(table)) if f.type == pa.null() else table[f.name].cast(f.type) for f in schema]
        pq.write_table(pa.Table.from_arrays(cols, schema=schema), tmp, compression="snappy")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _no_outcome(rel: str) -> IngestManifestRow:
    from medmm.errors import reason_of

    err = IngestTaskError(rel, "no outcome was recorded for this file", "re-run `medmm ingest`")
    return IngestManifestRow(path=rel, format="unknown", status=Status.quarantined, reason=reason_of(err))
