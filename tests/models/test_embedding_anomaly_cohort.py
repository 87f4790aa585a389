"""The label-free imaging anomaly score on real data: the constructed cohort (BraTS FLAIR slices with and
without tumour, IU reports, MIT-BIH windows; ``bench/cohort.py``) and images from other sources.

A small attention-fusion model is trained on the cohort's source-disjoint split; its score (fitted
without labels on the training records' image-only fused representations) must rank the test split's
tumour slices above the tumour-free ones (AUROC with a bootstrap CI above chance), must not move with
the report and ECG labels, and must flag chest X-rays / CT pictures (covid_chestxray_subset), which the
model never saw, above its threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench._ood import write_ood_run


@pytest.fixture(scope="module")
def cohort_model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from bench.cohort import build_cohort
    from medmm.models.config import TrainConfig
    from medmm.models.runner import train_from_config

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ea_cohort")
    build_cohort(shared_data, root / "cohort", n_studies=400, size=32, seed=0)
    config = {
        "run_dir": str(root / "cohort"),
        "out_dir": str(root / "model"),
        "splits_file": str(root / "cohort" / "splits.parquet"),
        "fusion": "attention",
        "embed_dim": 32,
        "modalities": {"image": {"out_dim": 32}, "report": {"out_dim": 8}, "signal": {"out_dim": 8}},
        "tasks": [{"name": "diagnosis", "labels": ["abnormal", "image_abnormal"]}],
        "train": {"epochs": 10, "batch_size": 32, "lr": 0.003, "seed": 0, "progress": False, "n_boot": 300},
    }
    train_from_config(TrainConfig.model_validate(config))
    return root / "cohort", root / "model" / "model.pt"


@pytest.mark.shared_data
def test_score_ranks_tumour_slices_on_the_test_split(cohort_model: tuple[Path, Path], tmp_path: Path) -> None:
    from medmm.models.runner import evaluate_checkpoint

    run, ckpt = cohort_model
    result = evaluate_checkpoint(ckpt, run, tmp_path / "eval")
    ea = result["embedding_anomaly"]
    assert ea["fit"]["calibration_source"] == "validation" and ea["n"] == result["n"] == 100
    image = ea["metrics"]["image_abnormal"]["auroc"]
    print(f"test AUROC for image_abnormal {image}, flag rate {ea['flag_rate']:.3f}")
    assert image["lo"] > 0.5, image  # a label-free score above chance, CI included
    # the score reads the image alone: it cannot know the record-level label beyond the image's share
    assert ea["metrics"]["abnormal"]["auroc"]["value"] < image["value"]
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())["embedding_anomaly"]
    assert saved["metrics"]["image_abnormal"]["auroc"]["value"] == pytest.approx(image["value"])


@pytest.mark.shared_data
def test_images_from_other_sources_score_above_the_threshold(
    cohort_model: tuple[Path, Path], shared_data: Path, tmp_path: Path
) -> None:
    from medmm.models.metrics import binary_metrics
    from medmm.predict.predict import predict_run

    run, ckpt = cohort_model
    groups = write_ood_run(shared_data, tmp_path / "ood", size=32)
    counts = predict_run(ckpt, tmp_path / "ood", device="cpu")
    pred = pd.read_parquet(tmp_path / "ood" / "predictions.parquet").drop_duplicates("record_id")
    pred = pred.merge(groups, on="record_id")
    assert counts["anomaly_scored"] == len(groups) == 39
    # the cohort's validation split holds 40 distinct images: too few to promise 5% (bound 11.3%), said
    assert all("calibrated on 40 validation score(s)" in n for n in counts["notes"]), counts["notes"]
    chest = pred[pred["group"] == "chest_picture"]
    threshold = float(pred["embedding_anomaly_threshold"].iloc[0])
    # the test split's own images (BraTS patients held out of training) as the in-distribution side
    predict_run(ckpt, run, tmp_path / "test.parquet", device="cpu")
    test = pd.read_parquet(tmp_path / "test.parquet").drop_duplicates("record_id")
    splits = pd.read_parquet(run / "splits.parquet")
    test = test[test["record_id"].isin(splits.loc[splits["split"] == "test", "record_id"])]
    scores = np.r_[test["embedding_anomaly_score"], chest["embedding_anomaly_score"]]
    y = np.r_[np.zeros(len(test)), np.ones(len(chest))]
    auroc = binary_metrics(y, scores)["auroc"]
    rate = chest["embedding_anomaly_flag"].mean()
    print(f"chest pictures flagged {rate:.3f}, AUROC vs test images {auroc:.3f}, threshold {threshold:.3f}")
    print(pred.groupby("group")["embedding_anomaly_score"].describe())
    # the threshold comes from the validation split's 40 distinct images (each counted once): at 5% it is
    # their 39th of 40, above the one the records reusing them gave; 27 of 34 pictures are above it
    assert auroc >= 0.9 and rate >= 0.75, (auroc, rate)
    assert chest["embedding_anomaly_score"].median() > threshold
