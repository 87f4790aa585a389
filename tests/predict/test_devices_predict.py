"""`medmm predict --device` and the `device` option of the predict stage of `medmm run`: the same device
names and the same refusal of a GPU that is not there (CUDA's absence forced, so it holds on GPU machines
too); on the CPU the scores are those of the default."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.models.config import TrainConfig
from medmm.models.runner import train_from_config
from medmm.predict.predict import predict_run

_spec = importlib.util.spec_from_file_location(
    "models_tiny_run", Path(__file__).resolve().parents[1] / "models" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)
make_tiny_run, tiny_config = _tiny.make_tiny_run, _tiny.tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pdev")
    run = make_tiny_run(root / "run", n=16)
    train_from_config(TrainConfig.model_validate(tiny_config(run, root / "m", epochs=1, n_boot=0)))
    return run, root / "m" / "model.pt"


def test_cpu_device_gives_the_default_scores(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, model = trained
    predict_run(model, run, out=tmp_path / "default.parquet")
    counts = predict_run(model, run, out=tmp_path / "cpu.parquet", device=" CPU ")
    assert counts["records"] == 16
    if not torch.cuda.is_available():  # default auto = cpu here
        a, b = pd.read_parquet(tmp_path / "default.parquet"), pd.read_parquet(tmp_path / "cpu.parquet")
        pd.testing.assert_frame_equal(a, b)
    info = json.loads((run / "run.json").read_text())
    assert info["stages"]["predict"]["options"]["device"] == "cpu"


def test_missing_gpu_in_python_and_in_a_workflow(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, model = trained
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^device 'cuda:0': CUDA is not available") as info:
        predict_run(model, run, out=tmp_path / "p.parquet", device="cuda:0")
    assert "Fix: set device: auto or cpu" in str(info.value)
    assert not (tmp_path / "p.parquet").exists()

    flow = tmp_path / "flow.yaml"
    stage = {
        "stage": "predict",
        "options": {"model": str(model), "device": "cuda", "out": str(tmp_path / "w.parquet")},
    }
    flow.write_text(yaml.safe_dump({"name": "gpu", "run_dir": str(run), "stages": [stage]}))
    res = CliRunner().invoke(app, ["run", str(flow)])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)
    assert "device 'cuda': CUDA is not available on this machine" in res.output
    assert "Fix: set device: auto or cpu" in res.output
    assert not (tmp_path / "w.parquet").exists()
