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
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from medmm.errors import ConfigError
from medmm.ingest.records import IngestManifestRow
from medmm.tables import atomic_write_json, read_table, write_table

__all__ = ["Journal", "run_lock"]

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

    def flush(self) -> None:
        """Write buffered volumes, then rows, as the next numbered parts (atomic renames)."""
        self._last = time.monotonic()
        if not self._rows and not self._volumes:
            return
        stem = f"{self._seq:06d}"
        if self._volumes:
            write_table(self._volumes, self.parts / f"{stem}-volumes.parquet", _volume_model())
        write_table(self._rows, self.parts / f"{stem}-rows.parquet", IngestManifestRow)
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
