"""While no worker has joined the driver scans; a cluster whose workers never come fails clearly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medmm.errors import ConfigError
from medmm.ingest import pipeline, run_cluster


@pytest.fixture
def no_worker_client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=0, processes=False, dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    return key


def test_driver_scans_while_no_worker_has_joined(
    tmp_path: Path, no_worker_client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_cluster, "WORKER_START_TIMEOUT_S", 0.5)  # scan tasks would fail, not hang
    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(5):  # nothing to convert: the whole run needs no worker at all
        (archive / f"note{i}.txt").write_text("not an image")
    (archive / "empty.dcm").write_bytes(b"")
    result = pipeline.ingest_archive(
        archive, tmp_path / "run", client=no_worker_client, key_file=_key(tmp_path)
    )
    assert result.n_files == 6
    assert result.counts == {"non_image": 5, "quarantined": 1}


def test_no_worker_ever_joining_is_a_clear_error(
    tmp_path: Path, no_worker_client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nibabel as nib

    archive = tmp_path / "archive"
    archive.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), archive / "a.nii")
    monkeypatch.setattr(run_cluster, "WORKER_START_TIMEOUT_S", 0.5)
    with pytest.raises(ConfigError, match="no Dask worker joined"):
        pipeline.ingest_archive(archive, tmp_path / "run", client=no_worker_client, key_file=_key(tmp_path))


def _trim_env() -> str | None:
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_ingest_workers_keep_glibc_adaptive_malloc() -> None:
    """Dask's MALLOC_TRIM_THRESHOLD_ (page faults on every large buffer) is dropped only on request."""
    from medmm.workflows.cluster import dask_client

    seen = {}
    for trim in (True, False):
        with dask_client(workers=1, quiet=True, malloc_trim=trim) as client:
            seen[trim] = set(client.run(_trim_env).values())
    assert seen == {True: {"65536"}, False: {None}}


def test_garbage_collector_settings_are_restored(
    tmp_path: Path, no_worker_client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    seen = []
    original_scan = pipeline.scan_entries

    def scan(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold()[0])
        return original_scan(*args, **kwargs)

    monkeypatch.setattr(pipeline, "scan_entries", scan)
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "note.txt").write_text("not an image")
    before = gc.get_threshold()
    pipeline.ingest_archive(archive, tmp_path / "run", client=no_worker_client, key_file=_key(tmp_path))
    assert seen and seen[0] == pipeline.GC_THRESHOLD0  # fewer collections during the run
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0  # restored afterwards
