"""`medmm reports parse --strict` fails on quarantined reports; a run directory inside the reports folder
is refused (its files would be listed as reports on the next run)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medmm.cli import app


def _parse(tmp_path: Path, source: Path, out: Path, *extra: str) -> tuple[int, str]:
    (tmp_path / "k").write_text("cd" * 32 + "\n")
    args = [
        "reports",
        "parse",
        str(source),
        "--out",
        str(out),
        "--workers",
        "0",
        "--key-file",
        str(tmp_path / "k"),
    ]
    res = CliRunner().invoke(app, [*args, *extra])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, " ".join(res.output.split())


def test_strict_exit_code(tmp_path: Path) -> None:
    table = tmp_path / "r.csv"
    table.write_text("uid,text\n1,No pleural effusion.\n2,\n")
    code, out = _parse(tmp_path, table, tmp_path / "run")
    assert code == 0 and "quarantined=1" in out
    code, out = _parse(tmp_path, table, tmp_path / "run", "--strict")
    assert code == 1 and "--strict: 1 reports quarantined" in out


def test_run_dir_inside_reports_folder(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "a.txt").write_text("No effusion.")
    code, out = _parse(tmp_path, folder, folder / "run")
    assert code == 2 and "inside the reports folder" in out
    assert not (folder / "run").exists()


def test_negative_workers_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "r.csv"
    table.write_text("uid,text\n1,No pleural effusion.\n")
    code, out = _parse(tmp_path, table, tmp_path / "run", "--workers", "-1")  # hung: a cluster of -1 workers
    assert code == 2 and "--workers" in out and not (tmp_path / "run").exists()


def test_run_dir_inside_reports_folder_api(tmp_path: Path) -> None:
    """The Python API refuses it too (not only the CLI and workflows)."""
    import pytest

    from medmm.errors import ConfigError
    from medmm.reports.pipeline import parse_reports

    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "a.txt").write_text("No effusion.")
    with pytest.raises(ConfigError, match="inside the reports folder"):
        parse_reports(folder, folder / "run", workers=0)
    assert not (folder / "run").exists()
