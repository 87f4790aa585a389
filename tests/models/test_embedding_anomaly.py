"""The label-free imaging anomaly score (medmm.models.embedding_anomaly): density and threshold on known
Gaussians, NaN without an image, no label read, per-fold fits, and the checkpoint round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_tiny_run, tiny_config
from scipy.stats import chi2

from medmm.models.checkpoint import load_checkpoint, save_checkpoint
from medmm.models.config import TrainConfig
from medmm.models.embedding_anomaly import (
    MIN_CALIBRATION_RECORDS,
    EmbeddingAnomaly,
    aggregate_scores,
    conformal_threshold,
    fit_density,
    fit_embedding_anomaly,
    fit_on_split,
    image_representations,
    load_embedding_anomaly,
    mahalanobis,
    score_records,
)
from medmm.models.runner import load_model, train_from_config
from medmm.models.volumes import open_sources

D = 6


def _gaussian(n: int, seed: int) -> np.ndarray:
    """Correlated Gaussian rows (mean 1, a fixed covariance with unequal scales)."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).normal(size=(D, D)) * np.linspace(0.2, 3.0, D)
    return rng.normal(size=(n, D)) @ mix + 1.0


def test_inliers_are_flagged_at_the_stated_rate_and_shifted_points_always() -> None:
    a = fit_embedding_anomaly(_gaussian(3000, 0), _gaussian(1000, 1), rate=0.05)
    assert a.calibration_source == "validation" and a.exact and len(a.calibration) == 1000
    inliers = a.flag(a.score(_gaussian(20000, 2)))
    assert abs(inliers.mean() - 0.05) < 0.015
    # for a Gaussian the squared distance is chi-square with D degrees of freedom
    assert a.threshold == pytest.approx(np.sqrt(chi2.ppf(0.95, D)), rel=0.05)
    # a point 8 standard deviations out along the density's first principal axis
    cov = np.linalg.inv(a.density.precision)
    w, v = np.linalg.eigh(cov)
    shifted = (
        a.density.mean + 8 * np.sqrt(w[-1]) * v[:, -1] + np.random.default_rng(3).normal(0, 0.01, (50, D))
    )
    assert a.flag(a.score(shifted)).all()
    stricter = a.with_rate(0.01)
    assert stricter.threshold > a.threshold
    assert abs(stricter.flag(stricter.score(_gaussian(20000, 2))).mean() - 0.01) < 0.008


def test_conformal_threshold_is_the_k_th_calibration_score() -> None:
    scores = np.random.default_rng(0).permutation(np.arange(1.0, 100.0))  # 99 scores 1..99
    assert conformal_threshold(scores, 0.05) == (95.0, True)  # k = ceil(100 * 0.95) = 95
    assert conformal_threshold(scores, 0.10) == (90.0, True)
    assert conformal_threshold(np.arange(1.0, 11.0), 0.05) == (10.0, False)  # k = 11 > n
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        conformal_threshold(scores, 1.5)


def test_few_validation_records_fall_back_to_cross_fitted_training_scores() -> None:
    small = _gaussian(MIN_CALIBRATION_RECORDS - 1, 1)
    groups = np.repeat(np.arange(100), 10).astype(str)  # 100 patients x 10 rows
    a = fit_embedding_anomaly(_gaussian(1000, 0), small, train_groups=groups, rate=0.05)
    assert a.calibration_source == "train_crossfit" and len(a.calibration) == 1000
    # out-of-fold distances are larger than in-sample ones: the cross-fitted threshold is not optimistic
    in_sample = conformal_threshold(a.density.distance(_gaussian(1000, 0)), 0.05)[0]
    assert a.threshold > in_sample
    assert abs(a.flag(a.score(_gaussian(20000, 2))).mean() - 0.05) < 0.02


def test_scores_are_nan_without_an_image_and_flags_false() -> None:
    a = fit_embedding_anomaly(_gaussian(200, 0), _gaussian(100, 1))
    x = _gaussian(3, 4)
    x[1] = np.nan
    s = a.score(x)
    assert np.isnan(s[1]) and np.isfinite(s[[0, 2]]).all()
    assert a.flag(s).tolist()[1] is False


def test_torch_distance_matches_numpy_and_slices_aggregate_per_record() -> None:
    d = fit_density(_gaussian(500, 0))
    x = _gaussian(7, 5)
    got = mahalanobis(torch.from_numpy(x).float(), torch.from_numpy(d.mean), torch.from_numpy(d.precision))
    assert np.allclose(got.numpy(), d.distance(x), rtol=1e-5)
    agg = aggregate_scores(np.array([1.0, 5.0, 2.0, 4.0]), ["r1", "r1", "r2", "r1"], "mean")
    assert agg.to_dict() == {"r1": pytest.approx(10 / 3), "r2": 2.0}


def test_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    a = fit_embedding_anomaly(_gaussian(200, 0), _gaussian(100, 1), rate=0.1, aggregation="max")
    path = tmp_path / "m.pt"
    torch.save({"embedding_anomaly": a.to_state()}, path)
    b = EmbeddingAnomaly.from_state(torch.load(path, weights_only=True)["embedding_anomaly"])
    assert b.summary() == a.summary()
    assert np.array_equal(b.score(_gaussian(9, 3)), a.score(_gaussian(9, 3)))
    with pytest.raises(ValueError, match="malformed"):
        EmbeddingAnomaly.from_state({k: v for k, v in a.to_state().items() if k != "precision"})


def test_a_checkpoint_entry_this_medmm_cannot_read_is_a_note_not_a_crash(tmp_path: Path) -> None:
    a = fit_embedding_anomaly(_gaussian(50, 0))
    newer = {**a.to_state(), "version": 99}  # e.g. written by a later medmm
    path = save_checkpoint(tmp_path / "m.pt", {}, {"config": {}}, {"embedding_anomaly": newer})
    anomaly, why = load_embedding_anomaly(path)
    assert anomaly is None and why is not None
    assert str(path) in why and "unreadable" in why and "version 99" in why
    with pytest.raises(ValueError, match="'meta' is reserved"):
        save_checkpoint(tmp_path / "x.pt", {}, {"config": {}}, {"meta": {}})
    assert not (tmp_path / "x.pt").exists()


# ------------------------------------------------------------------------------- with a trained model


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ea")
    run = make_tiny_run(root / "run", n=64)
    train_from_config(TrainConfig.model_validate(tiny_config(run, root / "m", epochs=2, n_boot=20)))
    return run, root / "m" / "model.pt"


def test_checkpoint_holds_the_fit_and_predictions_use_it(trained: tuple[Path, Path]) -> None:
    run, ckpt = trained
    data = load_checkpoint(ckpt)  # weights_only=True
    a = EmbeddingAnomaly.from_state(data["embedding_anomaly"])
    assert data["meta"]["embedding_anomaly"]["threshold"] == a.threshold
    records = pd.read_parquet(run / "records.parquet")
    splits = pd.read_parquet(ckpt.parent / "splits.parquet")
    train_ids = splits.loc[splits["split"] == "train", "record_id"]
    n_train_img = int(records[records["record_id"].isin(train_ids)]["has_image"].sum())
    assert a.density.n_fit == n_train_img  # fitted on the training split's records with an image only
    model, config, meta = load_model(ckpt)
    stores = open_sources(config, run, meta["modalities"], records, "arrays", absent_ok=True)
    scored = score_records(a, model, records, stores)
    no_image = ~records["has_image"].to_numpy(bool)
    assert no_image.any() and np.isnan(scored["score"][no_image]).all()
    assert scored["flag"][no_image].isna().all() and (scored["n_samples"][no_image] == 0).all()
    assert np.isfinite(scored["score"][~no_image]).all()
    metrics = json.loads((ckpt.parent / "metrics.json").read_text())
    assert metrics["folds"][0]["embedding_anomaly"]["fit"]["threshold"] == a.threshold


def test_fit_reads_no_label(trained: tuple[Path, Path]) -> None:
    run, ckpt = trained
    model, config, meta = load_model(ckpt)
    records = pd.read_parquet(run / "records.parquet")
    stores = open_sources(config, run, meta["modalities"], records, "arrays", absent_ok=True)
    half = len(records) // 2
    a, _ = fit_on_split(model, records.iloc[:half], records.iloc[half:], stores)
    flipped = records.assign(
        labels=[json.dumps({"abnormal": 1 - json.loads(t)["abnormal"]}) for t in records["labels"]]
    )
    b, _ = fit_on_split(model, flipped.iloc[:half], flipped.iloc[half:], stores)
    assert a is not None and b is not None and a.summary() == b.summary()


def test_the_score_depends_on_the_image_only(trained: tuple[Path, Path]) -> None:
    run, ckpt = trained
    model, config, meta = load_model(ckpt)
    records = pd.read_parquet(run / "records.parquet")
    records = records[records["has_image"]]
    stores = open_sources(config, run, meta["modalities"], records, "arrays", absent_ok=True)
    x, _ = image_representations(model, records, stores)
    alone = records.assign(has_report=False, has_signal=False, report_id=None, signal_id=None)
    y, _ = image_representations(model, alone, stores)
    assert np.allclose(x, y)


def test_late_fusion_uses_the_image_encoder_output(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    run = make_tiny_run(tmp_path / "run", n=48)
    train_from_config(
        TrainConfig.model_validate(tiny_config(run, tmp_path / "m", "late", epochs=1, n_boot=0))
    )
    a, why = load_embedding_anomaly(tmp_path / "m" / "model.pt")
    assert why is None and a is not None
    assert a.representation == "image encoder (late fusion)" and len(a.density.mean) == 8  # image out_dim


def test_each_fold_is_fitted_on_its_own_training_records(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    run = make_tiny_run(tmp_path / "run", n=64)
    cfg = tiny_config(run, tmp_path / "cv", epochs=1, n_boot=0, folds=2, val_fraction=0.2)
    train_from_config(TrainConfig.model_validate(cfg))
    records = pd.read_parquet(run / "records.parquet").set_index("record_id")
    splits = pd.read_parquet(tmp_path / "cv" / "splits.parquet")
    fits = []
    for k in (0, 1):
        a, _ = load_embedding_anomaly(tmp_path / "cv" / f"fold{k}" / "model.pt")
        assert a is not None
        ids = splits[(splits["fold"] == k) & (splits["split"] == "train")]["record_id"]
        assert a.density.n_fit == int(records.loc[ids, "has_image"].sum())
        fits.append(a)
    assert not np.allclose(fits[0].density.mean, fits[1].density.mean)


def test_a_model_without_an_image_has_no_score_and_no_note(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    run = make_tiny_run(tmp_path / "run", n=32)
    cfg = tiny_config(run, tmp_path / "m", epochs=1, n_boot=0)
    cfg["modalities"] = {"report": {"out_dim": 8}}
    summary = train_from_config(TrainConfig.model_validate(cfg))
    assert not any("anomaly" in n for n in summary["notes"])
    a, why = load_embedding_anomaly(tmp_path / "m" / "model.pt")
    assert a is None and "no image modality" in str(why)
    assert summary["folds"][0]["embedding_anomaly"] == {"note": why}


def test_too_few_training_images_leave_the_score_out_and_predict_says_why(tmp_path: Path) -> None:
    from medmm.predict.predict import predict_run

    torch.set_num_threads(1)
    run = make_tiny_run(tmp_path / "run", n=10)  # < 10 training records with an image
    summary = train_from_config(
        TrainConfig.model_validate(tiny_config(run, tmp_path / "m", epochs=1, n_boot=0))
    )
    assert "no imaging anomaly score fitted" in summary["folds"][0]["embedding_anomaly"]["note"]
    assert not any("anomaly" in n for n in summary["notes"])  # not a training problem: no warning
    counts = predict_run(tmp_path / "m" / "model.pt", run)
    assert counts["anomaly_scored"] == 0 and "no imaging anomaly score fitted" in counts["notes"][0]


def test_slices_are_samples_of_the_fit_and_a_record_scores_their_aggregate(tmp_path: Path) -> None:
    """``image_input.slice: all``: every slice of a training volume is a sample of the density; a record's
    score is the checkpoint's aggregation (here max) of its slice distances."""
    import nibabel as nib

    from medmm.align.records import RecordRow
    from medmm.models.store import write_store
    from medmm.tables import write_table

    torch.set_num_threads(1)
    run = tmp_path / "run"
    (run / "vol").mkdir(parents=True)
    rng = np.random.default_rng(0)
    n, n_slices = 16, 3
    vols, rows = [], []
    for i in range(n):
        data = rng.normal(100, 10, (8, 8, n_slices)).astype(np.float32)
        data[2:5, 2:5, :] += 60 * (i % 2)
        nib.save(nib.Nifti1Image(data, np.eye(4)), run / "vol" / f"v{i}.nii.gz")
        vols.append({"volume_id": f"vol-{i}", "path": f"vol/v{i}.nii.gz", "modality": "MR"})
        rows.append(
            RecordRow(
                record_id=f"rec-{i:02d}",
                patient_id=f"pat-{i:02d}",
                study_id=f"stu-{i:02d}",
                image_id=f"vol-{i}" if i < n - 1 else None,  # the last record has only its report
                report_id=f"rep-{i}",
                has_image=i < n - 1,
                has_report=True,
                labels=json.dumps({"abnormal": i % 2}),
            )
        )
    pd.DataFrame(vols).to_parquet(run / "volumes.parquet")
    write_store(run / "inputs" / "report", [f"rep-{i}" for i in range(n)], np.eye(n, 4, dtype=np.float32))
    write_table(rows, run / "records.parquet", RecordRow)
    cfg = {
        "run_dir": str(run),
        "out_dir": str(tmp_path / "m"),
        "fusion": "sum",
        "embed_dim": 4,
        "modalities": {"image": {"out_dim": 4}, "report": {"out_dim": 4}},
        "tasks": [{"name": "dx", "labels": ["abnormal"]}],
        "image_input": {"size": 8, "slice": "all"},
        "train": {"epochs": 1, "batch_size": 8, "progress": False, "n_boot": 0, "val_fraction": 0.1},
    }
    train_from_config(TrainConfig.model_validate(cfg), slice_aggregation="max")
    ckpt = tmp_path / "m" / "model.pt"
    a, _ = load_embedding_anomaly(ckpt)
    assert a is not None and a.aggregation == "max"
    splits = pd.read_parquet(tmp_path / "m" / "splits.parquet")
    records = pd.read_parquet(run / "records.parquet")
    train = records[records["record_id"].isin(splits.loc[splits["split"] == "train", "record_id"])]
    assert a.density.n_fit == n_slices * int(train["has_image"].sum())
    model, config, meta = load_model(ckpt)
    stores = open_sources(config, run, meta["modalities"], records, "volumes", absent_ok=True)
    x, rec = image_representations(model, records, stores)
    assert len(x) == n_slices * (n - 1)
    want = pd.Series(a.score(x), index=rec).groupby(level=0).max()
    from medmm.predict.predict import predict_run

    predict_run(ckpt, run, tmp_path / "p.parquet")
    pred = pd.read_parquet(tmp_path / "p.parquet").set_index("record_id")
    got = pred["embedding_anomaly_score"]
    assert np.allclose(got[want.index].to_numpy(), want.to_numpy())
    assert pd.isna(got[f"rec-{n - 1:02d}"]) and (pred["n_slices"].dropna() == n_slices).all()


def test_a_validation_image_seen_in_training_is_not_used_to_calibrate(trained: tuple[Path, Path]) -> None:
    """Its distance would be in-sample (too small), so the threshold too low; records sharing an image
    within the training split each count (the density models the records' population)."""
    run, ckpt = trained
    model, config, meta = load_model(ckpt)
    records = pd.read_parquet(run / "records.parquet")
    records = records[records["has_image"]].reset_index(drop=True)
    stores = open_sources(config, run, meta["modalities"], records, "arrays", absent_ok=True)
    train, val = records.iloc[:30], records.iloc[30:]
    leaked = pd.concat([val, train.iloc[:5].assign(record_id="v-" + train["record_id"].iloc[:5])])
    a, _ = fit_on_split(model, train, val, stores)
    b, _ = fit_on_split(model, train, leaked, stores)
    assert a is not None and b is not None and a.calibration_source == "validation"
    assert np.array_equal(b.calibration, a.calibration)
    copies = pd.concat([train, train.iloc[:10].assign(record_id=train["record_id"].iloc[:10] + "-copy")])
    c, _ = fit_on_split(model, copies, val, stores)
    assert c is not None and c.density.n_fit == 40
