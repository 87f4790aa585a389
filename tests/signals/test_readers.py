"""Every record of the shared WFDB sample data, the EDF+ file and pydicom's ECG waveform."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from medmm.signals.channels import normalize_channel
from medmm.signals.errors import MissingSegmentError
from medmm.signals.readers import read_dicom_waveform, read_edf, read_tabular, read_wfdb

MS = "multi-segment/s25047/s25047-2704-05-04-10-44"

# record -> (channel names, native rates, samples of channel 0)
EXPECTED = {
    "100": (["MLII", "V5"], [360.0, 360.0], 650000),
    "03700181": (["MCL1", "ABP", "RESP"], [500.0, 125.0, 125.0], 300000),
    "3000003_0003": (["II", "V"], [125.0, 125.0], 1028),
    "a103l": (["II", "V", "PLETH"], [250.0] * 3, 82500),
    "mixedsignals": (
        ["II", "III", "V", "ABP", "PLETH", "RESP"],
        [249.89] * 3 + [124.945] * 2 + [62.4725],
        57600,
    ),
    "s0010_re": (
        ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6", "VX", "VY", "VZ"],
        [1000.0] * 15,
        38400,
    ),
    "test01_00s": (["ECG1", "ECG2", "ECG3", "ECG4"], [500.0] * 4, 4000),
    "v102s": (["II", "V", "PLETH", "RESP"], [250.0] * 4, 75000),
    MS: (["II", "V", "ABP"], [125.0] * 3, 543240),
    MS + "n": (["HR", "PULSE", "RESP", "SpO2", "NBPSys", "NBPDias", "NBPMean"], [1 / 60] * 7, 72),
}


@pytest.fixture(scope="module")
def sample_dir(shared_data: Path) -> Path:
    return shared_data / "signals" / "wfdb_sample_data"


@pytest.mark.parametrize("record", sorted(EXPECTED))
def test_every_wfdb_record(sample_dir: Path, record: str) -> None:
    names, rates, n0 = EXPECTED[record]
    rec = read_wfdb(sample_dir, record)
    assert [c.name for c in rec.channels] == names
    assert [c.fs for c in rec.channels] == pytest.approx(rates, rel=1e-9)
    assert rec.channels[0].data.size == n0
    assert all(c.data.dtype == np.float64 for c in rec.channels)
    assert rec.patient_key == ""  # WFDB has no patient id: the pipeline uses the record name


def test_physical_units_and_annotations(sample_dir: Path) -> None:
    rec = read_wfdb(sample_dir, "100")
    mlii = rec.channels[0]
    assert mlii.units == "mV" and -5 < np.nanmin(mlii.data) < np.nanmax(mlii.data) < 5
    assert mlii.adc_limits == pytest.approx((-5.12, 5.115))  # 11-bit ADC, zero 1024, gain 200
    atr = rec.annotations[0]
    assert atr.extension == "atr" and atr.sample.size == 2274 and atr.symbol[:2] == ["+", "N"]
    assert [a.extension for a in rec.annotations] == ["atr", "qrs"]


def test_start_times_from_headers(sample_dir: Path) -> None:
    assert read_wfdb(sample_dir, "03700181").start == datetime(1994, 8, 15, 17, 27, 45)
    no_date = read_wfdb(sample_dir, "3000003_0003")
    assert not no_date.start_has_date  # time without a date: no absolute timeline
    assert read_wfdb(sample_dir, MS).start == datetime(2704, 5, 4, 10, 44, 18, 529000)


def test_multisegment_gaps_are_nan_and_layout_kept(sample_dir: Path) -> None:
    rec = read_wfdb(sample_dir, MS)
    ii = rec.channels[0].data
    assert np.isnan(ii[:25740]).all()  # the leading "~" gap segment
    assert np.isfinite(ii[25740 : 25740 + 28637]).mean() > 0.99
    gaps = [s for s in rec.segments if s[2]]
    assert len(gaps) == 1 and gaps[0][:2] == pytest.approx((0.0, 25740 / 125))
    assert sum(s[1] for s in rec.segments) == pytest.approx(543240 / 125)
    abp = rec.channels[2].data
    assert np.isnan(abp).mean() > 0.8  # ABP only present in the last segments


def test_multisegment_with_missing_segment_is_an_input_error(sample_dir: Path) -> None:
    with pytest.raises(MissingSegmentError, match=r"3269321_0003\.hea is missing.*Fix: copy every segment"):
        read_wfdb(sample_dir, "multi-segment/p000878/p000878-2137-10-26-16-57")


def test_challenge_alarm_becomes_event(sample_dir: Path) -> None:
    (ev,) = read_wfdb(sample_dir, "v102s").events
    assert (ev.label, ev.onset_s, ev.source) == (
        "alarm:Ventricular_Tachycardia (False alarm)",
        300.0,
        "alarm",
    )


def test_edf_plus_annotations(sample_dir: Path) -> None:
    rec = read_edf(sample_dir, "test_edfann.edf")
    assert rec.channels == [] and rec.patient_key == "SN001"
    assert rec.start == datetime(2001, 1, 1, 23, 59, 30)
    labels = [e.label for e in rec.events]
    assert len(labels) > 800 and "Lights off@@EEG F4-A1" in labels
    assert rec.events[1].onset_s == 30.0 and rec.events[1].duration_s == 30.0


def test_edf_with_signals_round_trip(tmp_path: Path) -> None:
    import pyedflib

    fs = 256
    x = 100 * np.sin(2 * np.pi * 3 * np.arange(fs * 10) / fs)
    headers = [
        pyedflib.highlevel.make_signal_header(
            "EEG Fpz-Cz", dimension="uV", sample_frequency=fs, physical_min=-200, physical_max=200
        )
    ]
    pyedflib.highlevel.write_edf(
        str(tmp_path / "e.edf"), [x], headers, pyedflib.highlevel.make_header(patientcode="P7")
    )
    rec = read_edf(tmp_path, "e.edf")
    (ch,) = rec.channels
    assert ch.name == "EEG Fpz-Cz" and ch.fs == fs and ch.units == "uV" and ch.adc_limits == (-200.0, 200.0)
    assert np.allclose(ch.data, x, atol=0.01) and rec.patient_key == "P7"


@pytest.mark.parametrize("source", ["pydicom", "shared"])
def test_dicom_waveform_ecg(shared_data: Path, source: str) -> None:
    from pydicom.data import get_testdata_file

    path = (
        Path(get_testdata_file("waveform_ecg.dcm"))
        if source == "pydicom"
        else shared_data / "imaging/pydicom_testfiles/test_files/waveform_ecg.dcm"
    )
    rec = read_dicom_waveform(path.parent, path.name)
    assert [c.name for c in rec.channels] == ["I", "II", "III", "aVR", "aVL", "aVF"] + [
        f"V{i}" for i in range(1, 7)
    ]
    assert {c.fs for c in rec.channels} == {1000.0} and rec.channels[
        0
    ].data.size == 10000  # median beat skipped
    assert rec.channels[0].units == "uV" and rec.channels[0].data[0] == pytest.approx(100.0)
    assert rec.start == datetime(2013, 1, 25, 10, 59, 19) and rec.patient_key


def test_tabular_vitals(tmp_path: Path) -> None:
    (tmp_path / "v.csv").write_text(
        "patient_id,charttime,HR [bpm],SpO2 (%)\nP1,2020-01-01 10:00:00,80,97\nP1,2020-01-01 10:00:07,,96\n"
        "P1,2020-01-01 10:01:00,85,\n"
    )
    rec = read_tabular(tmp_path, "v.csv")
    hr, spo2 = rec.series
    assert (hr.name, hr.units, hr.t_s.tolist(), hr.values.tolist()) == (
        "HR",
        "bpm",
        [0.0, 60.0],
        [80.0, 85.0],
    )
    assert (spo2.name, spo2.t_s.tolist()) == ("SpO2", [0.0, 7.0])
    assert rec.patient_key == "P1" and rec.start == datetime(2020, 1, 1, 10, 0)


def test_tabular_parquet_seconds(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"time_s": [0.0, 1.5, 3.0], "ABP": [80.0, 82.0, 81.0]}).to_parquet(tmp_path / "v.parquet")
    rec = read_tabular(tmp_path, "v.parquet")
    assert rec.start is None and rec.format == "parquet"
    assert rec.series[0].name == "ABP" and rec.series[0].t_s.tolist() == [0.0, 1.5, 3.0]


def test_channel_synonyms() -> None:
    for raw, name in [
        ("Lead II", "II"),
        ("ii", "II"),
        ("AVF", "aVF"),
        ("ART", "ABP"),
        ("Pleth", "PLETH"),
        ("SaO2", "SpO2"),
        ("heart rate", "HR"),
        ("ML II", "MLII"),
        ("Lead V1 (Wilson)", "V1"),
    ]:
        assert normalize_channel(raw).name == name, raw
