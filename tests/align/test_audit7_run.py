"""Session 7 audit of ``medmm align`` on run directories: study times in mixed ISO forms, PVC labels of
unannotated records, label typos, no window left by --min-quality, unlinkable reports, option values,
and beat lookups that no longer scan every beat per window."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.align.inputs import _beat_features, image_items, signal_items
from medmm.align.pipeline import align_run
from medmm.errors import ConfigError

FS = 100.0


def _windows(run: Path, records: list[str], per_record: int = 2, quality: float = 0.9) -> pd.DataFrame:
    (run / "w").mkdir(parents=True, exist_ok=True)
    np.save(run / "w" / "x.npy", np.ones((4, 400), np.float32))
    n = len(records) * per_record
    k = np.tile(np.arange(per_record), len(records))
    w = pd.DataFrame(
        {
            "record": np.repeat(records, per_record),
            "patient_id": np.repeat([f"pat-{r}" for r in records], per_record),
            "channel": "ii",
            "window": k,
            "path": "w/x.npy",
            "row": np.arange(n) % 4,
            "fs": FS,
            "start_sample": k * 400,
            "stop_sample": k * 400 + 400,
            "start_s": k * 4.0,
            "start_abs_s": None,
            "anchor": "",
            "quality": quality,
        }
    )
    w.to_parquet(run / "windows.parquet")
    pd.DataFrame({"record": records, "channel": "ii", "kind": "ecg"}).to_parquet(run / "signals.parquet")
    return w


def _beats(run: Path, rows: list[tuple[str, float, str]]) -> None:
    pd.DataFrame(rows, columns=["record", "time_s", "ref_symbol"]).assign(
        channel="ii", rr_prev_s=0.8
    ).to_parquet(run / "beats.parquet")


def _reports(run: Path, patient: str | None = "pat-a") -> None:
    pd.DataFrame(
        {
            "path": ["r.csv#1", "r.csv#2"],
            "status": "ingested",
            "report_id": ["1", "2"],
            "patient_id": [patient, patient],
            "study_id": ["stu-1", "stu-2"],
        }
    ).to_parquet(run / "manifest_reports.parquet")
    pd.DataFrame(
        {
            "report_id": ["1", "1", "2"],
            "finding": ["effusion", "normal", "normal"],
            "status": ["present", "absent", "present"],
        }
    ).to_parquet(run / "report_labels.parquet")


def test_study_times_in_mixed_iso_forms_are_all_read(tmp_path: Path) -> None:
    times = ["2020-01-01T08:00:00", "2020-01-01T20:00:00.500000", "2020-01-02", "2020-01-02T10:00:00+02:00"]
    pd.DataFrame(
        {
            "volume_id": ["v1", "v2", "v3", "v4"],
            "path": "x.nii.gz",
            "patient_id": "p",
            "study_id": ["s1", "s2", "s3", "s4"],
            "study_time": times,
        }
    ).to_parquet(tmp_path / "volumes.parquet")
    (tmp_path / "x.nii.gz").touch()
    got = image_items(tmp_path)["time"].tolist()  # was: NaN (untimed study) for all but the first
    day = 1577836800.0  # 2020-01-01T00:00:00 UTC
    assert got == [day + 8 * 3600, day + 20 * 3600 + 0.5, day + 86400, day + 86400 + 8 * 3600]


def test_pvc_label_is_unknown_for_a_record_without_reference_annotations(tmp_path: Path) -> None:
    _windows(tmp_path, ["ann", "plain"])
    _beats(
        tmp_path,
        [("ann", 1.0, "N"), ("ann", 5.0, "V"), ("plain", 1.0, ""), ("plain", 5.0, "")],
    )
    _, labels = signal_items(tmp_path, pvc_label="pvc")
    assert labels["ann|ii|0"] == {"pvc": 0} and labels["ann|ii|1"] == {"pvc": 1}
    assert labels["plain|ii|0"] == {"pvc": None} and labels["plain|ii|1"] == {"pvc": None}  # was 0


def test_beat_lookups_match_a_brute_force_count_and_scale_linearly(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    records = [f"r{i:04d}" for i in range(5000)]
    w = _windows(tmp_path, records)
    n_b = 10
    bt = np.tile(np.sort(rng.uniform(0, 8, n_b)), len(records))
    bt[::7] = 4.0  # beats exactly on a window edge belong to the later window
    b = pd.DataFrame(
        {
            "record": np.repeat(records, n_b),
            "channel": "ii",
            "time_s": bt,
            "ref_symbol": np.where(rng.random(len(bt)) < 0.05, "V", "N"),
            "rr_prev_s": np.where(rng.random(len(bt)) < 0.1, np.nan, rng.uniform(0.5, 1.2, len(bt))),
        }
    ).sample(frac=1.0, random_state=0)
    b.to_parquet(tmp_path / "beats.parquet")
    t0 = time.process_time()
    _, labels = signal_items(tmp_path, pvc_label="pvc")
    feats = _beat_features(w, b)
    assert time.process_time() - t0 < 4.0  # was ~1 s per 1,000 windows (every beat scanned per window)
    for i in rng.choice(len(w), 40, replace=False):
        row = w.iloc[i]
        sel = b[
            (b["record"] == row["record"])
            & (b["time_s"] >= row["start_s"])
            & (b["time_s"] < row["start_s"] + 4)
        ]
        rr = sel["rr_prev_s"].dropna().to_numpy()
        want = [len(sel) / 4.0, rr.mean() if len(rr) else 0.0, rr.std() if len(rr) else 0.0]
        np.testing.assert_allclose(feats[i], want, rtol=1e-5, atol=1e-6)
        wid = f"{row['record']}|ii|{row['window']}"
        assert labels[wid] == {"pvc": int((sel["ref_symbol"] == "V").any())}


def test_a_label_finding_typo_is_refused(tmp_path: Path) -> None:
    _reports(tmp_path)
    with pytest.raises(ConfigError, match=r"did you mean 'effusion'\?"):
        align_run(tmp_path, label_findings=["efusion"])  # was: every record labelled 0
    from medmm.cli import app

    res = CliRunner().invoke(app, ["align", str(tmp_path), "--label-finding", "efusion"])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output
    # a lexicon finding that no report of this run mentions is a real, all-absent label
    align_run(tmp_path, label_findings=["pneumothorax"])
    rec = pd.read_parquet(tmp_path / "records.parquet")
    assert rec["labels"].tolist() == ['{"pneumothorax": 0}'] * 2


def test_no_window_passing_min_quality_is_not_a_crash(tmp_path: Path) -> None:
    _windows(tmp_path, ["a"], quality=0.2)
    _reports(tmp_path)
    counts = align_run(tmp_path, min_quality=0.5)  # was: KeyError 'record' (w[[]] selects no columns)
    assert counts["with_signal"] == 0 and counts["with_report"] == 2
    rec = pd.read_parquet(tmp_path / "records.parquet")
    assert not rec["has_signal"].any() and rec["signal_id"].isna().all()


def test_workflow_files_may_give_the_tolerance_as_a_duration(tmp_path: Path) -> None:
    _reports(tmp_path)
    align_run(tmp_path, tolerance_s="36h")  # was: TypeError deep in the join
    assert (
        json.loads((tmp_path / "run.json").read_text())["stages"]["align"]["options"]["tolerance_s"] == 129600
    )
    with pytest.raises(ConfigError, match="bad time tolerance '36 hours'"):
        align_run(tmp_path, tolerance_s="36 hours")


def test_reports_without_a_patient_id_are_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _reports(tmp_path, patient=None)
    counts = align_run(tmp_path)
    assert counts["reports_without_patient"] == 2 and counts["records"] == 0
    assert "--patient-column" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_dims": 4}, "--image-dims 4"),
        ({"image_size": 0}, "--image-size 0"),
        ({"min_quality": 1.5}, "--min-quality 1.5"),
        ({"label_findings": ["normal"], "pvc_label": "normal"}, "--pvc-label 'normal'"),
    ],
)
def test_option_values_that_cannot_work_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    _reports(tmp_path)
    with pytest.raises(ConfigError, match=message):
        align_run(tmp_path, **kwargs)
    assert not (tmp_path / "records.parquet").exists()


def test_a_file_gone_since_its_stage_ran_leaves_its_item_out(tmp_path: Path) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ones((4, 4, 2), np.float32), np.eye(4)), str(tmp_path / "v1.nii.gz"))
    pd.DataFrame(
        {
            "volume_id": ["v1", "v2"],
            "path": ["v1.nii.gz", "v2.nii.gz"],  # v2.nii.gz was deleted after ingest
            "patient_id": ["p1", "p2"],
            "study_id": ["s1", "s2"],
            "study_time": None,
        }
    ).to_parquet(tmp_path / "volumes.parquet")
    _windows(tmp_path, ["a", "b"])
    (tmp_path / "w" / "x.npy").rename(tmp_path / "w" / "moved.npy")
    counts = align_run(tmp_path, image_size=8)  # was: FileNotFoundError traceback
    assert counts["missing_image_files"] == 1 and counts["missing_signal_files"] == 4
    assert counts["with_image"] == 1 and counts["inputs_image"] == 1 and counts["with_signal"] == 0


def test_reports_missing_from_report_labels_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _reports(tmp_path)
    rl = pd.read_parquet(tmp_path / "report_labels.parquet")
    rl[rl["report_id"] == "1"].to_parquet(tmp_path / "report_labels.parquet")  # report 2's rows missing
    counts = align_run(tmp_path, label_findings=["effusion"])
    assert counts["reports_without_labels"] == 1 and "report_labels.parquet" in caplog.text
    rec = pd.read_parquet(tmp_path / "records.parquet").set_index("report_id")
    assert rec.loc["1", "labels"] == '{"effusion": 1}' and rec.loc["2", "labels"] == "{}"  # unknown, not 0
