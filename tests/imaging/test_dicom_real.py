"""Header reading, classification and bad-input errors on real DICOM files (pydicom test files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmm.imaging import DicomKind, assemble_series, read_dicom_header
from medmm.imaging.errors import DicomHeaderError, MissingTransferSyntaxError, TruncatedPixelDataError
from medmm.records import Status

TF = "imaging/pydicom_testfiles/test_files"


def _read(root: Path, name: str):  # type: ignore[no-untyped-def]
    rel = f"{TF}/{name}"
    return read_dicom_header(root / rel, rel)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("test-SR.dcm", DicomKind.sr),
        ("reportsi.dcm", DicomKind.sr),
        ("liver_1frame.dcm", DicomKind.seg),
        ("rtstruct.dcm", DicomKind.rt),
        ("rtplan.dcm", DicomKind.rt),
        ("rtdose.dcm", DicomKind.rt),
        ("waveform_ecg.dcm", DicomKind.waveform),
        ("dicomdirtests/DICOMDIR", DicomKind.dicomdir),
        ("CT_small.dcm", DicomKind.image),
        ("examples_ybr_color.dcm", DicomKind.multiframe_image),
    ],
)
def test_kinds(shared_data: Path, name: str, kind: DicomKind) -> None:
    assert _read(shared_data, name).kind is kind


def test_non_image_objects_become_outcomes(shared_data: Path) -> None:
    names = ["test-SR.dcm", "liver_1frame.dcm", "rtstruct.dcm", "waveform_ecg.dcm", "dicomdirtests/DICOMDIR"]
    out = assemble_series([_read(shared_data, n) for n in names])
    assert not out.stacks
    assert {o.status for o in out.outcomes.values()} == {Status.non_image}
    ecg = out.outcomes[f"{TF}/waveform_ecg.dcm"]
    assert ecg.kind is DicomKind.waveform and "signals stage" in ecg.reason


def test_header_fields_and_no_pixels_read(shared_data: Path) -> None:
    inst = _read(shared_data, "CT_small.dcm")
    assert (inst.rows, inst.columns, inst.modality) == (128, 128, "CT")
    assert inst.image_orientation is not None and len(inst.image_orientation) == 6
    assert inst.rescale_intercept == -1024.0 and inst.has_pixel_data
    assert inst.study_datetime is not None and inst.study_datetime[:2] in ("19", "20")
    assert inst.patient_key  # raw, used only for pseudonyms


def test_truncated_pixel_data(shared_data: Path) -> None:
    with pytest.raises(TruncatedPixelDataError, match=r"MR_truncated\.dcm: pixel data is truncated"):
        _read(shared_data, "MR_truncated.dcm")


def test_missing_transfer_syntax(shared_data: Path) -> None:
    with pytest.raises(MissingTransferSyntaxError, match="Transfer Syntax UID"):
        _read(shared_data, "meta_missing_tsyntax.dcm")


def test_not_dicom_and_empty(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(DicomHeaderError, match="not a DICOM file"):
        _read(shared_data, "rtplan.dump")
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(DicomHeaderError, match="empty"):
        read_dicom_header(empty, "empty.dcm")


def test_malformed_header(shared_data: Path, tmp_path: Path) -> None:
    # image pixel data without Rows/Columns/BitsAllocated
    with pytest.raises(DicomHeaderError, match="without Rows"):
        _read(shared_data, "nested_priv_SQ.dcm")
    # a header cut off inside an element (a truncated copy of CT_small)
    raw = (shared_data / TF / "CT_small.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(raw[:1500])
    with pytest.raises(DicomHeaderError, match="truncated inside element"):
        read_dicom_header(cut, "cut.dcm")
    cut.write_bytes(raw[:20000])  # cut inside the pixel data
    with pytest.raises(TruncatedPixelDataError, match="declares 32768 bytes"):
        read_dicom_header(cut, "cut.dcm")


def test_preamble_less_files(shared_data: Path) -> None:
    assert _read(shared_data, "ExplVR_LitEndNoMeta.dcm").kind is DicomKind.rt
    assert _read(shared_data, "ExplVR_BigEndNoMeta.dcm").sop_class_uid


def test_malformed_decimal_in_geometry(shared_data: Path, tmp_path: Path) -> None:
    raw = (shared_data / TF / "CT_small.dcm").read_bytes()
    bad = raw.replace(b"-158.135803\\-179.035797", b"-158.13x803\\-179.035797", 1)
    assert bad != raw
    (tmp_path / "bad.dcm").write_bytes(bad)
    with pytest.raises(
        DicomHeaderError, match=r"malformed value in ImagePositionPatient \(VR DS\): not a decimal number"
    ):
        read_dicom_header(tmp_path / "bad.dcm", "bad.dcm")
