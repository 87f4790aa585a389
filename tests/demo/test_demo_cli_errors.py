"""``medmm demo`` prints a refused run directory as an error line with exit 2, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medmm.cli import app


def test_demo_other_site_key_is_an_error_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    # a run directory whose earlier stages used another site key (its check value differs)
    (run / "run.json").write_text(json.dumps({"key_check": "0" * 16, "stages": {}}))
    key = tmp_path / "k2.key"
    result = CliRunner().invoke(app, ["demo", "--out", str(run), "--key-file", str(key), "--workers", "1"])
    assert result.exit_code == 2, result.output
    assert "different site key" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
