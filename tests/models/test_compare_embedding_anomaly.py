"""`medmm models compare` fits the label-free imaging anomaly score for every trained model exactly as
`medmm train` does (fit_on_split on the training split, threshold from the validation split), stores it in
each checkpoint and reports its test AUROC per model in compare.json; models without an image branch get
the note of why there is none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_tiny_run
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.models.compare import compare_models
from medmm.models.embedding_anomaly import anomaly_report, fit_on_split, load_embedding_anomaly
from medmm.models.runner import load_model, load_records
from medmm.models.volumes import open_sources
from medmm.tables import read_table

SETTINGS = {"epochs": 1, "batch_size": 8, "n_boot": 20, "seed": 0, "num_threads": 1}


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cmp_ea")
    run = make_tiny_run(root / "run", n=48)
    compare_models(run, root / "cmp", "image_abnormal", ["late"], dict(SETTINGS), device="cpu")
    return run, root / "cmp", json.loads((root / "cmp" / "compare.json").read_text())


def test_each_model_with_an_image_branch_gets_a_fit_and_test_auroc(compared: tuple[Path, Path, dict]) -> None:
    run, out, saved = compared
    ea = saved["embedding_anomaly"]
    assert set(ea) == {"unimodal image", "unimodal report", "unimodal signal", "fusion late"}
    for name in ("unimodal image", "fusion late"):
        entry = ea[name]
        assert entry["fit"]["calibration_source"] in ("validation", "train_crossfit")
        auroc = entry["metrics"]["image_abnormal"]["auroc"]
        assert 0.0 <= auroc["lo"] <= auroc["value"] <= auroc["hi"] <= 1.0
        assert {"sensitivity", "specificity"} <= set(entry["metrics"]["image_abnormal"])
        # scored on the test split's records with an image, and no others
        splits = read_table(out / "splits.parquet")
        records = pd.read_parquet(run / "records.parquet").set_index("record_id")
        test = splits.loc[splits["split"] == "test", "record_id"]
        assert entry["n"] == int(records.loc[test, "has_image"].sum()) > 0
    # the late model's representation is the image encoder's output, the others the fusion output
    assert ea["fusion late"]["fit"]["representation"] == "image encoder (late fusion)"
    for name in ("unimodal report", "unimodal signal"):
        assert "no image modality" in ea[name]["note"] and "metrics" not in ea[name]


def test_checkpoints_carry_the_fit_so_predict_scores_it(compared: tuple[Path, Path, dict]) -> None:
    from medmm.predict.predict import predict_run

    run, out, saved = compared
    anomaly, why = load_embedding_anomaly(out / "unimodal_image" / "model.pt")
    assert anomaly is not None and why is None
    assert anomaly.threshold == pytest.approx(
        saved["embedding_anomaly"]["unimodal image"]["fit"]["threshold"]
    )
    none, note = load_embedding_anomaly(out / "unimodal_report" / "model.pt")
    assert none is None and note is not None and "no image modality" in note
    counts = predict_run(out / "fusion_late" / "model.pt", run, out / "pred.parquet", device="cpu")
    # no "no imaging anomaly statistics" note; the tiny run's few calibration scores are said
    assert all("anomaly threshold was calibrated on" in n for n in counts["notes"])
    assert counts["anomaly_scored"] > 0
    pred = pd.read_parquet(out / "pred.parquet")
    assert pred["embedding_anomaly_score"].notna().any()


def test_the_fit_is_the_one_train_makes_on_the_same_model_and_split(
    compared: tuple[Path, Path, dict],
) -> None:
    run, out, saved = compared
    ckpt = out / "fusion_late" / "model.pt"
    model, config, meta = load_model(ckpt, torch.device("cpu"))
    records = load_records(run)
    split = read_table(out / "splits.parquet").set_index("record_id")["split"]
    part = {s: records[records["record_id"].map(split) == s] for s in ("train", "val", "test")}
    stores = open_sources(config, run, meta["modalities"], records)
    again, _ = fit_on_split(
        model, part["train"], part["val"], stores, batch_size=8, aggregation="mean", seed=config.train.seed
    )
    stored, _ = load_embedding_anomaly(ckpt)
    assert again is not None and stored is not None
    np.testing.assert_allclose(again.density.mean, stored.density.mean, rtol=1e-6)
    np.testing.assert_allclose(again.calibration, stored.calibration, rtol=1e-6)
    assert again.threshold == pytest.approx(stored.threshold)
    report = anomaly_report(again, model, part["test"], stores, ["image_abnormal"], batch_size=8, n_boot=20)
    assert saved["embedding_anomaly"]["fusion late"]["metrics"]["image_abnormal"]["auroc"][
        "value"
    ] == pytest.approx(report["metrics"]["image_abnormal"]["auroc"]["value"])


def test_a_bad_anomaly_rate_is_refused_before_training(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path / "run", n=16)
    with pytest.raises(ConfigError, match="anomaly_rate"):
        compare_models(
            run, tmp_path / "cmp", "abnormal", ["sum"], {**SETTINGS, "anomaly_rate": 1.5}, device="cpu"
        )
    assert not (tmp_path / "cmp").exists()


def test_compare_cli_prints_the_anomaly_auroc_per_model(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    args = ["models", "compare", str(tiny_run), "--out", str(out), "--target", "image_abnormal"]
    args += ["--strategy", "sum", "--epochs", "1", "--n-boot", "20", "--threads", "1", "--device", "cpu"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    ea = json.loads((out / "compare.json").read_text())["embedding_anomaly"]
    assert "embedding anomaly score (label-free, image only), test AUROC for image_abnormal:" in res.output
    from medmm.models.cli import _ci as format_ci

    for name in ("unimodal image", "fusion sum"):
        line = next(x for x in res.output.splitlines() if x.strip().startswith(name))
        assert format_ci(ea[name]["metrics"]["image_abnormal"]["auroc"]) in line
    assert not any(x.strip().startswith("unimodal report ") for x in res.output.splitlines()[-6:])
