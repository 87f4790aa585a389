"""`medmm run` exit codes a monitoring check can rely on: a full disk (or a read-only run directory) met by
any stage is exit 2 with the folder and the fix, not a traceback; a bug is exit 3 with its traceback,
never 1 (which means "inputs quarantined")."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medmm.cli import app


def _workflow(base: Path) -> Path:
    (base / "pacs").mkdir()
    (base / "site.key").write_text("5a" * 32 + "\n")
    (base / "site.key").chmod(0o600)
    path = base / "w.yaml"
    path.write_text(
        "name: nightly\nrun_dir: run\nkey_file: site.key\nstrict: true\nstages:\n"
        "  - {stage: ingest, input: pacs}\n  - {stage: align}\n"
    )
    return path


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_run_dir_in_any_stage_is_exit_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """align (which has no check of its own) meets a full disk writing records.parquet."""
    import medmm.align.pipeline

    wf, run = _workflow(tmp_path), tmp_path / "run"

    def full(frame: Any, path: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(code, __import__("os").strerror(code), str(path))

    monkeypatch.setattr(medmm.align.pipeline, "write_table", full)
    res = CliRunner().invoke(app, ["run", str(wf)])
    assert res.exit_code == 2, res.output
    assert f"error: {run}: {__import__('os').strerror(code)} while stage 'align'" in res.output
    assert "Fix: free space" in res.output and "Traceback" not in res.output
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("medmm run nightly: FAILED exit=2 | ingest: 0 files")
    assert "stopped in stage align" in last
    status = json.loads((run / "run.json").read_text())["stages"]["workflow"]
    assert status["status"] == "failed" and status["stopped_in"] == "align"


def test_a_bug_in_a_stage_is_exit_3_not_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medmm.align.pipeline

    def bug(*args: Any, **kwargs: Any) -> None:
        raise TypeError("unsupported operand")

    monkeypatch.setattr(medmm.align.pipeline, "align_run", bug)
    res = CliRunner().invoke(app, ["run", str(_workflow(tmp_path))])
    assert res.exit_code == 3, res.output
    assert "unexpected TypeError in stage 'align' (a bug in medmm" in res.output
    assert res.stdout.strip().splitlines()[-1].startswith("medmm run nightly: FAILED exit=3 | ingest:")
    status = json.loads((tmp_path / "run" / "run.json").read_text())["stages"]["workflow"]
    assert (status["status"], status["exit_code"], status["stopped_in"]) == ("failed", 3, "align")


def test_a_run_dir_inside_the_export_is_refused_before_writing_there(tmp_path: Path) -> None:
    """run_dir set inside the export by mistake: refused before the lock file and run.json are made there
    (the corrected workflow would otherwise ingest them as export files the next night)."""
    wf = _workflow(tmp_path)
    wf.write_text(wf.read_text().replace("run_dir: run", "run_dir: pacs/run"))
    res = CliRunner().invoke(app, ["run", str(wf)])
    assert res.exit_code == 2, res.output
    assert "the run directory is inside the input of stage 'ingest'" in res.output
    assert list((tmp_path / "pacs").iterdir()) == []


def test_an_invalid_workflow_file_still_ends_with_the_summary_line(tmp_path: Path) -> None:
    wf = tmp_path / "nightly.yaml"
    wf.write_text("name: x\nrun_dir: r\nstages: []\n")
    res = CliRunner().invoke(app, ["run", str(wf)])
    assert res.exit_code == 2 and "invalid workflow" in res.output
    assert res.stdout.strip().splitlines()[-1] == "medmm run nightly: FAILED exit=2 | results: -"


def test_an_unmounted_or_unreadable_export_keeps_the_earlier_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export share is not mounted tonight (an empty mount point) or not readable by the cron user:
    exit 2 naming the folder, and last night's manifest and volumes stay (they were all dropped as
    deleted, and re-made from scratch the night after)."""
    import os

    import pandas as pd
    import pydicom.data

    from medmm.ingest.sample import replicate_series

    wf, run, pacs = _workflow(tmp_path), tmp_path / "run", tmp_path / "pacs"
    ct = Path(str(pydicom.data.get_testdata_file("CT_small.dcm", download=False)))
    replicate_series([ct], pacs, 3, seed=9)
    assert CliRunner().invoke(app, ["run", str(wf)]).exit_code == 0
    manifest = pd.read_parquet(run / "manifest.parquet")
    volumes = sorted((run / "volumes").iterdir())
    assert len(manifest) == 3 and len(volumes) == 2  # one volume and its sidecar

    (pacs / "series_0000").rename(tmp_path / "away")  # the share's mount point, empty
    empty = CliRunner().invoke(app, ["run", str(wf)])
    assert empty.exit_code == 2, empty.output
    assert f"{pacs}: the archive folder is empty, but the run directory" in empty.output
    (tmp_path / "away").rename(pacs / "series_0000")

    real = os.scandir

    def denied(path: Any = ".") -> Any:
        if isinstance(path, (str, Path)) and Path(path) == pacs:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", denied)
    unreadable = CliRunner().invoke(app, ["run", str(wf)])
    monkeypatch.setattr(os, "scandir", real)
    assert unreadable.exit_code == 2, unreadable.output
    assert f"{pacs}: the archive folder cannot be listed (Permission denied)" in unreadable.output

    pd.testing.assert_frame_equal(pd.read_parquet(run / "manifest.parquet"), manifest)
    assert sorted((run / "volumes").iterdir()) == volumes
    again = CliRunner().invoke(app, ["run", str(wf)])
    assert again.exit_code == 0 and "ingest: 3 files (0 processed now)" in again.stdout


def test_a_folder_that_cannot_be_listed_does_not_make_every_file_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sub-folder of the export cannot be listed (a quarantined row without size and mtime): the
    manifest then stores size and mtime as doubles, and each night redid every file of the archive (its
    mtimes came back rounded). Now the next night skips the unchanged files."""
    import os

    import pydicom.data

    from medmm.ingest.sample import replicate_series

    wf, pacs = _workflow(tmp_path), tmp_path / "pacs"
    ct = Path(str(pydicom.data.get_testdata_file("CT_small.dcm", download=False)))
    replicate_series([ct], pacs, 3, seed=11)
    (pacs / "locked").mkdir()
    real = os.scandir

    def denied(path: Any = ".") -> Any:
        if isinstance(path, (str, Path)) and Path(path) == pacs / "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", denied)
    first = CliRunner().invoke(app, ["run", str(wf), "--no-strict"])
    assert "ingest: 4 files (4 processed now), 1 quarantined (1 new)" in first.stdout, first.output
    second = CliRunner().invoke(app, ["run", str(wf), "--no-strict"])
    # the folder's row is looked at again each night; the three slices are skipped as done
    assert "ingest: 4 files (1 processed now), 1 quarantined (0 new)" in second.stdout, second.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["stages"]["ingest"]["n_skipped"] == 3


def test_a_full_disk_at_the_start_of_the_run_is_exit_2_not_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk filled up last night: writing run.json's `running` status, before any stage, fails
    (was an unexpected OSError, exit 3 and a traceback asking to report a bug in medmm)."""
    import os

    import medmm.runinfo

    wf, run = _workflow(tmp_path), tmp_path / "run"

    def full(run_dir: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(run_dir) / ".run.json.abcd1234.tmp"))

    monkeypatch.setattr(medmm.runinfo, "update_run_json", full)
    res = CliRunner().invoke(app, ["run", str(wf)])
    assert res.exit_code == 2, res.output
    assert f"error: {run}: {os.strerror(errno.ENOSPC)}" in res.output
    assert "Fix: free space" in res.output and "Traceback" not in res.output
    assert res.stdout.strip().splitlines()[-1].startswith("medmm run nightly: FAILED exit=2")


def test_a_filesystem_without_flock_runs_unlocked_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """NFSv3 without lockd (ENOLCK): the run goes on without the lock, as docs/nightly.md says (was an
    unexpected OSError: exit 3, "a bug in medmm", every night)."""
    import fcntl
    import os

    from medmm.workflows.lock import LOCK_NAME

    real = fcntl.flock

    def no_locks(fh: Any, op: int) -> None:
        if not str(getattr(fh, "name", "")).endswith(LOCK_NAME):  # ingest's own journal lock: as it is
            return real(fh, op)
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    res = CliRunner().invoke(app, ["run", str(_workflow(tmp_path))])
    assert res.exit_code == 0, res.output
    assert "cannot be locked" in caplog.text
    status = json.loads((tmp_path / "run" / "run.json").read_text())["stages"]["workflow"]
    assert status["status"] == "ok"


def test_ingest_on_a_filesystem_without_flock_runs_unlocked_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ingest's own journal lock on NFSv3 without lockd (ENOLCK): the whole workflow runs unlocked with
    warnings (ingest raised the OSError: exit 3, 'a bug in medmm', every night)."""
    import fcntl
    import os

    def no_locks(fh: Any, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    res = CliRunner().invoke(app, ["run", str(_workflow(tmp_path))])
    assert res.exit_code == 0, res.output
    assert "a second `medmm ingest` into it would not be refused" in caplog.text
    status = json.loads((tmp_path / "run" / "run.json").read_text())["stages"]["workflow"]
    assert status["status"] == "ok"
