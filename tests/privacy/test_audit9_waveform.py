"""Signals: a library's error message quoting a header value does not reach the manifest or the log.

* DICOM waveform with a SamplingFrequency that is no number (``Smith^John``): pydicom's conversion error
  ``could not convert string to float: 'Smith^John'`` became the reason "unexpected error while
  processing (...)", and the task raised, so every Dask worker logged the message (three tries).
* A WaveformSampleInterpretation that pydicom does not know: ``KeyError: (16, 'MRN4471923')``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from privacy_archive import identity_forms

import medmm.signals.pipeline as signals_pipeline
from medmm.pseudonym import Pseudonymizer
from medmm.signals.discover import RecordJob
from medmm.signals.pipeline import process_resumable, run_signals
from medmm.signals.process import Settings


def _waveform(path: Path, tag: int, vr: str, value: bytes) -> None:
    import pydicom
    import pydicom.data
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    ds = pydicom.dcmread(str(pydicom.data.get_testdata_file("waveform_ecg.dcm", download=False)))
    ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{tag % 7}"
    group = ds.WaveformSequence[0]
    group._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
    ds.save_as(path)


def _leaks(text: str) -> list[str]:
    forms = identity_forms("Smith^John") | identity_forms("MRN4471923")
    return [f for f in forms if f.lower() in text.lower()]


def test_waveform_header_values_not_in_reasons(tmp_path: Path, key_file: Path) -> None:
    inputs = tmp_path / "sig"
    inputs.mkdir()
    _waveform(inputs / "fs.dcm", 0x003A001A, "DS", b"Smith^John")  # SamplingFrequency
    _waveform(inputs / "interp.dcm", 0x54001006, "CS", b"MRN4471923")  # WaveformSampleInterpretation
    run_signals(inputs, tmp_path / "run", workers=0, key_file=key_file)
    manifest = pd.read_parquet(tmp_path / "run" / "manifest_signals.parquet")
    assert set(manifest["status"]) == {"quarantined"}
    reasons = {str(p): str(r) for p, r in zip(manifest["path"], manifest["reason"], strict=True)}
    assert reasons["fs.dcm"].startswith("InvalidSamplingRateError: fs.dcm")
    assert reasons["interp.dcm"].startswith("TruncatedSignalError: interp.dcm")
    assert _leaks(" ".join(reasons.values())) == []


def test_unforeseen_error_is_returned_and_its_value_hidden(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sig").mkdir()
    (tmp_path / "sig" / "v.csv").write_text("time,hr\n2024-01-01T00:00:00,60\n2024-01-01T00:00:01,61\n")

    def unforeseen(*args: object, **kwargs: object) -> None:
        raise ValueError("could not convert string to float: 'Smith^John'")

    monkeypatch.setattr(signals_pipeline, "process_record", unforeseen)
    job = RecordJob(record="v", kind="table", main="v.csv")
    # returned, not raised: a raised error is retried by Dask and logged by every worker
    got = process_resumable(job, str(tmp_path / "sig"), Settings(), Pseudonymizer(b"k" * 32), str(tmp_path))
    assert isinstance(got, ValueError)
    run_signals(tmp_path / "sig", tmp_path / "run", workers=0, key_file=key_file)
    reason = pd.read_parquet(tmp_path / "run" / "manifest_signals.parquet")["reason"].iloc[0]
    assert reason.startswith("ValueError: v.csv: unexpected error") and _leaks(reason) == []


def test_wfdb_header_error_hides_the_value_wfdb_quotes(tmp_path: Path) -> None:
    """wfdb's "time data '31/13/1980' does not match format" quoted the record's base date (was echoed)."""
    from medmm.signals.errors import HeaderError
    from medmm.signals.readers.wfdb_header import read_header

    (tmp_path / "rec.hea").write_text(
        "rec 1 360 100 10:00:00 31/13/1980\nrec.dat 16 200 11 1024 0 0 0 MLII\n"
    )
    with pytest.raises(HeaderError, match="unreadable WFDB header") as err:
        read_header(tmp_path / "rec.hea", "rec.hea")
    assert "1980" not in str(err.value) and "<value not shown>" in str(err.value)
