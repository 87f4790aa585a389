"""`medmm align` on a mistyped or empty run directory, or with a nonsense --window, says so (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.align.join import parse_duration
from medmm.align.pipeline import align_run
from medmm.cli import app
from medmm.errors import ConfigError


def test_missing_run_dir_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["align", str(tmp_path / "runs" / "r1-typo")])
    assert res.exit_code == 2
    assert "no such run directory" in res.output
    assert not (tmp_path / "runs").exists()


def test_run_dir_without_stage_tables_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no stage tables"):
        align_run(tmp_path)
    assert not (tmp_path / "records.parquet").exists()


@pytest.mark.parametrize("text", ["-2h", "nan", "inf", "h", "2 days"])
def test_bad_window_is_rejected(text: str) -> None:
    with pytest.raises(ConfigError, match="bad time tolerance"):
        parse_duration(text)
