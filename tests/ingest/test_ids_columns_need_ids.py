"""`medmm ingest` refuses ids-table column options given without `--ids` (they would be silently ignored,
and the user expects their ids on the pictures): exit 2, each such option named, nothing written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medmm.cli import app


def test_column_options_without_an_ids_table_are_refused(tmp_path: Path) -> None:
    archive, out = tmp_path / "archive", tmp_path / "run"
    archive.mkdir()
    args = ["ingest", str(archive), "--out", str(out), "--time-column", "exam", "--accession-column", "acc"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    assert "error: --time-column, --accession-column name columns of an ids table" in res.output
    assert "Fix: add --ids TABLE.csv" in res.output and not out.exists()


def test_default_column_names_without_an_ids_table_are_not_refused(tmp_path: Path) -> None:
    from medmm.ingest.image_ids import IdColumns

    archive = tmp_path / "archive"
    archive.mkdir()
    defaults = IdColumns()
    args = ["ingest", str(archive), "--out", str(tmp_path / "run"), "--path-column", defaults.path]
    res = CliRunner().invoke(app, [*args, "--accession-column", defaults.accession, "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "name columns of an ids table" not in res.output
    assert (tmp_path / "run" / "manifest.parquet").exists()
