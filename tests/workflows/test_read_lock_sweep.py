"""At its start, under its lock, `medmm run` removes the temp files of atomic writes a killed run left
(``.NAME.XXXXXXXX.tmp``), older than its start, and nothing else; run.json counts them."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest

import medmm.workflows.run as run_module
from medmm.workflows.config import WorkflowConfig
from medmm.workflows.run import run_workflow

OLD = time.time() - 3600  # an hour before the run: what a killed run of last night left


def _old(path: Path, data: bytes = b"half-written") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (OLD, OLD))
    return path


def test_leftover_temp_files_are_swept_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    leftovers = [
        _old(run / ".beats.parquet.k2j_9x0a.tmp"),
        _old(run / "inputs" / "signal" / ".x.npy.abcdefgh.tmp"),
        _old(run / "windows" / "r1" / ".ch0.npy.0a1b2c3d.tmp"),
    ]
    kept = [
        _old(run / "beats.parquet"),
        _old(run / ".x.tmp"),  # not the atomic-write pattern
        _old(run / "volumes.abcdefgh.tmp"),  # no leading dot
        _old(run / "notes.tmp"),
        _old(run / ".beats.parquet.ABCDEFGH.tmp"),  # mkstemp never uses capitals
    ]
    outside = _old(tmp_path / "elsewhere" / ".t.parquet.abcdefgh.tmp")
    (run / "linked").symlink_to(tmp_path / "elsewhere")  # links are not followed
    seen: dict[str, object] = {}

    def stage(step: object, ctx: run_module.StageContext) -> dict[str, int]:
        seen["left"] = [p.exists() for p in leftovers]
        fd, name = tempfile.mkstemp(prefix=".records.parquet.", suffix=".tmp", dir=ctx.run_dir)
        os.close(fd)
        seen["own"] = Path(name)  # a write of this run, after its start: not the sweep's
        return {}

    monkeypatch.setitem(run_module._STAGES, run_module.StageName.align, stage)
    cfg = WorkflowConfig.model_validate({"name": "n", "run_dir": "run", "stages": [{"stage": "align"}]})
    run_workflow(cfg, tmp_path)
    assert seen["left"] == [False, False, False]  # removed before the first stage
    assert all(p.exists() for p in kept) and outside.exists()
    assert isinstance(seen["own"], Path) and seen["own"].exists()
    workflow = json.loads((run / "run.json").read_text())["stages"]["workflow"]
    assert workflow["counts"]["temp_files_removed"] == 3
    run_workflow(cfg, tmp_path)  # the next night: only its own temp file of the previous run, now old
    workflow = json.loads((run / "run.json").read_text())["stages"]["workflow"]
    assert workflow["counts"]["temp_files_removed"] == 1


def test_a_new_temp_file_is_not_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    fresh = run / ".beats.parquet.abcdefgh.tmp"
    fresh.write_bytes(b"being written")
    future = time.time() + 3600  # modified after the run's start (a write still going on)
    os.utime(fresh, (future, future))
    monkeypatch.setitem(run_module._STAGES, run_module.StageName.align, lambda step, ctx: {})
    cfg = WorkflowConfig.model_validate({"name": "n", "run_dir": "run", "stages": [{"stage": "align"}]})
    run_workflow(cfg, tmp_path)
    assert fresh.exists()
    workflow = json.loads((run / "run.json").read_text())["stages"]["workflow"]
    assert workflow["counts"]["temp_files_removed"] == 0


def test_the_sweep_never_enters_an_input_folder_inside_the_run_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export kept inside the run directory (as the demo's sample_archive/): a file of the export
    that happens to have the pattern (another program's mkstemp write) is the user's, not medmm's."""
    run = tmp_path / "run"
    ours = _old(run / ".manifest.parquet.abcdefgh.tmp")
    theirs = _old(run / "export" / "CT" / ".IM0001.dcm.k2j9x0ab.tmp")
    monkeypatch.setitem(run_module._STAGES, run_module.StageName.ingest, lambda step, ctx: {})
    cfg = WorkflowConfig.model_validate(
        {"name": "n", "run_dir": "run", "stages": [{"stage": "ingest", "input": "run/export"}]}
    )
    run_workflow(cfg, tmp_path)
    assert not ours.exists() and theirs.exists()  # the export's file was removed
    workflow = json.loads((run / "run.json").read_text())["stages"]["workflow"]
    assert workflow["counts"]["temp_files_removed"] == 1
