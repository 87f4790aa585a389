"""One device concept: every command accepts the same device names and refuses a GPU that is not there
the same way (`error: SOURCE 'cuda': CUDA is not available ... Fix: ...`, exit 2, no traceback).

Before medmm.devices, `train.device: cuda` on a CPU-only machine trained on the CPU with only a log
warning, while `medmm anomaly --device cuda` failed; evaluate, predict and compare had no device at all.
CUDA's absence is forced with monkeypatch so that these tests also check the refusal on GPU machines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_tiny_run, tiny_config
from typer.testing import CliRunner

from medmm.cli import app
from medmm.devices import resolve_device
from medmm.errors import ConfigError
from medmm.models.config import TrainConfig
from medmm.models.runner import evaluate_checkpoint, train_from_config
from medmm.predict.predict import predict_run


@pytest.fixture()
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("name", [None, "", "auto", " AUTO "])
def test_auto_is_the_gpu_when_there_is_one(name: str | None) -> None:
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(name, source="--device").type == want


@pytest.mark.parametrize("name", ["cpu", "CPU", " cpu ", torch.device("cpu")])
def test_cpu(name: str | torch.device) -> None:
    assert resolve_device(name, source="--device") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:", "mps", "cuda:0:1"])
def test_unknown_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"--device '.*': not a device; choose cpu or cuda"):
        resolve_device(name, source="--device")


@pytest.mark.usefixtures("no_cuda")
@pytest.mark.parametrize(
    ("source", "fix"),
    [
        ("--device", "Fix: use --device auto or --device cpu"),
        ("cfg.yaml: train.device", "Fix: set train.device: auto or cpu"),
        ("device", "Fix: set device: auto or cpu"),
    ],
)
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_cuda_names_source_and_fix(name: str, source: str, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device(name, source=source)
    assert str(info.value).startswith(f"{source} {name!r}: CUDA is not available on this machine")
    assert fix in str(info.value)
    assert resolve_device("auto", source=source).type == "cpu"


def test_gpu_index_beyond_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    # only the index check runs here (no CUDA call is made before it refuses)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(
        ConfigError, match=r"--device 'cuda:2': this machine has 2 CUDA device\(s\) \(cuda:0 to"
    ):
        resolve_device("cuda:2", source="--device")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dev")
    run = make_tiny_run(root / "run", n=16)
    train_from_config(TrainConfig.model_validate(tiny_config(run, root / "m", epochs=1, n_boot=0)))
    return run, root / "m" / "model.pt"


@pytest.mark.usefixtures("no_cuda")
def test_train_device_cuda_in_the_config_is_an_error_not_a_silent_cpu_run(tmp_path: Path) -> None:
    """The regression: this used to train on the CPU with only a logged warning, exit 0."""
    run = make_tiny_run(tmp_path / "run", n=16)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(run, tmp_path / "m", epochs=1, n_boot=0, device="cuda")))
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)  # no traceback
    assert f"error: {path}: train.device 'cuda': CUDA is not available on this machine" in res.output
    assert "Fix: set train.device: auto or cpu" in res.output
    assert not (tmp_path / "m").exists()  # refused before anything was read or written
    with pytest.raises(ConfigError, match=r"train\.device 'cuda': CUDA is not available"):
        train_from_config(TrainConfig.model_validate(tiny_config(run, tmp_path / "m", device="cuda")))
    assert not (tmp_path / "m").exists()


@pytest.mark.usefixtures("no_cuda")
def test_every_command_refuses_a_missing_gpu_the_same_way(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, model = trained
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(tiny_config(run, tmp_path / "m", epochs=1, n_boot=0)))
    out = str(tmp_path / "out")
    commands = {
        "train": ["train", str(config)],
        "evaluate": ["evaluate", "--model", str(model), str(run), "--out", out],
        "predict": ["predict", "--model", str(model), str(run), "--out", str(tmp_path / "p.parquet")],
        "compare": ["models", "compare", str(run), "--out", out, "--epochs", "1"],
        "anomaly train": ["anomaly", "train", str(run), "--out", out],
        "anomaly evaluate": ["anomaly", "evaluate", str(run), "--out", out],
    }
    for name, argv in commands.items():
        res = CliRunner().invoke(app, [*argv, "--device", "cuda"])
        assert res.exit_code == 2, (name, res.output)
        assert isinstance(res.exception, SystemExit), name
        assert "error: --device 'cuda': CUDA is not available on this machine" in res.output, name
        assert "Fix: use --device auto or --device cpu" in res.output, name
    assert not (tmp_path / "m").exists() and not (tmp_path / "out").exists()
    assert not (tmp_path / "p.parquet").exists()


def test_device_option_cpu_runs_and_is_recorded(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, model = trained
    res = CliRunner().invoke(
        app,
        ["predict", "--model", str(model), str(run), "--out", str(tmp_path / "p.parquet"), "--device", "cpu"],
    )
    assert res.exit_code == 0, res.output
    result = evaluate_checkpoint(model, run, tmp_path / "ev", split="all", device="cpu")
    assert result["device"] == "cpu"
    with pytest.raises(ConfigError, match="device 'tpu': not a device"):
        predict_run(model, run, out=tmp_path / "q.parquet", device="tpu")
    assert not (tmp_path / "q.parquet").exists()
