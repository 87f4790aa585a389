"""The header summary decoded by FastHeader equals the one pydicom's own conversion gives, on real files."""

from __future__ import annotations

import warnings
from pathlib import Path

from medmm.errors import InputError, reason_of
from medmm.imaging import dicom_header
from medmm.imaging.dicom_header import looks_like_dicom


def _summary(path: Path, rel: str, fast: bool) -> object:
    size = path.stat().st_size
    with path.open("rb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return dicom_header._summarise(fh, rel, size, fast=fast).model_dump()
        except InputError as exc:
            return reason_of(exc)
        except Exception as exc:  # malformed headers: the same failure both ways
            return type(exc).__name__


def test_fast_header_equals_pydicom_conversion(shared_data: Path) -> None:
    compared = 0
    for path in sorted((shared_data / "imaging").rglob("*")):
        if not path.is_file() or path.is_symlink() or path.stat().st_size == 0:
            continue
        with path.open("rb") as fh:
            if not looks_like_dicom(fh.read(132)):
                continue
        rel = path.relative_to(shared_data).as_posix()
        fast, slow = _summary(path, rel, True), _summary(path, rel, False)
        assert fast == slow, rel
        compared += isinstance(fast, dict)
    assert compared > 200  # pydicom test files, dicom2nifti / dcm_qa series, TotalSegmentator CT
