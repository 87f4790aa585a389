"""The whole signals stage on real data: MIT-BIH beats vs reference, sample records, DICOM ECG, Dask, CLI."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.schemas import validate_frame
from medmm.signals.pipeline import TABLES, run_signals
from medmm.signals.process import Anchor, Settings

KEY = Pseudonymizer(bytes.fromhex("ab" * 32))
MS = "multi-segment/s25047/s25047-2704-05-04-10-44"


@pytest.fixture(scope="module")
def mitdb_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mitdb")
    run_signals(shared_data / "signals/mitdb_subset", out, workers=0, pseudonymizer=KEY)
    return out


@pytest.fixture(scope="module")
def sample_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    anchors = (Anchor(label="user", record="100", time_s=5.0),)
    settings = Settings(patient_from="folder", anchors=anchors, before_s=10.0, after_s=10.0)
    run_signals(
        shared_data / "signals/wfdb_sample_data", out, workers=0, pseudonymizer=KEY, settings=settings
    )
    return out


def test_mitdb_beats_carry_reference_symbols(shared_data: Path, mitdb_run: Path) -> None:
    import wfdb

    beats = pd.read_parquet(mitdb_run / "beats.parquet")
    assert sorted(beats["record"].unique()) == ["100", "102", "104", "105", "108", "114", "116", "121", "123"]
    for record, part in beats.groupby("record"):
        ann = wfdb.rdann(str(shared_data / "signals/mitdb_subset" / record), "atr")
        n_ref = int(np.isin(ann.symbol, list("NV")).sum())
        with_ref = (part["ref_symbol"] != "").mean()
        assert with_ref > 0.985, (record, with_ref)
        assert abs(len(part) - n_ref) / n_ref < 0.02, (record, len(part), n_ref)
        # native-rate sample indices: the matched reference beat is within 150 ms at 360 Hz
        assert np.array_equal(part["sample"].to_numpy(), np.rint(part["time_s"].to_numpy() * 360).astype(int))
    assert set(beats["ref_symbol"]) <= {"N", "V", ""} and (beats["ref_symbol"] == "V").sum() > 100


def test_mitdb_tables_match_schemas(mitdb_run: Path) -> None:
    for name in TABLES:
        frame = pd.read_parquet(mitdb_run / f"{name}.parquet")
        if len(frame) > 3000:
            frame = frame.sample(3000, random_state=0)
        validate_frame(frame, name)
    feats = pd.read_parquet(mitdb_run / "features.parquet")
    assert {"record", "channel", "sample", "qrs_width_s", "template_corr"} <= set(feats.columns)
    run = json.loads((mitdb_run / "run.json").read_text())["stages"]["signals"]
    assert run["counts"]["records"] == 9 and run["counts"]["quarantined"] == 0
    sig = pd.read_parquet(mitdb_run / "signals.parquet")
    assert (sig["ref_annotation"] == "atr").all() and (sig["ref_match_fraction"] > 0.985).all()
    assert (sig["ref_sensitivity"] > 0.98).all() and (sig["ref_ppv"] > 0.98).all()
    assert sig["mean_hr_bpm"].between(45, 100).all() and (sig["sdnn_ms"] > 0).all()


def test_windows_stay_inside_and_arrays_match(mitdb_run: Path) -> None:
    win = pd.read_parquet(mitdb_run / "windows.parquet")
    sig = pd.read_parquet(mitdb_run / "signals.parquet").set_index(["record", "channel"])
    n_out = np.ceil(sig["n_samples"] * sig["fs_out"] / sig["fs"]).astype(int)
    limit = n_out.loc[list(zip(win["record"], win["channel"], strict=True))].to_numpy()
    assert (win["start_sample"] >= 0).all() and (win["stop_sample"] <= limit).all()
    assert (win.groupby("record").size() == 180).all()  # 1800 s / 10 s windows
    row = win.iloc[7]
    arr = np.load(mitdb_run / row["path"], mmap_mode="r")
    assert arr.shape == (180, 2500) and arr.dtype == np.float32
    assert win["quality"].between(0, 1).all()


def test_sample_data_manifest_and_quarantine(shared_data: Path, sample_run: Path) -> None:
    root = shared_data / "signals/wfdb_sample_data"
    man = pd.read_parquet(sample_run / "manifest_signals.parquet").set_index("path")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert sorted(man.index) == files
    master = "multi-segment/p000878/p000878-2137-10-26-16-57.hea"
    assert man.loc[master, "reason"].startswith("MissingSegmentError: ")
    assert man.loc["multi-segment/s25047/3234460_0007.hea", "status"] == "companion"
    assert man.loc["100.atr", "status"] == "companion" and man.loc["test_edfann.edf", "status"] == "ingested"
    for name in TABLES:
        validate_frame(pd.read_parquet(sample_run / f"{name}.parquet").head(2000), name)


def test_pseudonymized_shifted_timeline(sample_run: Path) -> None:
    sig = pd.read_parquet(sample_run / "signals.parquet")
    assert sig["patient_id"].str.match(r"^pat-[0-9a-f]{20}$").all()
    row = sig[sig["record"] == "03700181"].iloc[0]
    shift = KEY.date_shift_days("03700181")
    assert datetime.fromisoformat(row["start"]) == datetime(1994, 8, 15, 17, 27, 45) - pd.Timedelta(
        days=shift
    )
    assert pd.isna(sig[sig["record"] == "3000003_0003"]["start"]).all()  # no date in the header
    ms = sig[sig["record"].isin([MS, MS + "n"])]
    assert ms["patient_id"].nunique() == 1 and ms["start_abs_s"].nunique() == 1  # --patient-from folder
    assert ms.set_index("channel").loc["HR", "role"] == "trend"


def test_multisegment_gaps_and_window_vitals(sample_run: Path) -> None:
    sig = pd.read_parquet(sample_run / "signals.parquet").set_index(["record", "channel"])
    assert sig.loc[(MS, "II"), "missing_fraction"] == pytest.approx(0.0487, abs=0.001)
    assert sig.loc[(MS, "ABP"), "missing_fraction"] > 0.8
    assert sig.loc[(MS, "II"), "n_segments"] == 18
    wv = pd.read_parquet(sample_run / "window_vitals.parquet")
    assert set(wv["record"]) == {MS} and {"HR", "SpO2"} <= set(wv["vital"])
    assert (wv["lag_s"].abs() <= 60).all()
    vit = pd.read_parquet(sample_run / "vitals.parquet")
    assert 30 < vit[vit["channel"] == "HR"]["value"].median() < 200  # the monitor reads 0 once unplugged


def test_anchored_windows_alarm_and_user(sample_run: Path) -> None:
    win = pd.read_parquet(sample_run / "windows.parquet")
    alarm = win[(win["record"] == "a103l") & (win["anchor"] != "")]
    assert set(alarm["anchor"]) == {"alarm:Asystole (False alarm)"} and (alarm["anchor_s"] == 300).all()
    assert (alarm["start_sample"] == 290 * 250).all() and (alarm["stop_sample"] == 310 * 250).all()
    user = win[(win["record"] == "100") & (win["anchor"] == "user")]
    assert len(user) == 2 and (user["pad_before"] == 5 * 250).all() and (user["start_sample"] == 0).all()
    arr = np.load(sample_run / user["path"].iloc[0])
    assert arr.shape == (1, 5000) and np.isnan(arr[0, :1250]).all() and np.isfinite(arr[0, 1250:]).all()
    ev = pd.read_parquet(sample_run / "events.parquet")
    assert {"edf+", "alarm", "annotation:atr"} <= set(ev["source"])


def test_dicom_ecg_serial_and_dask_agree(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    src = tmp_path / "in"
    src.mkdir()
    (src / "ecg.dcm").symlink_to(get_testdata_file("waveform_ecg.dcm"))
    serial, dask = tmp_path / "serial", tmp_path / "dask"
    run_signals(src, serial, workers=0, pseudonymizer=KEY)
    counts = run_signals(src, dask, workers=1, pseudonymizer=KEY)
    assert counts["ingested"] == 1 and counts["records"] == 1
    sig = pd.read_parquet(serial / "signals.parquet")
    assert len(sig) == 12 and set(sig["units"]) == {"mV"} and set(sig["format"]) == {"dicom-waveform"}
    beats = pd.read_parquet(serial / "beats.parquet")
    per_lead = beats.groupby("channel").size()
    assert len(per_lead) == 12 and per_lead.between(8, 16).all()  # 10 s of sinus rhythm
    for name in ("signals", "beats", "windows"):
        a, b = pd.read_parquet(serial / f"{name}.parquet"), pd.read_parquet(dask / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b)


def test_cli_ingest(tmp_path: Path, key_file: Path) -> None:
    from typer.testing import CliRunner

    from medmm.cli import app

    src = tmp_path / "in"
    src.mkdir()
    (src / "v.csv").write_text("time,HR\n2020-01-01 10:00:00,80\n2020-01-01 10:00:05,81\n")
    (src / "bad.csv").write_text("time,HR\n2020-01-01 10:00:10,80\n2020-01-01 10:00:05,81\n")
    out = tmp_path / "run"
    args = ["signals", "ingest", str(src), "--out", str(out), "--workers", "0", "--key-file", str(key_file)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "quarantined  1" in res.output and (out / "vitals.parquet").exists()
    res = CliRunner().invoke(app, [*args, "--strict"])
    assert res.exit_code == 1


def test_rerun_resumes_and_changes_invalidate(shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for ext in ("hea", "dat", "atr"):
        (src / f"100.{ext}").symlink_to(shared_data / f"signals/mitdb_subset/100.{ext}")
    (src / "v.csv").write_text("time,HR\n2020-01-01 10:00:00,80\n2020-01-01 10:00:05,81\n")
    out = tmp_path / "run"
    first = run_signals(src, out, workers=0, pseudonymizer=KEY)
    beats = pd.read_parquet(out / "beats.parquet")
    again = run_signals(src, out, workers=0, pseudonymizer=KEY)
    assert first["resumed"] == 0 and again["resumed"] == 2
    pd.testing.assert_frame_equal(beats, pd.read_parquet(out / "beats.parquet"))
    (src / "v.csv").write_text("time,HR\n2020-01-01 10:00:00,80\n2020-01-01 10:00:05,99\n")  # changed input
    third = run_signals(
        src,
        out,
        workers=0,
        pseudonymizer=KEY,
        settings=Settings(anchors=[{"label": "x", "record": "100", "time_s": 60.0}]),
    )
    assert third["resumed"] == 0  # new settings: everything recomputed
    assert pd.read_parquet(out / "vitals.parquet")["value"].tolist() == [80.0, 99.0]
    assert (pd.read_parquet(out / "windows.parquet")["anchor"] == "x").sum() == 1


def test_dicom_folder_only_waveforms_ingested(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "imaging/pydicom_testfiles"
    counts = run_signals(root, tmp_path, workers=0, pseudonymizer=KEY)
    man = pd.read_parquet(tmp_path / "manifest_signals.parquet")
    assert len(man) == sum(1 for p in root.rglob("*") if p.is_file()) == counts["quarantined"] + 1
    assert man[man["status"] == "ingested"]["path"].tolist() == ["test_files/waveform_ecg.dcm"]
    kinds = man[man["status"] == "quarantined"]["reason"].str.split(":").str[0]
    assert set(kinds) <= {"NotASignalError", "HeaderError"} and (kinds == "NotASignalError").sum() > 150
    sig = pd.read_parquet(tmp_path / "signals.parquet")
    assert sig["start"].iloc[0] < "2013-01-25" and sig["patient_id"].iloc[0] == KEY.id("642341", "patient")


def test_only_routed_files(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "imaging/pydicom_testfiles"
    counts = run_signals(root, tmp_path, workers=0, pseudonymizer=KEY, only=["test_files/waveform_ecg.dcm"])
    man = pd.read_parquet(tmp_path / "manifest_signals.parquet")
    assert man["path"].tolist() == ["test_files/waveform_ecg.dcm"] and counts["quarantined"] == 0


def test_settings_from_workflow_options(tmp_path: Path) -> None:
    from medmm.errors import ConfigError

    table = tmp_path / "anchors.csv"
    table.write_text("label,record,time_s,patient_id,time\nct,,,pat-1,2001-02-03T04:05:06\nvt,100,12.5,,\n")
    s = Settings(anchors=str(table))
    assert [(a.label, a.record, a.patient_id) for a in s.anchors] == [
        ("ct", None, "pat-1"),
        ("vt", "100", None),
    ]
    assert s.options()["anchors"][1]["time_s"] == 12.5
    with pytest.raises(ConfigError, match="patient_from"):
        Settings(patient_from="ward")
    table.write_text("record,time_s\n100,1\n")
    with pytest.raises(ConfigError, match="'label' column"):
        Settings(anchors=str(table))
