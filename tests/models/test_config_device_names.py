"""`train.device` in a training config takes every name `--device` takes (`cuda:N` included), checked
when the config is read; whether the GPU exists is checked when training starts, naming the key.

Before, `train.device` was `Literal["auto", "cpu", "cuda"]`: `cuda:1` worked only through `--device`,
and a wrong name got pydantic's "Input should be 'auto', 'cpu' or 'cuda'" without a suggestion.
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
from medmm.models.config import TrainConfig, load_config

BASE = {
    "run_dir": "runs/x",
    "modalities": {"report": {}},
    "tasks": [{"name": "dx", "labels": ["abnormal"]}],
}


def _write(tmp_path: Path, device: object) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({**BASE, "train": {"device": device}}))
    return path


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("auto", "auto"),
        ("cpu", "cpu"),
        ("cuda", "cuda"),
        ("cuda:0", "cuda:0"),
        ("cuda:1", "cuda:1"),
        ("cuda:12", "cuda:12"),
        (" CUDA:1 ", "cuda:1"),
        ("CPU", "cpu"),
        ("", "auto"),
    ],
)
def test_every_device_name_is_accepted_and_normalised(tmp_path: Path, given: str, stored: str) -> None:
    assert load_config(_write(tmp_path, given)).train.device == stored
    assert TrainConfig.model_validate(BASE).train.device == "auto"


@pytest.mark.parametrize(
    ("given", "suggestion"),
    [
        ("gpu", "'cuda'"),
        ("GPU:1", "'cuda:1'"),
        ("gpu0", "'cuda:0'"),
        ("cuda1", "'cuda:1'"),
        ("cuda 2", "'cuda:2'"),
        ("cuda:01", "'cuda:1'"),
        ("cuda:", "'cuda'"),
        ("cpu:0", "'cpu'"),
        ("atuo", "'auto'"),
        ("nvidia", "'cuda'"),
    ],
)
def test_a_wrong_name_is_a_config_error_with_a_suggestion(
    tmp_path: Path, given: str, suggestion: str
) -> None:
    path = _write(tmp_path, given)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}: invalid training config")
    assert f"train.device: Value error, {given!r} is not a device (did you mean {suggestion}?)" in text
    assert "use auto (the GPU when there is one, else the CPU), cpu, cuda or cuda:N (GPU N)" in text


@pytest.mark.parametrize("given", ["mps", "meta", "xla"])
def test_a_name_with_nothing_close_gets_no_suggestion(tmp_path: Path, given: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"train\.device: Value error, '{given}' is not a device; use auto"
    ):
        load_config(_write(tmp_path, given))


def test_medmm_train_refuses_a_wrong_name_before_reading_anything(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "missing-run", tmp_path / "m", device="gpu")))
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)  # no traceback
    assert f"error: {path}: invalid training config" in res.output
    assert "train.device: Value error, 'gpu' is not a device (did you mean 'cuda'?)" in res.output
    assert not (tmp_path / "m").exists()


NAMES = ["auto", "AUTO", "cpu", " Cpu ", "cuda", "cuda:0", "cuda:3", "CUDA:7", "gpu", "cuda:", "cuda:x",
         "cuda:-1", "cuda:0:1", "cpu:0", "mps", "tpu", "cuda0", "gpu:0", "meta"]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_the_config_accepts_exactly_the_names_resolve_device_accepts(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a machine with 8 GPUs (faked: no CUDA call is made), so that only the name decides
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    try:
        resolved: torch.device | None = resolve_device(name, source="train.device")
    except ConfigError:
        resolved = None
    try:
        stored: str | None = TrainConfig.model_validate({**BASE, "train": {"device": name}}).train.device
    except Exception:  # pydantic's ValidationError
        stored = None
    assert (stored is None) == (resolved is None), (name, stored, resolved)
    if stored is not None and stored != "auto":
        assert torch.device(stored) == resolved


@pytest.mark.parametrize("name", ["cuda:1", "CUDA:0"])
def test_a_missing_gpu_in_the_config_is_refused_at_train_time_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = make_tiny_run(tmp_path / "run", n=16)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(run, tmp_path / "m", epochs=1, n_boot=0, device=name)))
    cfg = load_config(path)  # the name is fine; the machine decides later
    assert cfg.train.device == name.lower()
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)
    assert (
        f"error: {path}: train.device '{name.lower()}': CUDA is not available on this machine" in res.output
    )
    assert "Fix: set train.device: auto or cpu" in res.output
    assert not (tmp_path / "m").exists()
    # --device overrides the config's GPU
    res = CliRunner().invoke(app, ["train", str(path), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m" / "model.pt").exists()
