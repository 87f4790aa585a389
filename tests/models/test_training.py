"""Training: determinism with a seed, checkpoint round trip (weights_only), splits by patient, k-fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config

from medmm.errors import InputError
from medmm.models.config import TrainConfig
from medmm.models.data import MultimodalDataset
from medmm.models.runner import evaluate_checkpoint, load_model, train_from_config
from medmm.models.store import open_stores
from medmm.models.train import make_loader, predict_loader


def _train(run: Path, out: Path, **kw: object) -> dict:
    return train_from_config(TrainConfig.model_validate(tiny_config(run, out, **kw)))


def test_training_is_deterministic_with_a_seed(tiny_run: Path, tmp_path: Path) -> None:
    a = _train(tiny_run, tmp_path / "a", modality_dropout=0.3)
    b = _train(tiny_run, tmp_path / "b", modality_dropout=0.3)
    c = _train(tiny_run, tmp_path / "c", modality_dropout=0.3, seed=1)
    assert a["folds"][0]["history"] == b["folds"][0]["history"]
    sa = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    sb = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["folds"][0]["history"] != c["folds"][0]["history"]
    assert (tmp_path / "a" / "history.png").stat().st_size > 1000
    assert (tmp_path / "a" / "metrics.png").stat().st_size > 1000


def test_checkpoint_round_trip_and_metadata(tiny_run: Path, tmp_path: Path) -> None:
    summary = _train(tiny_run, tmp_path / "m", fusion="gated")
    model, config, meta = load_model(tmp_path / "m" / "model.pt")
    assert config.fusion == "gated"
    assert meta["data_version"]["records_sha256"] == summary["data_version"]["records_sha256"]
    assert len(meta["data_version"]["records_sha256"]) == 64
    records = pd.read_parquet(tiny_run / "records.parquet")
    ds = MultimodalDataset(records, open_stores(tiny_run, ["image", "report", "signal"]), meta["label_names"])
    p1 = predict_loader(model, make_loader(ds, 8, False, 0))
    model2, _, _ = load_model(tmp_path / "m" / "model.pt")
    p2 = predict_loader(model2, make_loader(ds, 5, False, 0))
    np.testing.assert_allclose(p1.probs, p2.probs, atol=1e-6)
    assert p1.probs.shape == (len(records), 2)
    result = evaluate_checkpoint(tmp_path / "m" / "model.pt", tiny_run, tmp_path / "eval")
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["n"] == result["n"] > 0
    assert set(written["metrics"]["macro"]) >= {"auroc", "auprc", "ece", "f1"}


def test_splits_never_share_a_patient(tiny_run: Path, tmp_path: Path) -> None:
    _train(tiny_run, tmp_path / "s", epochs=1)
    splits = pd.read_parquet(tmp_path / "s" / "splits.parquet")
    assert splits.groupby("patient_id")["split"].nunique().max() == 1
    assert set(splits["split"]) == {"train", "val", "test"}


def test_kfold_covers_every_record_once_in_test(tiny_run: Path, tmp_path: Path) -> None:
    summary = _train(tiny_run, tmp_path / "k", epochs=1, folds=3)
    splits = pd.read_parquet(tmp_path / "k" / "splits.parquet")
    test = splits[splits["split"] == "test"]
    assert test["record_id"].is_unique and len(test) == 48
    for _, fold in splits.groupby("fold"):
        assert fold.groupby("patient_id")["split"].nunique().max() == 1
    assert len(summary["folds"]) == 3 and "test" in summary
    assert all((tmp_path / "k" / f"fold{k}" / "model.pt").exists() for k in range(3))


def test_uncertainty_weighting_learns_task_weights(tiny_run: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_run, tmp_path / "u")
    cfg["tasks"] = [
        {"name": "diagnosis", "labels": ["abnormal"]},
        {"name": "anomaly", "kind": "anomaly", "labels": ["image_abnormal"]},
    ]
    cfg["loss"] = {"weighting": "uncertainty"}
    _train_cfg = TrainConfig.model_validate(cfg)
    train_from_config(_train_cfg)
    _, _, meta = load_model(tmp_path / "u" / "model.pt")
    weights = meta["task_weights"]
    assert set(weights) == {"diagnosis", "anomaly"}
    assert any(abs(w - 1.0) > 1e-4 for w in weights.values())


def test_bad_checkpoint_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"x\.pt"):
        load_model(bad)


def test_fixed_splits_file_is_used(tiny_run: Path, tmp_path: Path) -> None:
    records = pd.read_parquet(tiny_run / "records.parquet")
    fixed = pd.DataFrame(
        {
            "record_id": records["record_id"],
            "patient_id": records["patient_id"],
            "fold": 0,
            "split": [
                "test" if int(p[-3:]) < 6 else "val" if int(p[-3:]) < 10 else "train"
                for p in records["patient_id"]
            ],
        }
    )
    fixed.to_parquet(tmp_path / "fixed.parquet")
    cfg = tiny_config(tiny_run, tmp_path / "f", epochs=1)
    cfg["splits_file"] = str(tmp_path / "fixed.parquet")
    summary = train_from_config(TrainConfig.model_validate(cfg))
    written = pd.read_parquet(tmp_path / "f" / "splits.parquet").set_index("record_id")["split"]
    assert written.to_dict() == fixed.set_index("record_id")["split"].to_dict()
    assert summary["folds"][0]["n"]["test"] == 12
