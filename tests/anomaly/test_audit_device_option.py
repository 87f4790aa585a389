"""`medmm anomaly --device` with a wrong name or CUDA on a CPU-only machine is an error, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medmm.anomaly.score import pick_device
from medmm.cli import app
from medmm.errors import ConfigError


def test_unknown_device_name() -> None:
    with pytest.raises(ConfigError, match="choose cpu or cuda"):
        pick_device("gpu")


def test_cuda_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available on this machine"):
        pick_device("cuda")
    assert pick_device(None).type == "cpu"


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_cli_exits_2_before_reading_the_run(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = CliRunner().invoke(
        app, ["anomaly", command, str(tmp_path), "--out", str(tmp_path / "o"), "--device", "cuda"]
    )
    assert res.exit_code == 2, res.output
    assert "error: --device 'cuda': CUDA is not available" in res.output
