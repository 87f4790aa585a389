"""`medmm anomaly score --device cuda` on a machine without CUDA fails (exit 2) before reading the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import medmm.anomaly.stage as stage
from medmm.cli import app
from medmm.errors import InputError


def test_score_checks_the_device_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reads: list[Any] = []

    def counted_score_run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        reads.append(args)
        raise AssertionError("the run was read before the device was checked")

    monkeypatch.setattr(stage, "score_run", counted_score_run)
    run, model = tmp_path / "sig", tmp_path / "model"
    run.mkdir()
    model.mkdir()
    args = ["anomaly", "score", str(run), "--model", str(model), "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(app, [*args, "--device", "cuda"])
    assert res.exit_code == 2, res.output
    assert "error: --device 'cuda': CUDA is not available" in res.output
    assert reads == []


@pytest.mark.parametrize("command", ["train", "score", "evaluate"])
def test_device_help_names_every_accepted_value(command: str) -> None:
    res = CliRunner().invoke(app, ["anomaly", command, "--help"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert "auto, cpu, cuda or cuda:N (default auto: cuda when available)" in " ".join(res.output.split())


def test_ensemble_default_is_the_one_in_train(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import medmm.anomaly.train as train

    seen: dict[str, Any] = {}

    def fake_train_on_run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs)
        raise InputError(str(args[0]), "stopped by the test", "none")

    monkeypatch.setattr(train, "DEFAULT_ENSEMBLE", 3)
    monkeypatch.setattr(stage, "train_on_run", fake_train_on_run)
    res = CliRunner().invoke(
        app, ["anomaly", "train", str(tmp_path), "--out", str(tmp_path / "m"), "--device", "cpu"]
    )
    assert res.exit_code == 2, res.output
    assert seen["ensemble"] == 3
