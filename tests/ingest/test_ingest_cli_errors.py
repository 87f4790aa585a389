"""`medmm ingest` user mistakes: an error line and exit 2, no traceback, nothing ingested twice."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.ingest.pipeline import ingest_archive
from medmm.signals.pipeline import run_signals


def _archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    root.mkdir()
    (root / "notes.txt").write_text("not an image\n")
    return root


def test_run_dir_inside_archive_is_refused(tmp_path: Path) -> None:
    root = _archive(tmp_path)
    with pytest.raises(ConfigError, match="inside the archive"):
        ingest_archive(root, root / "run", workers=1, processes=False, key_file=tmp_path / "k")
    assert not (root / "run").exists()
    with pytest.raises(ConfigError, match="inside the signals input"):
        run_signals(root, root / "run", workers=0, key_file=tmp_path / "k")


@pytest.mark.parametrize("name", ["missing", "archive/notes.txt"])
def test_archive_not_a_folder_says_the_fix(tmp_path: Path, name: str) -> None:
    _archive(tmp_path)
    with pytest.raises(ConfigError, match=r"must be an existing folder .*Fix: give the folder"):
        ingest_archive(tmp_path / name, tmp_path / "run", workers=1, processes=False, key_file=tmp_path / "k")
    assert not (tmp_path / "run").exists()


def test_out_is_a_file(tmp_path: Path) -> None:
    root = _archive(tmp_path)
    res = CliRunner().invoke(app, ["ingest", str(root), "--out", str(root / "notes.txt")])
    text = "".join(res.output.replace("│", "").split())  # rich wraps the message in a box, anywhere
    assert res.exit_code == 2 and "notes.txtisafile" in text


def test_second_run_into_a_locked_run_dir(tmp_path: Path) -> None:
    root, run = _archive(tmp_path), tmp_path / "run"
    run.mkdir()
    with (run / ".ingest.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        res = CliRunner().invoke(
            app, ["ingest", str(root), "--out", str(run), "--key-file", str(tmp_path / "k"), "--workers", "1"]
        )
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)
    assert "another `medmm ingest` is writing" in res.output
