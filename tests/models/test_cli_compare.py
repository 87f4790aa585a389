"""CLI: train from a YAML, evaluate, and `models compare` on the tiny generated run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from conftest import tiny_config
from typer.testing import CliRunner

from medmm.cli import app
from medmm.models.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_train_configs_are_valid() -> None:
    paths = sorted((ROOT / "workflows").glob("train_*.yaml"))
    assert paths
    for p in paths:
        assert load_config(p).tasks


def test_train_and_evaluate_cli(tiny_run: Path, tmp_path: Path) -> None:
    cfg_path = tmp_path / "train_tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(tiny_run, tmp_path / "out", fusion="concat")))
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(cfg_path), "--epochs", "2"])
    assert res.exit_code == 0, res.output
    assert "test auroc" in res.output
    assert (tmp_path / "out" / "model.pt").exists()
    run_json = json.loads((tiny_run / "run.json").read_text())
    assert run_json["stages"]["train"]["data_version"]["records_sha256"]
    res = runner.invoke(
        app, ["evaluate", "--model", str(tmp_path / "out" / "model.pt"), str(tiny_run), "--drop", "image"]
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "out" / "eval_test_no_image" / "metrics.json").read_text())
    assert metrics["dropped"] == ["image"]
    assert (tmp_path / "out" / "eval_test_no_image" / "metrics.png").exists()


def test_bad_config_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "train_bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "run_dir": ".",
                "fusion": "magic",
                "modalities": {"report": {}},
                "tasks": [{"name": "dx", "labels": ["a"]}],
            }
        )
    )
    res = CliRunner().invoke(app, ["train", str(bad)])
    assert res.exit_code == 2
    assert "magic" in res.output


def test_models_compare_table(tiny_run: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "models",
            "compare",
            str(tiny_run),
            "--out",
            str(tmp_path / "cmp"),
            "--strategy",
            "sum",
            "--strategy",
            "late",
            "--epochs",
            "1",
            "--n-boot",
            "20",
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    # 3 unimodal rows + 2 strategies x 7 availability patterns
    assert len(table) == 3 + 2 * 7
    assert set(table["model"]) == {
        "unimodal image",
        "unimodal report",
        "unimodal signal",
        "fusion sum",
        "fusion late",
    }
    assert (table["accuracy_lo"] <= table["accuracy_value"]).all()
    assert (table["accuracy_value"] <= table["accuracy_hi"]).all()
    assert (table["n_test"] > 0).all()
    assert "| fusion late | image+report+signal |" in (tmp_path / "cmp" / "compare.md").read_text()
