"""`medmm share` and `medmm train` refuse to read a run directory while a `medmm run` rewrites it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.workflows.lock import LOCK_NAME, refuse_while_running, run_in_progress, workflow_lock

HOLD = (
    "import sys; from pathlib import Path; from medmm.workflows.lock import workflow_lock\n"
    "with workflow_lock(Path(sys.argv[1])):\n"
    "    print('locked', flush=True); sys.stdin.read()\n"
)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A run directory held by another process, as a `medmm run` holds it; its pid."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield run, proc.pid
    finally:
        proc.communicate(timeout=30)  # closing stdin ends the holder, which releases the lock


def test_no_run_nothing_created(tmp_path: Path) -> None:
    assert run_in_progress(tmp_path) is None
    refuse_while_running(tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()  # a read never creates a file in the run directory
    with workflow_lock(tmp_path):
        pass
    assert run_in_progress(tmp_path) is None  # a finished run leaves its lock file, unheld


def test_a_run_in_another_process_is_named(running: tuple[Path, int]) -> None:
    run, pid = running
    holder = run_in_progress(run)
    assert holder is not None and holder.startswith(f"process {pid} on ")
    with pytest.raises(ConfigError, match=rf"{run}: a `medmm run` \(process {pid} .*Fix: wait for it"):
        refuse_while_running(run)


def test_share_refuses_while_a_run_rewrites(running: tuple[Path, int], tmp_path: Path) -> None:
    run, pid = running
    out = tmp_path / "shared"
    result = CliRunner().invoke(app, ["share", str(run), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"a `medmm run` (process {pid} " in result.output
    assert "is rewriting this run directory" in result.output and "docs/nightly.md" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_train_refuses_while_a_run_rewrites(tmp_path: Path) -> None:
    run, out = tmp_path / "run", tmp_path / "model"
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "run_dir": str(run),
                "out_dir": str(out),
                "modalities": {"report": {}},
                "tasks": [{"name": "dx", "labels": ["abnormal"]}],
            }
        )
    )
    with workflow_lock(run):
        result = CliRunner().invoke(app, ["train", str(cfg), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert (
        "is rewriting this run directory" in result.output and "Fix: wait for it to finish" in result.output
    )
    assert not out.exists()  # refused before anything is written


def test_share_check_on_a_platform_without_fcntl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run directory copied to a machine without fcntl (Windows) can still be shared: no run can hold
    it there (was ModuleNotFoundError from `medmm share`, which needed no fcntl before the check)."""
    (tmp_path / LOCK_NAME).write_text('{"pid": 1}')  # copied along with the run directory
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` raises ImportError
    assert run_in_progress(tmp_path) is None
    refuse_while_running(tmp_path)
