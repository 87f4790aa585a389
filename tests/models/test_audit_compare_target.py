"""`medmm models compare --target` with a label the records lack fails fast (audit)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medmm.cli import app


def test_compare_unknown_target_is_an_error_before_training(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    res = CliRunner().invoke(
        app, ["models", "compare", str(tiny_run), "--target", "pneumonia", "--epochs", "1", "--out", str(out)]
    )
    assert res.exit_code == 2, res.output
    assert "error: label(s) ['pneumonia'] of --target are in none of the 48 records" in res.output
    assert "Fix: pass another --target" in res.output
    assert not (out / "compare.csv").exists()
