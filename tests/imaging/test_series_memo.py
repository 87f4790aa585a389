"""Header summaries taken from the remembered fields of their series equal summaries decoded afresh."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from medmm.errors import InputError, reason_of
from medmm.imaging import _header_instance, dicom_header, read_dicom_header
from medmm.imaging.dicom_header import looks_like_dicom


def _fresh(path: Path, rel: str) -> object:
    dicom_header._SERIES_MEMO.clear()
    return _summary(path, rel)


def _summary(path: Path, rel: str) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return read_dicom_header(path, rel).model_dump()
        except InputError as exc:
            return reason_of(exc)


def _dicom_files(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink() or path.stat().st_size == 0:
            continue
        with path.open("rb") as fh:
            if looks_like_dicom(fh.read(132)):
                out.append(path)
    return out


def _count_hits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    hits = [0]
    from_memo = dicom_header._from_memo

    def counted(*args: object, **kwargs: object) -> object:
        hits[0] += 1
        return from_memo(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dicom_header, "_from_memo", counted)
    return hits


def test_remembered_series_fields_equal_fresh_summaries(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _dicom_files(shared_data / "imaging")
    fresh = {p: _fresh(p, p.relative_to(shared_data).as_posix()) for p in files}
    hits = _count_hits(monkeypatch)
    dicom_header._SERIES_MEMO.clear()
    for _ in range(2):  # in order (slices of a series one after another), then again with a full memo
        for path in files:
            assert _summary(path, path.relative_to(shared_data).as_posix()) == fresh[path], path
    assert hits[0] > 200


_CHANGES = {  # element -> (value in the middle slice, the summary field it changes)
    "SeriesDescription": ("other", "series_description"),
    "PixelSpacing": ([0.5, 0.5], "pixel_spacing"),
    "Rows": (128, "rows"),
    "ImageType": (["DERIVED", "SECONDARY"], "image_type"),
    "SOPClassUID": ("1.2.840.10008.5.1.4.1.1.2", "sop_class_uid"),
    "ContentTime": ("101010", "study_datetime"),  # per instance: the study time when no other date
}


@pytest.mark.parametrize("change", sorted(_CHANGES))
def test_changed_element_is_not_taken_from_the_memo(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Slices that differ in one element, shared or per instance: each summary is its own."""
    import pydicom

    src = next((shared_data / "imaging/dicom2nifti_series/siemens/anatomical/001").glob("*.dcm"))
    value, field = _CHANGES[change]
    paths = []
    for k in range(3):
        ds = pydicom.dcmread(src)
        ds.SOPInstanceUID = f"1.2.3.{k}"
        ds.ImagePositionPatient = [0.0, 0.0, float(k)]
        ds.InstanceNumber = k + 1
        if change == "ContentTime":
            ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ""
            ds.ContentDate, ds.ContentTime = "20200102", "090000"
        if k == 1:
            setattr(ds, change, value)
        path = tmp_path / f"s{k}.dcm"
        ds.save_as(path)
        paths.append(path)
    fresh = [_fresh(p, p.name) for p in paths]
    hits = _count_hits(monkeypatch)
    dicom_header._SERIES_MEMO.clear()
    got = [_summary(p, p.name) for p in paths]
    assert got == fresh
    first, middle, last = (g[field] for g in got)  # type: ignore[index]
    assert middle != first and last == first
    # per-instance elements are decoded for each slice: then both later slices come from the memo;
    # a changed shared element makes the middle slice's header a new one
    assert hits[0] == (2 if change == "ContentTime" else 1)
    assert [g["image_position"][2] for g in got] == [0.0, 1.0, 2.0]  # type: ignore[index]


def test_direct_construction_equals_model_construct(shared_data: Path) -> None:
    import pickle

    from medmm.imaging.records import DicomInstance

    path = shared_data / "imaging/pydicom_testfiles/test_files/CT_small.dcm"
    inst = read_dicom_header(path, "CT_small.dcm")
    values = dict(inst.__dict__)
    made = _header_instance._construct_all(dict(reversed(values.items())))  # any order in, field order out
    ref = DicomInstance.model_construct(_fields_set=_header_instance._ALL_FIELDS, **values)
    assert _header_instance._PLAIN_MODEL
    assert made == ref and made.model_dump() == ref.model_dump()
    assert list(made.__dict__) == list(DicomInstance.model_fields)
    assert made.model_fields_set == ref.model_fields_set and made.__pydantic_extra__ is None
    again = pickle.loads(pickle.dumps(made))
    assert again == ref and again.model_copy(update={"path": "x"}).path == "x"
    # not every field: model_construct (defaults filled in)
    few: dict[str, Any] = {"path": "p", "sop_instance_uid": "1"}
    partial = _header_instance._construct_all(dict(few))
    assert (
        partial.__dict__
        == DicomInstance.model_construct(_fields_set=_header_instance._ALL_FIELDS, **few).__dict__
    )
