"""One prediction per record with ``image_input.slice: all``: per-slice outputs are aggregated before the
metrics (bootstrap over records) and before ``predictions.parquet``; ``models compare`` reads images
through the same source selection as train / evaluate / predict.

A small run with ``volumes.parquet`` (8 tiny NIfTI volumes of 6 slices, 2 records without an image, a
report array for every record) is built once per module.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medmm.align.records import RecordRow
from medmm.errors import ConfigError
from medmm.models.config import TrainConfig
from medmm.models.metrics import evaluate_predictions
from medmm.models.store import write_store
from medmm.models.train import Predictions, aggregate_by_record
from medmm.schemas import validate_frame
from medmm.tables import write_table

N_SLICES = 6
N_IMAGES = 8
N_RECORDS = 10


@pytest.fixture(scope="module")
def volume_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Records ``rec-0..9`` of one patient each; ``rec-0..7`` have a volume (odd ones are brighter)."""
    root = tmp_path_factory.mktemp("slices") / "run"
    (root / "vol").mkdir(parents=True)
    rng = np.random.default_rng(0)
    vols = []
    for i in range(N_IMAGES):
        data = np.zeros((10, 10, N_SLICES), np.float32)
        data[2:8, 2:8, :] = 100 + rng.normal(0, 10, (6, 6, N_SLICES)) + 60 * (i % 2)
        nib.save(nib.Nifti1Image(data, np.eye(4)), root / "vol" / f"v{i}.nii.gz")
        vols.append({"volume_id": f"vol-{i}", "path": f"vol/v{i}.nii.gz", "modality": "MR"})
    pd.DataFrame(vols).to_parquet(root / "volumes.parquet")
    write_store(
        root / "inputs" / "report",
        [f"rep-{i}" for i in range(N_RECORDS)],
        rng.normal(0, 1, (N_RECORDS, 4)).astype(np.float32),
    )
    rows = [
        RecordRow(
            record_id=f"rec-{i}",
            patient_id=f"pat-{i}",
            study_id=f"stu-{i}",
            image_id=f"vol-{i}" if i < N_IMAGES else None,
            report_id=f"rep-{i}",
            has_image=i < N_IMAGES,
            has_report=True,
            labels=json.dumps({"abnormal": i % 2}),
        )
        for i in range(N_RECORDS)
    ]
    write_table(rows, root / "records.parquet", RecordRow)
    return root


def _config(run: Path, out: Path) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "run_dir": str(run),
            "out_dir": str(out),
            "fusion": "attention",
            "embed_dim": 4,
            "modalities": {"image": {"out_dim": 4}, "report": {"out_dim": 4}},
            "tasks": [{"name": "dx", "labels": ["abnormal"]}],
            "image_input": {"size": 8, "slice": "all"},
            "train": {"epochs": 1, "batch_size": 16, "progress": False, "n_boot": 30, "test_fraction": 0.3},
        }
    )


@pytest.fixture(scope="module")
def trained(volume_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from medmm.models.runner import train_from_config

    out = tmp_path_factory.mktemp("model")
    summary = train_from_config(_config(volume_run, out), slice_aggregation="max")
    return out / "model.pt", summary


def test_aggregate_by_record_mean_max_weights_and_order() -> None:
    ids = ["b", "a", "b", "c", "b"]
    probs = np.array([[0.1, 0.5], [0.7, 0.2], [0.3, 0.9], [0.4, 0.4], [0.8, 0.1]], np.float32)
    labels = np.array([[1, np.nan], [0, 1], [1, np.nan], [0, 0], [1, np.nan]], np.float32)
    weights = np.array([[0.2, 0.8], [0.5, 0.5], [0.4, 0.6], [1.0, 0.0], [0.6, 0.4]], np.float32)
    mean = aggregate_by_record(Predictions(ids, probs, labels, weights))
    assert mean.record_ids == ["b", "a", "c"]  # order of first appearance
    assert mean.n_samples is not None and mean.n_samples.tolist() == [3, 1, 1]
    np.testing.assert_allclose(mean.probs, [[0.4, 0.5], [0.7, 0.2], [0.4, 0.4]], rtol=1e-6)
    np.testing.assert_array_equal(mean.labels, labels[[0, 1, 3]])  # NaN labels stay NaN
    assert mean.weights is not None
    np.testing.assert_allclose(mean.weights, [[0.4, 0.6], [0.5, 0.5], [1.0, 0.0]], rtol=1e-6)
    top = aggregate_by_record(Predictions(ids, probs, labels, None), "max")
    np.testing.assert_allclose(top.probs, [[0.8, 0.9], [0.7, 0.2], [0.4, 0.4]])
    assert top.weights is None
    unique = aggregate_by_record(Predictions(["x", "y"], probs[:2], labels[:2], None))
    assert unique.record_ids == ["x", "y"] and np.array_equal(unique.probs, probs[:2])  # identity
    assert aggregate_by_record(Predictions([], probs[:0], labels[:0], None)).record_ids == []
    with pytest.raises(ConfigError, match="median"):
        aggregate_by_record(Predictions(ids, probs, labels, None), "median")


def test_bootstrap_resamples_records_not_slices() -> None:
    """Ten records of 50 identical slices: per-slice CIs would be far narrower than per-record ones."""
    rng = np.random.default_rng(1)
    y = np.array([0, 1] * 5, float)[:, None]
    p = np.clip(y * 0.3 + rng.random((10, 1)) * 0.7, 0, 1)
    per_slice = Predictions(
        [f"r{i}" for i in np.repeat(np.arange(10), 50)], np.repeat(p, 50, 0), np.repeat(y, 50, 0), None
    )
    agg = aggregate_by_record(per_slice)
    by_record = evaluate_predictions(agg.labels, agg.probs, ["a"], n_boot=200, seed=0)["a"]["auroc"]
    by_slice = evaluate_predictions(per_slice.labels, per_slice.probs, ["a"], n_boot=200, seed=0)["a"][
        "auroc"
    ]
    assert by_record["value"] == pytest.approx(by_slice["value"])  # same point estimate ...
    assert by_record["hi"] - by_record["lo"] > 2 * (by_slice["hi"] - by_slice["lo"])  # ... honest CI


def test_train_and_evaluate_metrics_are_per_record(
    trained: tuple[Path, dict], volume_run: Path, tmp_path: Path
) -> None:
    from medmm.models.checkpoint import load_checkpoint
    from medmm.models.data import MultimodalDataset
    from medmm.models.runner import evaluate_checkpoint, load_model
    from medmm.models.train import make_loader, predict_loader
    from medmm.models.volumes import open_sources

    ckpt, summary = trained
    n_test = summary["folds"][0]["n"]["test"]
    assert n_test >= 2
    assert load_checkpoint(ckpt)["meta"]["slice_aggregation"] == "max"
    result = evaluate_checkpoint(ckpt, volume_run, tmp_path / "eval", split="all")
    assert result["n"] == N_RECORDS and result["n_samples"] == N_IMAGES * N_SLICES + 2
    assert result["slice_aggregation"] == "max"  # the checkpoint's
    # the same numbers, CIs included, as the bootstrap over the per-record (max) predictions
    model, config, meta = load_model(ckpt)
    records = pd.read_parquet(volume_run / "records.parquet")
    stores = open_sources(config, volume_run, meta["modalities"], records, "volumes")
    ds = MultimodalDataset(records, stores, ["abnormal"])
    per_slice = predict_loader(model, make_loader(ds, 16, False, 0))
    assert len(per_slice.record_ids) == N_IMAGES * N_SLICES + 2
    agg = aggregate_by_record(per_slice, "max")
    assert evaluate_predictions(agg.labels, agg.probs, ["abnormal"], 30) == result["metrics"]
    mean = evaluate_checkpoint(
        ckpt, volume_run, tmp_path / "eval_mean", split="all", slice_aggregation="mean"
    )
    assert mean["slice_aggregation"] == "mean" and mean["n"] == N_RECORDS
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["n"] == N_RECORDS


def test_predict_writes_one_row_per_record_and_optional_slice_scores(
    trained: tuple[Path, dict], volume_run: Path, tmp_path: Path
) -> None:
    from medmm.predict.predict import predict_run, slice_table_path

    ckpt, _ = trained
    out = tmp_path / "pred.parquet"
    counts = predict_run(ckpt, volume_run, out=out, slice_aggregation="mean", slice_scores=True)
    pred = pd.read_parquet(out)
    validate_frame(pred, "predictions")
    assert counts["rows"] == len(pred) == N_RECORDS and pred["record_id"].is_unique
    assert counts["samples"] == N_IMAGES * N_SLICES + 2
    with_image = pred["modalities"] == "image+report"
    assert with_image.sum() == N_IMAGES
    assert (pred.loc[with_image, "n_slices"] == N_SLICES).all()
    assert (pred.loc[with_image, "slice_aggregation"] == "mean").all()
    assert (
        pred.loc[~with_image, "n_slices"].isna().all() and pred.loc[~with_image, "weight_image"].isna().all()
    )
    slices = pd.read_parquet(slice_table_path(out))
    validate_frame(slices, "slice_predictions")
    assert counts["slice_rows"] == len(slices) == N_IMAGES * N_SLICES
    assert sorted(slices.groupby("record_id")["slice"].apply(list).iloc[0]) == list(range(N_SLICES))
    score = pred.set_index("record_id")["score"]
    per_record = slices.groupby("record_id")["score"]
    np.testing.assert_allclose(per_record.mean(), score[per_record.mean().index], rtol=1e-5)
    assert per_record.max().nunique() > 1 or per_record.min().nunique() > 1  # real, varying scores
    top = predict_run(ckpt, volume_run, out=tmp_path / "top.parquet")  # checkpoint default: max
    top_pred = pd.read_parquet(tmp_path / "top.parquet").set_index("record_id")
    assert top["rows"] == N_RECORDS and not slice_table_path(tmp_path / "top.parquet").exists()
    np.testing.assert_allclose(per_record.max(), top_pred["score"][per_record.max().index], rtol=1e-5)
    run_json = json.loads((volume_run / "run.json").read_text())
    assert run_json["stages"]["predict"]["options"]["slice_aggregation"] == "max"


def test_predict_cli_slice_options(trained: tuple[Path, dict], volume_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medmm.cli import app

    ckpt, _ = trained
    out = tmp_path / "cli.parquet"
    args = ["predict", str(volume_run), "--model", str(ckpt), "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--slice-aggregation", "mean", "--slice-scores"])
    assert res.exit_code == 0, res.output
    assert "rows=10" in res.output and (tmp_path / "cli_slices.parquet").exists()
    res = CliRunner().invoke(app, [*args, "--slice-aggregation", "median"])
    assert res.exit_code == 2 and "median" in res.output


def test_compare_reads_volumes_through_the_monai_chain(volume_run: Path, tmp_path: Path) -> None:
    from medmm.models.checkpoint import load_checkpoint
    from medmm.models.compare import _config, _present, compare_models
    from medmm.predict.predict import predict_run

    settings = {"epochs": 1, "batch_size": 16, "n_boot": 10, "num_threads": 1, "seed": 0}
    volumes = {**settings, "image_input": {"size": 8, "slice": "all"}}
    out = tmp_path / "cmp"
    table = compare_models(volume_run, out, "abnormal", ["sum"], volumes)
    # the run has no inputs/image arrays: an image model exists only because volumes.parquet was read
    assert not (volume_run / "inputs" / "image").exists()
    assert set(table["model"]) == {"unimodal image", "unimodal report", "fusion sum"}
    meta = load_checkpoint(out / "unimodal_image" / "model.pt")["meta"]
    assert meta["input_sources"] == {"image": "volumes"} and meta["slice_aggregation"] == "mean"
    assert meta["config"]["image_input"]["slice"] == "all"
    assert meta["input_shapes"]["image"]["shape"] == [1, 8, 8]
    assert json.loads((out / "compare.json").read_text())["input_sources"]["image"] == "volumes"
    # n is records (slices aggregated), per test condition
    test = pd.read_parquet(out / "splits.parquet").query("split == 'test'")["record_id"]
    records = pd.read_parquet(volume_run / "records.parquet").set_index("record_id").loc[test]
    n = table.set_index(["model", "test_modalities"])["n_test"]
    assert n["fusion sum", "image+report"] == len(records) < int(records["has_image"].sum()) * N_SLICES
    assert n["fusion sum", "image"] == n["unimodal image", "image"] == int(records["has_image"].sum())
    # the compare checkpoint predicts through the same chain, one row per record
    counts = predict_run(out / "fusion_sum" / "model.pt", volume_run, out=tmp_path / "p.parquet")
    assert counts["rows"] == N_RECORDS and counts["samples"] == N_IMAGES * N_SLICES + 2
    # an explicit `arrays` source on a run without image arrays leaves the image out
    arrays = _config(
        volume_run, out, ["image", "report"], "sum", "abnormal", {"image_input": {"source": "arrays"}}
    )
    records_all = pd.read_parquet(volume_run / "records.parquet")
    assert _present(volume_run, records_all, arrays) == ["report"]
    assert _present(volume_run, records_all, _config(volume_run, out, ["image"], "sum", "abnormal", {})) == [
        "image",
        "report",
    ]


def test_evaluate_and_compare_cli_image_input_options(
    trained: tuple[Path, dict], volume_run: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from medmm.cli import app
    from medmm.models.checkpoint import load_checkpoint

    ckpt, _ = trained
    runner = CliRunner()
    ev = ["evaluate", "--model", str(ckpt), str(volume_run), "--split", "all"]
    res = runner.invoke(app, [*ev, "--out", str(tmp_path / "ev"), "--slice-aggregation", "max"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["slice_aggregation"] == "max" and metrics["n"] < metrics["n_samples"]
    cmp = ["models", "compare", str(volume_run), "--out", str(tmp_path / "cmp"), "--strategy", "sum"]
    cmp += ["--epochs", "1", "--n-boot", "10", "--threads", "1"]
    res = runner.invoke(app, [*cmp, "--image-input", "slice=all", "--image-input", "size=8"])
    assert res.exit_code == 0, res.output
    meta = load_checkpoint(tmp_path / "cmp" / "unimodal_image" / "model.pt")["meta"]
    assert meta["config"]["image_input"]["slice"] == "all"
    assert meta["input_shapes"]["image"]["shape"] == [1, 8, 8]
    res = runner.invoke(app, [*cmp, "--image-input", "slice"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output
    res = runner.invoke(app, [*cmp, "--image-input", "slice=sideways"])
    assert res.exit_code == 2 and "sideways" in res.output
