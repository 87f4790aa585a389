"""Header values that must not reach a reason or an output (privacy audit, session 9: R2, R3, R9)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from medmm.imaging.dicom_header import read_dicom_header
from medmm.imaging.errors import DicomHeaderError

_CT = Path(str(pydicom.data.get_testdata_file("CT_small.dcm", download=False)))


def _with_raw(tmp_path: Path, tag: int, vr: str, value: bytes, name: str = "x.dcm") -> Path:
    """CT_small.dcm with element ``tag`` written raw (pydicom refuses some values when set)."""
    ds = pydicom.dcmread(str(_CT))
    ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, True, True)
    path = tmp_path / name
    ds.save_as(path)
    return path


@pytest.mark.parametrize("value", [b"Smith^John", b"1961-03-17", b"MRN4471923"])
def test_malformed_ds_value_is_not_quoted(tmp_path: Path, value: bytes) -> None:
    path = _with_raw(tmp_path, 0x00180050, "DS", value + b" " * (len(value) % 2))
    with pytest.raises(DicomHeaderError) as err:
        read_dicom_header(path, "x.dcm")
    text = str(err.value)
    assert "SliceThickness (VR DS): not a decimal number (value not shown)" in text
    assert value.decode() not in text and "Smith" not in text and "1961" not in text


def test_decimal_comma_is_shown_with_the_fix(tmp_path: Path) -> None:
    path = _with_raw(tmp_path, 0x00180050, "DS", b"2,5 ")
    with pytest.raises(DicomHeaderError, match=r"SliceThickness \(VR DS\): '2,5' has a decimal comma"):
        read_dicom_header(path, "x.dcm")


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("bad", [b"Smith^John", b"JOHN SMITH"])  # the upper-case one was kept
def test_modality_that_is_no_code_string_is_not_kept(tmp_path: Path, fast: bool, bad: bytes) -> None:
    from medmm.imaging.dicom_header import _summarise

    path = _with_raw(tmp_path, 0x00080060, "CS", bad)
    with path.open("rb") as fh:
        inst = _summarise(fh, "x.dcm", path.stat().st_size, fast=fast)
    assert (inst.modality, inst.modality_invalid) == ("", True)
    ok = _with_raw(tmp_path, 0x00080060, "CS", b"MR", "ok.dcm")
    with ok.open("rb") as fh:
        inst = _summarise(fh, "ok.dcm", ok.stat().st_size, fast=fast)
    assert (inst.modality, inst.modality_invalid) == ("MR", False)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(("value", "flag"), [(b"YES ", True), (b"NO", False), (None, False)])
def test_burned_in_annotation_is_read(tmp_path: Path, fast: bool, value: bytes | None, flag: bool) -> None:
    from medmm.imaging.dicom_header import _summarise

    path = _with_raw(tmp_path, 0x00280301, "CS", value) if value is not None else tmp_path / "x.dcm"
    if value is None:
        path.write_bytes(_CT.read_bytes())
    with path.open("rb") as fh:
        first = _summarise(fh, "x.dcm", path.stat().st_size, fast=fast)
    with path.open("rb") as fh:  # the second read of the same header comes from the series memo
        again = _summarise(fh, "x.dcm", path.stat().st_size, fast=fast)
    assert first.burned_in_annotation is flag and again.burned_in_annotation is flag


def test_burned_in_flag_is_per_file_not_per_series(tmp_path: Path) -> None:
    """Two slices with the same header signature: the memo must not carry one's flag to the other."""
    plain = tmp_path / "a.dcm"
    plain.write_bytes(_CT.read_bytes())
    marked = _with_raw(tmp_path, 0x00280301, "CS", b"YES ", "b.dcm")
    assert read_dicom_header(plain, "a.dcm").burned_in_annotation is False
    assert read_dicom_header(marked, "b.dcm").burned_in_annotation is True
    assert read_dicom_header(plain, "a.dcm").burned_in_annotation is False
