"""The driver's memory does not grow with the archive: the walk is spilled, the final tables are written
a row group at a time, and what they hold is what the in-memory merge wrote (pandas frames equal)."""

from __future__ import annotations

import os
import pickle
import random
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from medmm.ingest.discover import Entry, iter_archive, walk_archive
from medmm.ingest.finalize import write_manifest, write_volumes
from medmm.ingest.journal import write_part
from medmm.ingest.merge import merge_rows, write_like_pandas
from medmm.ingest.records import IngestManifestRow
from medmm.ingest.spill import EntrySpill
from medmm.records import Status
from medmm.tables import write_table

#: The most a 4x larger input may add to a traced peak (a few hundred bytes per file would add
#: ~0.5-2 MiB at these sizes).
SLACK = 160 * 1024


def _archive(root: Path, n_folders: int, per_folder: int = 40) -> Path:
    """Tiny files in folders of a fixed width, with names whose order needs care ('.' < '/' < '0')."""
    for f in range(n_folders):
        folder = root / f"s{f:04d}"
        folder.mkdir(parents=True)
        (root / f"s{f:04d}.txt").write_bytes(b"x")  # sorts before the folder's own files
        for i in range(per_folder):
            (folder / f"{i:03d}.dcm").write_bytes(b"y")
    return root


def _walk_peak(root: Path, spill_path: Path) -> tuple[int, int]:
    rows: list[IngestManifestRow] = []
    tracemalloc.start()
    try:
        spill = EntrySpill(spill_path, chunk=256)
        for entry in iter_archive(root, rows):
            spill.add(entry)
        spill.close()
        n = sum(1 for _ in spill.rels())
        return tracemalloc.get_traced_memory()[1], n
    finally:
        tracemalloc.stop()


def test_walk_is_sorted_like_the_list_and_its_memory_does_not_grow(tmp_path: Path) -> None:
    small = _archive(tmp_path / "small", 25)  # 1,025 files
    large = _archive(tmp_path / "large", 100)  # 4,100 files
    (large / "a.b").write_bytes(b"")
    (large / "a").mkdir()
    (large / "a" / "x").write_bytes(b"")
    (large / "a0").write_bytes(b"")
    entries, rows = walk_archive(large)
    rels = [e.rel for e in entries]
    expected = sorted(
        os.path.relpath(os.path.join(d, f), large).replace(os.sep, "/")
        for d, _, files in os.walk(large)
        for f in files
    )
    assert rels == expected and rows == []
    assert rels.index("a.b") < rels.index("a/x") < rels.index("a0")
    spill = EntrySpill(tmp_path / "spill.pkl", chunk=100)
    for e in entries:
        spill.add(e)
    spill.close()
    assert list(spill.entries()) == entries and len(spill) == len(entries)

    peak_small, n_small = _walk_peak(small, tmp_path / "s.pkl")
    peak_large, n_large = _walk_peak(large, tmp_path / "l.pkl")
    assert (n_small, n_large) == (1025, 4103)
    assert peak_large - peak_small < SLACK, (peak_small, peak_large)


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        status = rng.choice([Status.ingested, Status.quarantined, Status.non_image, Status.duplicate])
        rows.append(
            IngestManifestRow(
                path=f"p{i // 100:04d}/{i:06d}.dcm",
                size=None if status is Status.duplicate else rng.randrange(10**6),
                mtime_ns=rng.randrange(10**18),
                format="dicom",
                status=status,
                reason="" if status is Status.ingested else f"Err: {i}: problem. Fix: x",
                volume_id=f"vol-{i // 100:04d}" if status is Status.ingested else None,
                kind="image",
                modality="MR",
                patient_id=f"pat-{i // 1000}",
                study_id=None,
                series_id=f"ser-{i // 100}",
            ).model_dump(mode="json")
        )
    return rows


def _journal(run: Path, n: int, seed: int = 0) -> Callable[[], Iterator[str]]:
    """A run directory whose journal holds ``n`` rows in shuffled parts of 200 (some rows twice, the
    later one winning), and the sorted inputs read from a file (not from memory)."""
    rows = _rows(n, seed)
    order = list(range(0, n, 200))
    random.Random(seed).shuffle(order)
    for k, start in enumerate(order):
        write_part(run, f"{k:06d}", [IngestManifestRow.model_validate(r) for r in rows[start : start + 200]])
    again = [dict(r, reason="newer", status="quarantined", volume_id=None) for r in rows[::97]]
    write_part(run, f"{len(order):06d}", [IngestManifestRow.model_validate(r) for r in again])
    listing = run / "inputs.txt"
    # every input once, sorted; one without any row (safety net); rows of files that are gone are dropped
    wanted = sorted({r["path"] for r in rows[: n - 5]} | {"p0000/zz-no-row.dcm"})
    listing.write_text("".join(p + "\n" for p in wanted))

    def paths() -> Iterator[str]:
        with listing.open() as fh:
            for line in fh:
                yield line[:-1]

    return paths


def _write_peak(run: Path, paths: Callable[[], Iterator[str]], per_group: int) -> int:
    dest = run / "streamed.parquet"
    tracemalloc.start()
    try:
        write_manifest(run, run / ".parts", paths, dest, rows_per_group=per_group)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_manifest_write_memory_does_not_grow_with_the_rows(tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    paths_small, paths_large = _journal(small, 2000), _journal(large, 8000)
    write_manifest(small, small / ".parts", paths_small, small / "warm.parquet", rows_per_group=256)
    peak_small = _write_peak(small, paths_small, 256)
    peak_large = _write_peak(large, paths_large, 256)
    assert peak_large - peak_small < SLACK, (peak_small, peak_large)
    assert len(pd.read_parquet(large / "streamed.parquet")) == 8000 - 5 + 1


@pytest.mark.parametrize("per_group", [64, 100_000])
def test_streamed_tables_equal_the_in_memory_merge(tmp_path: Path, per_group: int) -> None:
    run = tmp_path / "run"
    paths = _journal(run, 1000, seed=3)
    # a finished run's manifest too (older than every part); integer columns with nulls are float64
    older = _rows(1200, seed=4)
    for r in older[::3]:
        r["reason"] = "from the last finished run"
    write_table(
        [IngestManifestRow.model_validate(r) for r in older], run / "manifest.parquet", IngestManifestRow
    )
    summary = write_manifest(run, run / ".parts", paths, run / "streamed.parquet", rows_per_group=per_group)

    reference = merge_rows(run, run / ".parts", list(paths()))  # the in-memory merge
    write_like_pandas(reference, run / "manifest.parquet")
    expected = pd.read_parquet(run / "manifest.parquet")
    got = pd.read_parquet(run / "streamed.parquet")
    assert got.equals(expected) and list(got.dtypes) == list(expected.dtypes)
    records = [IngestManifestRow.model_validate(r) for r in reference.to_pylist()]
    write_table(records, run / "pandas.parquet", IngestManifestRow)  # what pandas writes of the rows
    assert got.equals(pd.read_parquet(run / "pandas.parquet"))
    assert got["size"].dtype == np.float64 and got["study_id"].isna().all()
    assert got.loc[got["path"] == "p0000/zz-no-row.dcm", "reason"].iloc[0].startswith("IngestTaskError")
    single = per_group >= len(got)
    assert ((run / "streamed.parquet").read_bytes() == (run / "manifest.parquet").read_bytes()) == single
    assert summary.n_rows == len(got) == reference.num_rows
    assert summary.counts == got["status"].value_counts().sort_index().to_dict()
    ingested = got[got["status"] == "ingested"]["volume_id"]
    assert summary.volume_ids == sorted(set(ingested))


def _volume(i: int, warnings: list[str]) -> dict[str, Any]:
    return {
        "volume_id": f"vol-{i:04d}",
        "path": f"volumes/vol-{i:04d}.nii.gz",
        "sidecar": f"volumes/vol-{i:04d}.json",
        "shape": [4, 4, 2 + i % 3],
        "spacing": [1.0, 1.0, 2.5],
        "orientation": "RAS",
        "affine": [[1.0, 0.0, 0.0, float(i)], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.5, 0.0], [0, 0, 0, 1.0]],
        "modality": "MR",
        "n_sources": 2,
        "source_format": "dicom",
        "sources": [f"s/{i}/a.dcm", f"s/{i}/b.dcm"],
        "patient_id": "pat-1",
        "study_id": None,
        "series_id": f"ser-{i}",
        "study_time": None,
        "warnings": warnings,
        "dtype": "int16",
        "accession_id": None,
        "study_time_precision": None,
    }


@pytest.mark.parametrize("with_warnings", [False, True])
def test_volumes_table_equals_what_pandas_writes(tmp_path: Path, with_warnings: bool) -> None:
    from medmm.imaging.records import VolumeRecord

    parts = tmp_path / ".parts"
    records = [_volume(i, ["tilt"] if with_warnings and i == 7 else []) for i in range(20)]
    for k in range(0, 20, 3):  # group parts of 3 volumes, as the group tasks write them
        with (parts / f"{k:06d}-g-volumes.pkl").open("wb") if parts.exists() else _mk(parts, k) as fh:
            pickle.dump(records[k : k + 3], fh)
    previous_table = tmp_path / "previous.parquet"  # a finished run's volumes, read back with pandas
    write_table(pd.DataFrame([_volume(100, [])], columns=list(VolumeRecord.model_fields)), previous_table)
    read_back = pd.read_parquet(previous_table).to_dict(orient="records")[0]
    previous = {"vol-0100": {str(k): v for k, v in read_back.items()}}
    wanted = sorted([r["volume_id"] for r in records[::2]] + ["vol-0100", "vol-9999"])  # 9999: unknown
    n = write_volumes(parts, previous, wanted, tmp_path / "streamed.parquet", per_group=4)
    kept = [next(r for r in records if r["volume_id"] == v) for v in wanted if v.startswith("vol-00")]
    kept.insert(wanted.index("vol-0100"), _volume(100, []))
    write_table(pd.DataFrame(kept, columns=list(VolumeRecord.model_fields)), tmp_path / "expected.parquet")
    got, expected = (
        pd.read_parquet(tmp_path / "streamed.parquet"),
        pd.read_parquet(tmp_path / "expected.parquet"),
    )
    assert n == len(kept) == len(got)
    pd.testing.assert_frame_equal(got, expected)
    assert all(np.stack(a).shape == (4, 4) for a in got["affine"])


def _mk(parts: Path, k: int) -> Any:
    parts.mkdir(parents=True)
    return (parts / f"{k:06d}-g-volumes.pkl").open("wb")


def test_spill_of_an_empty_walk(tmp_path: Path) -> None:
    spill = EntrySpill(tmp_path / "w" / "e.pkl")
    spill.close()
    assert len(spill) == 0 and list(spill.entries()) == [] and list(spill.rels()) == []
    assert oct((tmp_path / "w" / "e.pkl").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(RuntimeError):
        list(EntrySpill(tmp_path / "x.pkl").entries())
    assert Entry("a", 1, 2) == Entry("a", 1, 2)


def test_dask_configuration_is_restored_after_a_run(tmp_path: Path) -> None:
    """In a fresh interpreter (distributed not imported before the run), the run's Dask log length is
    set and undone without removing distributed's defaults from Dask's configuration."""
    import subprocess
    import sys

    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "note.txt").write_text("not an image")
    key = tmp_path / "site.key"
    key.write_text("5a" * 32 + "\n")
    key.chmod(0o600)
    code = (
        "import dask, sys\n"
        "from medmm.ingest.pipeline import ingest_archive\n"
        "from medmm.ingest.run_cluster import DASK_LOG_LENGTH\n"
        "r = ingest_archive(sys.argv[1], sys.argv[2], workers=1, processes=False, key_file=sys.argv[3])\n"
        "assert r.counts == {'non_image': 1}, r.counts\n"
        "assert dask.config.get('distributed.admin.low-level-log-length') != DASK_LOG_LENGTH\n"
        "print(dask.config.get('distributed.comm.timeouts.connect'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(archive), str(tmp_path / "run"), str(key)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "30s"
