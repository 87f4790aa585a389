"""The header summary decoded by FastHeader equals the one pydicom's own conversion gives, on real files."""

from __future__ import annotations

import warnings
from pathlib import Path

from medmm.errors import InputError, reason_of
from medmm.imaging import dicom_header
from medmm.imaging._element_stream import parse_stream
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


def _stream_parses(path: Path) -> bool:
    with path.open("rb") as fh:
        return parse_stream(fh, path.stat().st_size) is not None


def test_element_stream_reads_most_real_files(shared_data: Path) -> None:
    """The plain-case reader handles the common files (the others are read by pydicom)."""
    results = []
    for path in sorted((shared_data / "imaging" / "dicom2nifti_series").rglob("*.dcm")):
        results.append(_stream_parses(path))
    assert len(results) >= 40 and sum(results) / len(results) > 0.9


def test_truncated_and_long_headers_match_pydicom(shared_data: Path, tmp_path: Path) -> None:
    """Cut-off files, and headers longer than the first read, give pydicom's summary or error."""
    import pydicom

    sources = [
        shared_data / "imaging/pydicom_testfiles/test_files/CT_small.dcm",
        shared_data / "imaging/pydicom_testfiles/test_files/MR_small.dcm",
        next((shared_data / "imaging/dicom2nifti_series/siemens/anatomical/001").glob("*.dcm")),
        next((shared_data / "imaging/dicom2nifti_series/philips/anatomical/001").glob("*.dcm")),
    ]
    checked = 0
    for src in sources:
        data = src.read_bytes()
        assert _stream_parses(src), src
        # a header longer than the first 16 KB read: a large private element before the pixel data
        ds = pydicom.dcmread(src)
        ds.add_new(0x00291010, "OB", b"\x01" * 40_000)
        big = tmp_path / f"big_{src.name}"
        ds.save_as(big)
        variants = {"big": big.read_bytes()}
        pixel_at = data.rfind(b"\xe0\x7f\x10\x00")
        for cut in (140, 300, 700, pixel_at - 3, pixel_at + 6, pixel_at + 20, len(data) - 1):
            if 132 < cut < len(data):
                variants[f"cut{cut}"] = data[:cut]
        for name, blob in variants.items():
            path = tmp_path / f"{name}_{src.name}"
            path.write_bytes(blob)
            rel = f"x/{path.name}"
            assert _summary(path, rel, True) == _summary(path, rel, False), (src.name, name)
            checked += 1
        assert _stream_parses(big)
    assert checked >= 20
