"""Training-config mistakes give one readable line each, naming the key and the fix (audit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.models.config import load_config

BASE = {
    "run_dir": "runs/x",
    "modalities": {"report": {}, "signal": {"arch": "cnn"}},
    "tasks": [{"name": "dx", "labels": ["abnormal"]}],
    "train": {"epochs": 2},
}


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("section", "key", "expected"),
    [
        ("train", "epoch", "train.epoch: unknown key (did you mean 'epochs'?"),
        ("signal", "archh", "modalities.signal.archh: unknown key (did you mean 'arch'?"),
        ("task", "lables", "tasks.0.lables: unknown key (did you mean 'labels'?"),
        (None, "fussion", "fussion: unknown key (did you mean 'fusion'?"),
    ],
)
def test_unknown_key_names_its_place_and_a_suggestion(
    tmp_path: Path, section: str | None, key: str, expected: str
) -> None:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    target = {
        "train": data["train"],
        "signal": data["modalities"]["signal"],
        "task": data["tasks"][0],
        None: data,
    }
    target[section][key] = 1
    res = CliRunner().invoke(app, ["train", str(_write(tmp_path, data))])
    assert res.exit_code == 2
    assert expected in res.output
    assert "errors.pydantic.dev" not in res.output and "Traceback" not in res.output


def test_wrong_type_shows_the_value_given(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["train"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"train.epochs: Input should be a valid integer.*\(got 'ten'\)"):
        load_config(_write(tmp_path, data))


def test_directory_or_empty_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="expected a mapping of keys"):
        load_config(empty)


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        (
            [{"name": "dx", "labels": ["a"]}, {"name": "dx", "labels": ["b"]}],
            r"task names must be unique.*\['dx'\]",
        ),
        (
            [{"name": "dx", "labels": ["a", "a"]}],
            r"a label may appear once over all tasks; repeated: \['a'\]",
        ),
        ([{"name": "dx", "labels": ["a"]}, {"name": "an", "labels": ["a"]}], r"repeated: \['a'\]"),
    ],
)
def test_repeated_task_or_label_is_refused(tmp_path: Path, tasks: list[dict], expected: str) -> None:
    # a repeated task name kept one head for two tasks: the second task's scores came from the first's
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["tasks"] = tasks
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("modality", "arch", "expected"),
    [
        (
            "signal",
            "transformer",
            r"modalities.signal.arch 'transformer' is not a signal encoder; choose one of \['cnn', 'gru'\]",
        ),
        ("report", "bert", r"modalities.report.arch 'bert' is not a report encoder; it has one encoder"),
    ],
)
def test_unknown_encoder_arch_is_refused_when_the_config_is_read(
    tmp_path: Path, modality: str, arch: str, expected: str
) -> None:
    # the report arch was silently ignored; the signal one failed only after the data was loaded
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["modalities"][modality] = {"arch": arch}
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, data))
