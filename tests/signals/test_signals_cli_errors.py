"""`medmm signals ingest` user mistakes: one error line and exit 2 (no traceback, no batch of
identically quarantined records)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    root = tmp_path / "ecg"
    root.mkdir()
    (root / "v.csv").write_text("time,HR [bpm]\n0,70\n1,71\n")
    (tmp_path / "k").write_text("ab" * 32 + "\n")
    return root


def _invoke(root: Path, *extra: str) -> tuple[int, str, BaseException | None]:
    base = ["signals", "ingest", str(root), "--workers", "0", "--key-file", str(root.parent / "k")]
    res = CliRunner().invoke(app, [*base, *extra])
    return res.exit_code, " ".join(res.output.split()), res.exception


def test_invalid_anchor_regex(inputs: Path) -> None:
    code, out, exc = _invoke(inputs, "--out", str(inputs.parent / "run"), "--anchor-events", "(")
    assert code == 2 and isinstance(exc, SystemExit)
    assert "'(' is not a valid regular expression" in out
    assert not (inputs.parent / "run" / "manifest_signals.parquet").exists()


def test_anchor_table_without_label(inputs: Path) -> None:
    anchors = inputs.parent / "anchors.csv"
    anchors.write_text("foo\n1\n")
    code, out, exc = _invoke(inputs, "--out", str(inputs.parent / "run"), "--anchors", str(anchors))
    assert code == 2 and isinstance(exc, SystemExit)
    assert "anchors.csv: anchor table needs a 'label' column" in out


def test_run_dir_inside_input(inputs: Path) -> None:
    code, out, exc = _invoke(inputs, "--out", str(inputs / "run"))
    assert code == 2 and isinstance(exc, SystemExit)
    assert "inside the signals input" in out
