"""Scan and group tasks write their results to parts; the driver gets O(series) summaries only."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from medmm.ingest import groups, pipeline
from medmm.ingest.discover import Entry, pair_units, walk_archive
from medmm.ingest.groups import convert_group, scan_to_parts
from medmm.ingest.headers import headers_dir
from medmm.ingest.journal import Journal, write_part
from medmm.ingest.merge import read_all
from medmm.ingest.records import IngestManifestRow
from medmm.ingest.tasks import scan_batch
from medmm.pseudonym import Pseudonymizer
from medmm.records import Status
from medmm.tables import read_table, write_table

KEY = b"k" * 32


def test_group_parts_settle_every_file_as_the_in_memory_plan(
    sample: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    archive = sample[0]
    entries, _ = walk_archive(archive)
    pairs = pair_units(e.rel for e in entries)
    run = tmp_path / "run"
    groups: dict[str, int] = {}
    images = []
    for i in range(0, len(entries), 7):  # several batches: a group's files land in several parts
        summary = scan_to_parts(entries[i : i + 7], str(archive), KEY, str(run), 1, set(pairs))
        for gid, n in summary.groups.items():
            groups[gid] = groups.get(gid, 0) + n
        images += summary.images
    assert groups and all(isinstance(n, int) for n in summary.groups.values())  # counts, not records
    assert not any(s.instance is not None for s in images)
    assert len({p.parent.name for p in headers_dir(run, 1).glob("*/*.pkl")}) == len(groups)

    # the reference: every file scanned in memory and assembled in one call, as one process would
    from medmm.imaging.series import assemble_series

    scanned = {s.row.path: s for s in scan_batch(entries, str(archive), Pseudonymizer(KEY))}
    dicoms = [s.instance for s in scanned.values() if s.instance is not None]
    assembly = assemble_series(dicoms)
    volumes = []
    for gid in sorted(groups):
        volumes += convert_group(gid, str(archive), str(run), KEY, 1).volume_ids
    journaled = {
        r["path"]: IngestManifestRow.model_validate(r) for r in read_all(run, run / ".parts").to_pylist()
    }
    for path, outcome in assembly.outcomes.items():  # non-image objects, duplicates
        assert (journaled[path].status, journaled[path].reason) == (outcome.status, outcome.reason), path
    clean = [st for st in assembly.stacks if not st.problems]
    assert len(volumes) == len(clean) > 3
    for stack in assembly.stacks:
        rows = [journaled[p] for p in stack.paths]
        if stack.problems:
            assert all(r.status is Status.quarantined and r.reason == stack.reason for r in rows)
        else:
            assert len({r.volume_id for r in rows}) == 1 and all(r.status is Status.ingested for r in rows)
    for path, s in scanned.items():  # the batches' final rows, as scanned (.img companions go back)
        if s.instance is None and not s.pending and path not in pairs:
            assert journaled[path] == s.row, path
    assert sum(groups.values()) == sum(len(st.paths) for st in assembly.stacks) + sum(
        1 for p, o in assembly.outcomes.items() if o.status is Status.duplicate
    )


def _row(path: str, status: Status, reason: str = "", size: int | None = 1) -> IngestManifestRow:
    return IngestManifestRow(path=path, size=size, mtime_ns=5, format="text", status=status, reason=reason)


def test_manifest_merge_keeps_the_last_row_per_path_and_writes_what_pandas_writes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_part(run, "000001-s1", [_row("b", Status.quarantined, "old"), _row("a", Status.non_image)])
    write_part(run, "000002", [_row("b", Status.non_image, "new"), _row("gone", Status.non_image)])
    write_part(run, "000002-x", [_row("link", Status.duplicate, "a link", size=None)])
    journal = Journal(run)
    summary, n_volumes = journal.finish_streamed(lambda: iter(["a", "b", "c", "link"]), {})
    got = read_table(run / "manifest.parquet")
    assert got["path"].tolist() == ["a", "b", "c", "link"] and n_volumes == 0 and summary.n_rows == 4
    assert got.set_index("path").loc["b", "reason"] == "new"
    assert str(got.set_index("path").loc["c", "reason"]).startswith("IngestTaskError")
    assert not (run / ".parts").exists()
    # byte for byte what write_table makes of the same records
    rows = pq.read_table(run / "manifest.parquet").to_pylist()
    expected = [IngestManifestRow.model_validate(r) for r in rows]
    write_table(expected, tmp_path / "expected.parquet", IngestManifestRow)
    assert (run / "manifest.parquet").read_bytes() == (tmp_path / "expected.parquet").read_bytes()


def test_crashed_scan_task_quarantines_its_files_and_drops_its_header_parts(
    sample: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive0, key, _ = sample
    archive = tmp_path / "archive"
    shutil.copytree(archive0, archive)
    real = groups.scan_to_parts
    victim = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*.dcm"))[0]

    def crashing(entries: list[Entry], *args: Any) -> Any:
        summary = real(entries, *args)  # its parts are written, then the task dies
        if any(e.rel == victim for e in entries):
            raise MemoryError("simulated crash")
        return summary

    monkeypatch.setattr(groups, "scan_to_parts", crashing)
    run = tmp_path / "run"
    result = pipeline.ingest_archive(archive, run, workers=1, processes=False, key_file=key, batch_size=5)
    manifest = read_table(run / "manifest.parquet").set_index("path")
    assert len(manifest) == result.n_files and manifest.index.is_unique
    row = manifest.loc[victim]
    assert row["status"] == "quarantined" and "simulated crash" in row["reason"]
    assert row["reason"].startswith("IngestTaskError")
    assert pd_notna_none(row["volume_id"])  # its header record never reached a group
    assert result.counts.get("ingested", 0) > 0


def pd_notna_none(value: object) -> bool:
    """True when a manifest cell is empty (None or NaN)."""
    return value is None or value != value


def test_resume_state_is_read_without_row_records(tmp_path: Path) -> None:
    run = tmp_path / "run"
    crash = "IngestTaskError: b: processing failed unexpectedly (MemoryError). Fix: re-run"
    write_part(run, "000001-s1", [_row("a", Status.non_image), _row("b", Status.non_image)])
    write_part(run, "000002", [_row("b", Status.quarantined, crash)])
    rows, volumes = Journal(run).load()
    assert set(rows) == {"a", "b"} and volumes == {}
    assert rows["a"].size == 1 and rows["a"].mtime_ns == 5 and not rows["a"].retry
    assert rows["b"].status == "quarantined" and rows["b"].retry  # the later part wins
