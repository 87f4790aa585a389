"""Conversion tasks that bundle several study/series groups (fewer Dask tasks, same outputs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from medmm.ingest import groups, pipeline, scan_phase
from medmm.ingest.groups import GROUP_RETRIES, bundle_groups
from medmm.tables import read_table


def test_bundles_cover_every_group_once_in_order_and_end_with_single_groups() -> None:
    sizes = {f"g{i:03d}": 100 for i in range(50)}
    bundles = bundle_groups(sizes, slots=2, per_slot=4)
    assert [g for b in bundles for g in b] == sorted(sizes)
    assert len(bundles) <= len(sizes) // 2  # far fewer tasks than groups
    assert [len(b) for b in bundles] == sorted((len(b) for b in bundles), reverse=True)
    assert all(len(b) == 1 for b in bundles[-8:])  # the last tasks are small: no worker waits long
    assert max(len(b) for b in bundles) <= 50 / 8


def test_default_bundles_take_a_quarter_of_what_is_left_on_two_workers() -> None:
    sizes = {f"g{i:03d}": 100 for i in range(50)}  # the 5,000-slice bench archive's groups
    bundles = bundle_groups(sizes, slots=2)  # per_slot=2: each bundle ~1/4 of the files left
    assert [len(b) for b in bundles] == [12, 9, 7, 5, 4, 3, 2, 2, 1, 1, 1, 1, 1, 1]
    assert [g for b in bundles for g in b] == sorted(sizes)
    ten = bundle_groups({f"g{i}": 100 for i in range(10)}, slots=2)  # the 1,000-slice archive's
    assert [len(b) for b in ten] == [2, 2, 1, 1, 1, 1, 1, 1]


def test_a_large_group_is_its_own_task() -> None:
    sizes = {"a": 5, "b": 5000, "c": 5, "d": 5}
    bundles = bundle_groups(sizes, slots=1, per_slot=2)
    assert ("b",) in bundles and [g for b in bundles for g in b] == ["a", "b", "c", "d"]


def test_a_failing_group_in_a_bundle_quarantines_its_files_only(
    sample: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive0, key, _ = sample
    archive = tmp_path / "archive"
    shutil.copytree(archive0, archive)
    real = groups.convert_group
    calls: dict[str, int] = {}
    victim: list[str] = []

    def failing(gid: str, *args: Any) -> Any:
        if not victim:
            victim.append(gid)  # the first group converted fails every time
        calls[gid] = calls.get(gid, 0) + 1
        if gid == victim[0]:
            raise OSError("simulated disk error")
        return real(gid, *args)

    monkeypatch.setattr(groups, "convert_group", failing)
    monkeypatch.setattr(pipeline, "bundle_groups", lambda sizes, slots: [tuple(sorted(sizes))])
    run = tmp_path / "run"
    result = pipeline.ingest_archive(archive, run, workers=1, processes=False, key_file=key)
    assert len(calls) > 1  # one bundle held several groups
    assert calls[victim[0]] == 1 + GROUP_RETRIES  # retried as its own task would have been
    manifest = read_table(run / "manifest.parquet")
    failed = manifest[manifest["reason"].str.contains("simulated disk error", na=False)]
    assert len(failed) > 0 and (failed["status"] == "quarantined").all()
    assert failed["reason"].str.startswith("IngestTaskError").all()
    assert result.counts.get("ingested", 0) > 0  # the bundle's other groups were converted
    assert len(manifest) == result.n_files and manifest["path"].is_unique


def test_scan_batches_default_to_scan_batch_files_in_the_cli_and_the_api() -> None:
    import inspect

    from typer.main import get_command

    from medmm.ingest.__main__ import app

    params = {p.name: p for p in get_command(app).commands["ingest"].params}  # type: ignore[attr-defined]
    assert params["batch_size"].default == scan_phase.SCAN_BATCH == 500
    default = inspect.signature(pipeline.ingest_archive).parameters["batch_size"].default
    assert default == scan_phase.SCAN_BATCH
    assert scan_phase.scan_batch_size(5000, scan_phase.SCAN_BATCH, slots=2) == 500  # 10 tasks at 5,000 files
    assert scan_phase.scan_batch_size(1000, scan_phase.SCAN_BATCH, slots=2) == 125  # still 4 per worker
