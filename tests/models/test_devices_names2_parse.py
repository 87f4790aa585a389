"""Device names are parsed in one place (`medmm.devices.parse_device_name`), used by `resolve_device`
and by the training config's `train.device`.

Before, `resolve_device` had its own check (`index.isdigit()`) and handed the rest to `torch.device`: on
a CUDA machine `cuda:01` or `cuda:²` passed it and ended in a torch `RuntimeError` / `ValueError`
traceback instead of a ConfigError, while the config (with its own copy of the rules) refused `cuda:01`
with a suggestion. The GPU machine is faked (no CUDA call is made before a name is refused), so these
tests run on the CPU.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from medmm.cli import app
from medmm.devices import DeviceNameError, parse_device_name, resolve_device
from medmm.errors import ConfigError
from medmm.models.config import TrainConfig, load_config

BASE = {"run_dir": "runs/x", "modalities": {"report": {}}, "tasks": [{"name": "dx", "labels": ["a"]}]}


@pytest.fixture()
def eight_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)


@pytest.mark.usefixtures("eight_gpus")
@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("cuda:01", "Fix: use --device cuda:1"),
        ("cuda:007", "Fix: use --device cuda:7"),
        ("CUDA : 1", "Fix: use --device cuda:1"),
        ("cuda: 1", "Fix: use --device cuda:1"),
        ("cuda:", "Fix: use --device cuda"),
        ("gpu", "Fix: use --device cuda"),
        ("1", "Fix: use --device cuda:1"),
        ("cuda:-1", "GPU numbers start at 0"),
        ("-1", "GPU numbers start at 0"),
        ("cuda:\u00b2", "Fix: use --device cuda"),  # superscript two: str.isdigit() but not int()
        ("cuda:\u0661", "Fix: use --device cuda"),  # Arabic-Indic one: torch.device refuses it
    ],
)
def test_resolve_device_refuses_every_malformed_gpu_name_with_a_config_error(name: str, fix: str) -> None:
    with pytest.raises(ConfigError) as info:  # was a torch RuntimeError / ValueError for some
        resolve_device(name, source="--device")
    text = str(info.value)
    assert text.startswith(f"--device {name!r}: not a device; choose cpu or cuda"), text
    assert fix in text


@pytest.mark.usefixtures("eight_gpus")
@pytest.mark.parametrize(("name", "want"), [(" CUDA:1 ", "cuda:1"), ("cuda:0", "cuda:0"), ("Cuda", "cuda")])
def test_valid_gpu_names_resolve(name: str, want: str) -> None:
    assert resolve_device(name, source="--device") == torch.device(want)


def test_a_config_key_gets_the_fix_in_its_own_form() -> None:
    with pytest.raises(
        ConfigError, match=r"train\.device 'cuda:01': not a device; .*Fix: set train\.device: cuda:1"
    ):
        resolve_device("cuda:01", source="cfg.yaml: train.device")


@pytest.mark.usefixtures("eight_gpus")
@pytest.mark.parametrize(
    "name",
    ["cuda:01", "cuda:-1", "cuda:", "CUDA : 1", "cuda 1", "cuda:\u00b2", "1", "-1", "gpu:2", "cpu:0",
     "cuda:1.0", "auto", "CPU", " cuda:3 ", "", "atuo", "mps", "cuda:0:1"],
)  # fmt: skip
def test_config_and_resolve_device_give_the_same_verdict_and_suggestion(name: str) -> None:
    try:
        stored: str | None = TrainConfig.model_validate({**BASE, "train": {"device": name}}).train.device
        config_error = ""
    except Exception as exc:  # pydantic's ValidationError
        stored, config_error = None, str(exc)
    try:
        resolved: torch.device | None = resolve_device(name, source="--device")
        device_error = ""
    except ConfigError as exc:
        resolved, device_error = None, str(exc)
    assert (stored is None) == (resolved is None), (name, stored, resolved)
    if stored is None:
        with pytest.raises(DeviceNameError) as info:
            parse_device_name(name)
        parsed = info.value
        assert str(parsed) in config_error  # the config shows the parser's message ...
        if parsed.suggestion:  # ... and resolve_device offers the same name as the fix
            assert f"did you mean {parsed.suggestion!r}?" in config_error
            assert device_error.endswith(f"Fix: use --device {parsed.suggestion}")
    elif stored != "auto":
        assert torch.device(stored) == resolved


@pytest.mark.parametrize(("value", "stored"), [(None, "auto"), ("", "auto")])
def test_an_empty_yaml_device_is_auto(value: object, stored: str) -> None:
    assert TrainConfig.model_validate({**BASE, "train": {"device": value}}).train.device == stored


def test_a_number_in_the_yaml_gets_the_gpu_name(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({**BASE, "train": {"device": 0}}))  # was "Input should be a valid string"
    with pytest.raises(
        ConfigError, match=r"train\.device: Value error, '0' is not a device \(did you mean 'cuda:0'\?\)"
    ):
        load_config(path)
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), res.output
    assert "did you mean 'cuda:0'?" in res.output


def test_the_error_is_a_config_error_and_a_value_error_and_pickles() -> None:
    with pytest.raises(DeviceNameError) as info:
        parse_device_name("cuda1")
    exc = info.value
    assert isinstance(exc, ConfigError) and isinstance(exc, ValueError)
    back = pickle.loads(pickle.dumps(exc))
    assert str(back) == str(exc) and back.suggestion == "cuda:1"


def test_the_config_has_no_copy_of_the_rules() -> None:
    import medmm.models.config as config

    assert not hasattr(config, "device_name") and not hasattr(config, "_DEVICE_NAME")
    assert config.parse_device_name is parse_device_name
