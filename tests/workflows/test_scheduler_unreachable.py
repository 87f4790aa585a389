"""An unreachable ``--scheduler`` is a ConfigError naming the address (not an OSError traceback)."""

from __future__ import annotations

from pathlib import Path

import dask
import distributed  # noqa: F401  (its config defaults exist before dask.config.set below)
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.workflows.cluster import dask_client

NOBODY = "tcp://127.0.0.1:1"  # port 1: nothing listens there


def test_dask_client_unreachable_scheduler_is_config_error() -> None:
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(ConfigError, match=r"tcp://127\.0\.0\.1:1.*Fix: check the address"),
        dask_client(scheduler=NOBODY),
    ):
        pass


def test_ingest_cli_unreachable_scheduler_exit_2(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "note.txt").write_text("not an image\n")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = CliRunner().invoke(
            app, ["ingest", str(archive), "--out", str(tmp_path / "run"), "--scheduler", NOBODY]
        )
    assert result.exit_code == 2, result.output
    assert "cannot connect to the Dask scheduler" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
