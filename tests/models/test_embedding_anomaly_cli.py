"""`medmm evaluate` prints the label-free imaging anomaly score's AUROC per label and its flag's
sensitivity / specificity (95% CIs), as written to metrics.json; or why there is none."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_run, tiny_config
from typer.testing import CliRunner

from medmm.cli import app
from medmm.models.checkpoint import load_checkpoint
from medmm.models.cli import _ci as format_ci
from medmm.models.config import TrainConfig
from medmm.models.runner import train_from_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ea_cli")
    run = make_tiny_run(root / "run", n=48)
    train_from_config(TrainConfig.model_validate(tiny_config(run, root / "m", epochs=1, n_boot=20)))
    return run, root / "m" / "model.pt"


def test_evaluate_prints_the_anomaly_auroc_and_flag_se_sp(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    res = CliRunner().invoke(app, ["evaluate", "--model", str(ckpt), str(run), "--out", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    ea = json.loads((tmp_path / "e" / "metrics.json").read_text())["embedding_anomaly"]
    lines = res.output.splitlines()
    head = next(x for x in lines if x.startswith("embedding anomaly"))
    flagged = round(ea["flag_rate"] * ea["n"])
    assert f"{ea['n']} scored, {flagged} flagged" in head
    assert f"threshold {ea['fit']['threshold']:.3f} at rate 0.05" in head
    for label in ("abnormal", "image_abnormal"):
        m = ea["metrics"][label]
        line = next(x for x in lines if x.strip().startswith(label + " "))
        assert f"AUROC {format_ci(m['auroc'])}" in line
        assert (
            f"flag Se {format_ci(m['sensitivity'])}" in line and f"Sp {format_ci(m['specificity'])}" in line
        )


def test_evaluate_says_why_there_is_no_score(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    res = CliRunner().invoke(
        app, ["evaluate", "--model", str(ckpt), str(run), "--drop", "image", "--out", str(tmp_path / "d")]
    )
    assert res.exit_code == 0, res.output
    assert "embedding anomaly: none (--drop image hides what the imaging anomaly score reads" in res.output
    # a checkpoint written before the score existed
    data = load_checkpoint(ckpt)
    data.pop("embedding_anomaly")
    data["meta"].pop("embedding_anomaly")
    buf = io.BytesIO()
    torch.save(data, buf)
    old = tmp_path / "old" / "model.pt"
    old.parent.mkdir()
    old.write_bytes(buf.getvalue())
    (old.parent / "splits.parquet").write_bytes((ckpt.parent / "splits.parquet").read_bytes())
    res = CliRunner().invoke(app, ["evaluate", "--model", str(old), str(run)])
    assert res.exit_code == 0, res.output
    assert "embedding anomaly: none (" in res.output and "re-train" in res.output


def test_a_model_without_an_image_prints_the_note(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path / "run", n=32)
    cfg = tiny_config(run, tmp_path / "m", epochs=1, n_boot=20)
    cfg["modalities"] = {"report": {"out_dim": 8}}
    train_from_config(TrainConfig.model_validate(cfg))
    res = CliRunner().invoke(app, ["evaluate", "--model", str(tmp_path / "m" / "model.pt"), str(run)])
    assert res.exit_code == 0, res.output
    assert "embedding anomaly: none (the model has no image modality" in res.output
