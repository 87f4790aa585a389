"""Stage tables (as imaging, reports and signals write them) -> align -> train -> predict, in CI time."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from medmm.cli import app
from medmm.imaging.records import VolumeRecord
from medmm.reports.records import ReportLabelRow, ReportManifestRow
from medmm.schemas import validate_frame
from medmm.signals.records import SignalRow, WindowRow
from medmm.signals.store import write_windows
from medmm.tables import write_table

N_PATIENTS = 16


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _make_run(run: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vols, reps, labels, sigs, wins = [], [], [], [], []
    for p in range(N_PATIENTS):
        pid, sid = f"pat-{p:02d}", f"stu-{p:02d}"
        sick = p % 2 == 1
        t0 = pd.Timestamp("2020-03-01T08:00:00") + pd.Timedelta(days=p)
        if p % 4 != 0:  # some patients have no image
            arr = rng.normal(0, 1, (12, 12, 5)).astype(np.float32) + (3.0 if sick else 0.0)
            rel = f"volumes/{pid}.nii.gz"
            (run / "volumes").mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(arr, np.eye(4)), str(run / rel))
            vols.append(
                VolumeRecord(
                    volume_id=f"vol-{p:02d}",
                    path=rel,
                    sidecar=rel + ".json",
                    shape=[12, 12, 5],
                    spacing=[1, 1, 1],
                    affine=np.eye(4).tolist(),
                    n_sources=1,
                    source_format="nifti",
                    patient_id=pid,
                    study_id=sid,
                    study_time=t0.isoformat(),
                    dtype="float32",
                )
            )
        reps.append(
            ReportManifestRow(
                path=f"r.csv#{p}",
                format="csv",
                status="ingested",
                report_id=f"rep-{p:02d}",
                patient_id=pid,
                study_id=sid,
            )
        )
        for f in ("effusion", "cardiomegaly"):
            status = "present" if (sick and f == "effusion") else "absent"
            labels.append(ReportLabelRow(report_id=f"rep-{p:02d}", finding=f, status=status, evidence=f))
        rec = f"ecg{p:02d}"
        sigs.append(
            SignalRow(
                record=rec,
                patient_id=pid,
                format="wfdb",
                channel="ECG",
                source_channel="MLII",
                kind="ecg",
                role="wave",
                units="mV",
                fs=100.0,
                fs_out=100.0,
                n_samples=400,
                duration_s=4.0,
                start=t0.isoformat(),
                start_abs_s=t0.timestamp(),
                n_segments=1,
                missing_fraction=0,
                flat_fraction=0,
                saturated_fraction=0,
            )
        )
        w = rng.normal(0, 0.1, (2, 200)).astype(np.float32)
        path = write_windows(run, rec, "ECG", w)
        for k in range(2):
            wins.append(
                WindowRow(
                    record=rec,
                    patient_id=pid,
                    channel="ECG",
                    window=k,
                    path=path,
                    row=k,
                    fs=100.0,
                    start_sample=200 * k,
                    stop_sample=200 * (k + 1),
                    pad_before=0,
                    pad_after=0,
                    start_s=2.0 * k,
                    start_abs_s=t0.timestamp() + 1800 + 2 * k,
                    anchor="",
                    anchor_s=None,
                    missing=0,
                    flat=0,
                    saturated=0,
                    wander=0,
                    noise=0,
                    quality=0.9,
                )
            )
    write_table(vols, run / "volumes.parquet", VolumeRecord)
    write_table(reps, run / "manifest_reports.parquet", ReportManifestRow)
    write_table(labels, run / "report_labels.parquet", ReportLabelRow)
    write_table(sigs, run / "signals.parquet", SignalRow)
    write_table(wins, run / "windows.parquet", WindowRow)


def test_align_train_predict(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _make_run(run)
    runner = CliRunner()
    res = runner.invoke(
        app, ["align", str(run), "--window", "2h", "--label-finding", "effusion", "--image-size", "16"]
    )
    assert res.exit_code == 0, res.output
    records = pd.read_parquet(run / "records.parquet")
    validate_frame(records, "records")
    assert len(records) == N_PATIENTS  # one study per patient: image, report and ECG joined
    assert records["has_report"].all() and records["has_signal"].all()
    assert records["has_image"].sum() == N_PATIENTS - N_PATIENTS // 4
    assert (records["patient_id"].str[4:] == records["study_id"].str[4:]).all()
    assert {json.loads(x)["effusion"] for x in records["labels"]} == {0, 1}
    assert np.load(run / "inputs" / "image" / "x.npy").shape[1:] == (1, 16, 16)

    cfg = {
        "run_dir": str(run),
        "out_dir": str(tmp_path / "model"),
        "fusion": "attention",
        "embed_dim": 8,
        "modalities": {m: {"out_dim": 8} for m in ("image", "report", "signal")},
        "tasks": [{"name": "diagnosis", "labels": ["effusion"]}],
        "train": {
            "epochs": 2,
            "batch_size": 4,
            "progress": False,
            "n_boot": 10,
            "val_fraction": 0.2,
            "test_fraction": 0.2,
        },
    }
    (tmp_path / "train_e2e.yaml").write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["train", str(tmp_path / "train_e2e.yaml")])
    assert res.exit_code == 0, res.output
    splits = pd.read_parquet(tmp_path / "model" / "splits.parquet")
    validate_frame(splits, "splits")

    res = runner.invoke(app, ["predict", str(run), "--model", str(tmp_path / "model" / "model.pt")])
    assert res.exit_code == 0, res.output
    pred = pd.read_parquet(run / "predictions.parquet")
    assert validate_frame(pred, "predictions") == N_PATIENTS
    assert set(pred["record_id"]) == set(records["record_id"])
    assert pred["model_sha256"].nunique() == 1 and len(pred["model_sha256"].iat[0]) == 64
    no_img = pred["modalities"] == "report+signal"
    assert no_img.sum() == N_PATIENTS // 4
    assert pred.loc[no_img, "weight_image"].isna().all()
    w = pred[["weight_image", "weight_report", "weight_signal"]].fillna(0).sum(axis=1)
    np.testing.assert_allclose(w, 1.0, atol=1e-5)
    assert json.loads((run / "run.json").read_text())["stages"]["predict"]["counts"]["records"] == N_PATIENTS


def test_predict_without_records_is_an_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["predict", str(tmp_path), "--model", str(tmp_path / "none.pt")])
    assert res.exit_code == 2
    assert "none.pt" in res.output
