"""What the imaging anomaly threshold promises (medmm.models.embedding_anomaly / mahalanobis): the
calibration unit is the distinct image of a new patient, and too few calibration scores are said,
with the bound of the flag rate they allow, instead of promising the stated rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_tiny_run, tiny_config

from medmm.models.config import TrainConfig
from medmm.models.embedding_anomaly import (
    calibration_records,
    fit_embedding_anomaly,
    fit_on_split,
    image_representations,
    linked_groups,
)
from medmm.models.mahalanobis import conformal_threshold, false_alarm_bound
from medmm.models.runner import load_model, train_from_config
from medmm.models.volumes import open_sources


@pytest.fixture(scope="module")
def model_and_records(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, pd.DataFrame, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ea_cal")
    run = make_tiny_run(root / "run", n=120)
    train_from_config(TrainConfig.model_validate(tiny_config(run, root / "m", epochs=1, n_boot=0)))
    model, config, meta = load_model(root / "m" / "model.pt")
    records = pd.read_parquet(run / "records.parquet")
    records = records[records["has_image"]].reset_index(drop=True)
    stores = open_sources(config, run, meta["modalities"], records, "arrays", absent_ok=True)
    return model, records, stores


def _by_patient(records: pd.DataFrame, n_train: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first patients (about ``n_train`` records) for training, the others for validation."""
    patients = records["patient_id"].drop_duplicates().tolist()
    cut = records["patient_id"].isin(patients[: n_train // 2])
    return records[cut], records[~cut]


def test_a_validation_image_shared_by_several_records_is_one_calibration_score(
    model_and_records: tuple[object, pd.DataFrame, dict],
) -> None:
    """The constructed cohort draws each validation image for 2-3 records: 90 scores of 40 images, whose
    ties made the threshold look calibrated on 90 draws. The score is the image's, so it counts once."""
    model, records, stores = model_and_records
    train, val = _by_patient(records, 40)
    assert val["image_id"].nunique() >= 25
    copies = [
        val.assign(record_id=val["record_id"] + f"-{c}", patient_id=val["patient_id"] + f"-{c}") for c in "ab"
    ]
    reused = pd.concat([val, *copies])  # each image in 3 records of 3 different (new) patients
    a, _ = fit_on_split(model, train, val, stores)
    b, _ = fit_on_split(model, train, reused, stores)
    assert a is not None and b is not None and b.calibration_source == "validation"
    assert len(b.calibration) == val["image_id"].nunique() == len(a.calibration)
    assert np.array_equal(b.calibration, a.calibration) and b.threshold == a.threshold
    assert b.summary()["n_calibration"] == len(val)


def test_a_validation_patient_also_in_training_does_not_calibrate(
    model_and_records: tuple[object, pd.DataFrame, dict],
) -> None:
    """A splits file not made by patient puts one patient in both splits: their other images are not a
    new patient's, the population the rate is stated for."""
    model, records, stores = model_and_records
    train, val = _by_patient(records, 40)
    known = train.head(4).assign(
        record_id=lambda d: d["record_id"] + "-v", image_id=val["image_id"].head(4).to_numpy()
    )
    mixed = pd.concat([val.iloc[4:], known])  # 4 validation images now belong to training patients
    assert calibration_records(train, mixed)["patient_id"].isin(train["patient_id"]).sum() == 0
    a, _ = fit_on_split(model, train, val.iloc[4:], stores)
    b, _ = fit_on_split(model, train, mixed, stores)
    assert a is not None and b is not None and np.array_equal(a.calibration, b.calibration)


def test_cross_fitted_calibration_never_scores_an_image_its_fold_was_fitted_on(
    model_and_records: tuple[object, pd.DataFrame, dict],
) -> None:
    """Without validation records the scores are cross-fitted by patient; patients who share an image
    are one group, and each distinct image gives one score."""
    model, records, stores = model_and_records
    train, _ = _by_patient(records, 60)
    twins = train.assign(record_id=train["record_id"] + "-t", patient_id="twin-" + train["patient_id"])
    doubled = pd.concat([train, twins])  # each image in 2 records of 2 patients
    a, _ = fit_on_split(model, doubled, None, stores)
    assert a is not None and a.calibration_source == "train_crossfit"
    assert len(a.calibration) == train["image_id"].nunique()
    assert linked_groups(["p1", "p2", "p3", "p4"], ["a", "b", "a", "c"]) == ["p1", "p2", "p1", "p4"]
    # grouped by patient alone, an image's twin would sit in the fitted folds: in-sample, lower scores
    x, rec = image_representations(model, doubled, stores)
    by = doubled.set_index("record_id")
    by_patient = fit_embedding_anomaly(
        x,
        None,
        train_records=by.loc[rec, "image_id"].tolist(),
        train_groups=by.loc[rec, "patient_id"].tolist(),
    )
    assert np.median(a.calibration) > np.median(by_patient.calibration)


def test_the_bound_is_the_spread_of_one_thresholds_false_alarm_rate() -> None:
    """Over many calibration sets of n uniform scores, the rate of the threshold (1 - s_(k)) averages the
    expected rate and exceeds the upper bound 5% of the time."""
    rng = np.random.default_rng(0)
    for n, rate in ((40, 0.05), (19, 0.05), (200, 0.01)):
        expected, upper = false_alarm_bound(n, rate)
        achieved = np.array([1 - conformal_threshold(rng.random(n), rate)[0] for _ in range(4000)])
        assert achieved.mean() == pytest.approx(expected, abs=0.004)
        assert np.mean(achieved > upper) == pytest.approx(0.05, abs=0.012)


def test_too_few_calibration_scores_are_said_not_promised() -> None:
    rng = np.random.default_rng(0)
    few = fit_embedding_anomaly(rng.normal(size=(400, 3)), rng.normal(size=(40, 3)), rate=0.05)
    note = few.calibration_note()
    assert note is not None and "40 validation score(s)" in note and "11.3%" in note and "Fix:" in note
    summary = few.summary()
    assert summary["false_alarm_upper_95"] == pytest.approx(0.113, abs=0.001)
    assert summary["false_alarm_expected"] == pytest.approx(2 / 41)
    strict = few.with_rate(0.01).calibration_note()
    assert strict is not None and "too few for the false-alarm rate 0.01" in strict and "99" in strict
    many = fit_embedding_anomaly(rng.normal(size=(400, 3)), rng.normal(size=(1000, 3)), rate=0.05)
    assert many.calibration_note() is None and many.summary()["false_alarm_upper_95"] < 0.062


def test_the_training_run_warns_when_its_calibration_cannot_promise_the_rate(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path / "run", n=48)
    summary = train_from_config(
        TrainConfig.model_validate(tiny_config(run, tmp_path / "m", epochs=1, n_boot=0))
    )
    fit = summary["folds"][0]["embedding_anomaly"]["fit"]
    assert fit["n_calibration"] < 61 and fit["false_alarm_upper_95"] > 0.1
    assert any(f"calibrated on {fit['n_calibration']} " in n for n in summary["notes"])
