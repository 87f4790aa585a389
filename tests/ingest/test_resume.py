"""Resumption: unchanged inputs are skipped, changed ones redone; a killed run or worker loses nothing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import medmm.ingest.groups as groups
import medmm.ingest.pipeline as pipeline
from medmm.errors import ConfigError
from medmm.ingest.journal import run_lock
from medmm.ingest.pipeline import ingest_archive
from medmm.ingest.tasks import FAULT_ENV
from medmm.tables import read_table


def _tables(run: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_table(run / "manifest.parquet"), read_table(run / "volumes.parquet").astype(str)


def _assert_same_outputs(run: Path, reference: Path) -> None:
    (m, v), (m_ref, v_ref) = _tables(run), _tables(reference)
    pd.testing.assert_frame_equal(m, m_ref)
    pd.testing.assert_frame_equal(v, v_ref)
    for rel in v_ref["path"]:
        a, b = nib.load(run / rel), nib.load(reference / rel)
        assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        assert np.allclose(a.affine, b.affine)
    written = sorted(p.name for p in (run / "volumes").iterdir())
    assert written == sorted(p.name for p in (reference / "volumes").iterdir())  # no strays, no temps
    assert not (run / ".parts").exists()


def test_rerun_skips_everything_and_redoes_what_changed(
    sample: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    archive0, key, _ = sample
    archive = tmp_path / "archive"
    shutil.copytree(archive0, archive)
    run = tmp_path / "run"
    first = ingest_archive(archive, run, workers=2, processes=False, key_file=key)
    again = ingest_archive(archive, run, workers=2, processes=False, key_file=key)
    assert again.n_skipped == again.n_files == first.n_files
    assert again.counts == first.counts
    assert again.timings["total_s"] < first.timings["total_s"]

    series = sorted((archive / "generated" / "synthetic_ct" / "series_0000").iterdir())
    st = series[1].stat()
    os.utime(series[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: the series is redone
    shutil.copyfile(archive / "nibabel" / "functional.nii", archive / "nibabel" / "anatomical.nii")  # changed
    (archive / "generated" / "notes.txt").unlink()  # gone
    (archive / "generated" / "new.txt").write_text("a new file\n")  # new
    third = ingest_archive(archive, run, workers=2, processes=False, key_file=key)
    assert third.n_skipped == first.n_files - len(series) - 2  # series + anatomical.nii + notes.txt
    manifest = read_table(run / "manifest.parquet").set_index("path")
    assert (
        "generated/notes.txt" not in manifest.index
        and manifest.loc["generated/new.txt", "status"] == "non_image"
    )
    rel = f"generated/synthetic_ct/series_0000/{series[1].name}"
    assert (
        manifest.loc[rel, "mtime_ns"] == st.st_mtime_ns + 10**9 and manifest.loc[rel, "status"] == "ingested"
    )
    volumes = read_table(run / "volumes.parquet").set_index("volume_id")
    anat = volumes.loc[manifest.loc["nibabel/anatomical.nii", "volume_id"]]
    assert list(anat["shape"]) == [17, 21, 3, 20]  # the new content, not the old volume
    assert len(volumes) == len(list((run / "volumes").glob("*.nii.gz")))


def test_killed_run_resumes_to_the_undisturbed_result(
    sample: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, key, reference = sample
    real_run_tasks = pipeline.run_tasks

    def dying_run_tasks(client: Any, fn: Any, items: Any, **kw: Any) -> Iterator[Any]:
        for n, out in enumerate(real_run_tasks(client, fn, items, **kw)):
            if kw.get("label") == "convert" and n == 3:
                raise KeyboardInterrupt  # the driver is killed after 3 volumes
            yield out

    monkeypatch.setattr(pipeline, "run_tasks", dying_run_tasks)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        ingest_archive(archive, run, workers=2, processes=False, key_file=key)
    assert list((run / ".parts").glob("*-rows.*")) and not (run / "manifest.parquet").exists()
    monkeypatch.setattr(pipeline, "run_tasks", real_run_tasks)
    resumed = ingest_archive(archive, run, workers=2, processes=False, key_file=key)
    assert resumed.n_skipped > 0  # rows settled before the kill were kept
    _assert_same_outputs(run, reference)


@pytest.mark.slow
def test_worker_process_killed_mid_task(
    sample: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, key, reference = sample
    flag = tmp_path / "killed.flag"
    monkeypatch.setenv(FAULT_ENV, str(flag))  # inherited by the worker processes
    run = tmp_path / "run"
    ingest_archive(archive, run, workers=2, processes=True, key_file=key)
    assert flag.exists()  # a worker process really died inside a conversion task
    _assert_same_outputs(run, reference)


def test_unexpected_task_failure_is_quarantined_then_retried(
    sample: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive0, key, _ = sample
    archive = tmp_path / "archive"
    archive.mkdir()
    for rel in ("nibabel/functional.nii", "nibabel/anatomical.nii", "generated/notes.txt"):
        shutil.copyfile(archive0 / rel, archive / Path(rel).name)
    real_convert = groups.convert_job

    def buggy(job: Any, *args: Any) -> Any:
        if "functional.nii" in job.paths:
            raise RuntimeError("simulated bug")
        return real_convert(job, *args)

    monkeypatch.setattr(groups, "convert_job", buggy)
    run = tmp_path / "run"
    first = ingest_archive(archive, run, workers=1, processes=False, key_file=key)
    manifest = read_table(run / "manifest.parquet").set_index("path")
    assert manifest.loc["functional.nii", "reason"].startswith("IngestTaskError")
    assert "simulated bug" in manifest.loc["functional.nii", "reason"]
    assert manifest.loc["anatomical.nii", "status"] == "ingested" and first.counts["ingested"] == 1
    monkeypatch.setattr(groups, "convert_job", real_convert)
    second = ingest_archive(archive, run, workers=1, processes=False, key_file=key)
    assert second.n_skipped == 2 and second.counts["ingested"] == 2


def test_second_ingest_into_a_busy_run_dir_is_refused(tmp_path: Path, key_file: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "a.txt").write_text("text\n")
    run = tmp_path / "run"
    run.mkdir()
    with run_lock(run), pytest.raises(ConfigError, match="another `medmm ingest`"):
        ingest_archive(archive, run, workers=1, processes=False)
    assert ingest_archive(archive, run, workers=1, processes=False).n_files == 1  # lock released
