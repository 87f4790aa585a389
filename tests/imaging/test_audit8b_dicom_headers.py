"""Header reading no longer quarantines good files or calls header-only files cut off:

* uncompressed YBR_FULL_422 holds 2 samples per pixel (not 3): pydicom's
  ``SC_ybr_full_422_uncompressed.dcm`` is read and ingested, values equal to pydicom's;
* Deflated Explicit VR Little Endian (``image_dfl.dcm``): its Pixel Data is found inside the deflate
  stream and the file is ingested; a cut deflate stream says so;
* a data set that ends cleanly without Pixel Data (pydicom's ``charset_files/chr*Multi.dcm``, nibabel's
  ``csa_slice_norm.dcm``) is a header-only ``non_image`` object, not a cut-off transfer; a file that ends
  a few bytes into a next element still is one.

Test files are the ones shipped with pydicom and nibabel."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medmm.imaging.dicom_header import HEADER_ONLY, read_dicom_header
from medmm.imaging.errors import DicomHeaderError, TruncatedPixelDataError
from medmm.imaging.records import DicomKind
from medmm.ingest.pipeline import ingest_archive
from medmm.tables import read_table

CHARSETS = Path(pydicom.__file__).parent / "data" / "charset_files"
HEADER_ONLY_FILES = [
    CHARSETS / "chrJapMulti.dcm",
    CHARSETS / "chrJapMultiExplicitIR6.dcm",
    CHARSETS / "chrKoreanMulti.dcm",
    Path(nib.__file__).parent / "nicom" / "tests" / "data" / "csa_slice_norm.dcm",
]


def _file(name: str) -> Path:
    found = get_testdata_file(name)
    assert found is not None, name
    return Path(found)


def test_ybr_full_422_uncompressed_is_complete() -> None:
    inst = read_dicom_header(_file("SC_ybr_full_422_uncompressed.dcm"), "ybr.dcm")
    assert inst.kind is DicomKind.image and inst.has_pixel_data
    assert (inst.rows, inst.columns, inst.samples_per_pixel) == (100, 100, 3)
    assert inst.photometric_interpretation == "YBR_FULL_422"


def test_ybr_full_422_cut_short_is_still_truncated(tmp_path: Path) -> None:
    raw = _file("SC_ybr_full_422_uncompressed.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(raw[:-100])
    with pytest.raises(TruncatedPixelDataError, match="declares 20000 bytes but the file holds only 19900"):
        read_dicom_header(cut, "cut.dcm")


def test_deflated_file_has_pixel_data() -> None:
    inst = read_dicom_header(_file("image_dfl.dcm"), "dfl.dcm")
    assert inst.kind is DicomKind.image and inst.has_pixel_data and inst.pixel_offset is None
    assert inst.transfer_syntax_uid == "1.2.840.10008.1.2.1.99"


def test_damaged_deflate_stream_says_so(tmp_path: Path) -> None:
    raw = _file("image_dfl.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(raw[:-500])
    with pytest.raises(
        DicomHeaderError, match=r"cut\.dcm: the deflate-compressed data set cannot be inflated"
    ):
        read_dicom_header(tmp_path / "cut.dcm", "cut.dcm")


@pytest.mark.parametrize("path", HEADER_ONLY_FILES, ids=lambda p: p.name)
def test_header_only_files_are_not_truncations(path: Path) -> None:
    assert "PixelData" not in pydicom.dcmread(path)  # the data set itself ends without one
    inst = read_dicom_header(path, path.name)
    assert inst.kind is DicomKind.other_non_image and not inst.has_pixel_data
    assert inst.kind_detail.endswith(HEADER_ONLY) and "Image Storage" in inst.kind_detail


def test_cut_right_before_pixel_data_vs_a_few_bytes_into_it(tmp_path: Path) -> None:
    raw = _file("CT_small.dcm").read_bytes()
    at = raw.index(b"\xe0\x7f\x10\x00")  # the Pixel Data element's tag
    (tmp_path / "clean.dcm").write_bytes(raw[:at])  # indistinguishable from a header-only object
    assert read_dicom_header(tmp_path / "clean.dcm", "clean.dcm").kind is DicomKind.other_non_image
    for k in (2, 4, 7):  # the next element's first bytes are there: a cut
        (tmp_path / "cut.dcm").write_bytes(raw[: at + k])
        with pytest.raises(TruncatedPixelDataError, match="ends before its Pixel Data, a few bytes into"):
            read_dicom_header(tmp_path / "cut.dcm", "cut.dcm")
    (tmp_path / "cut.dcm").write_bytes(raw[: at + 20])
    with pytest.raises(TruncatedPixelDataError, match="declares 32768 bytes"):
        read_dicom_header(tmp_path / "cut.dcm", "cut.dcm")


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm"])
def test_header_only_ending_in_an_undefined_length_sequence(tmp_path: Path, name: str) -> None:
    """A data set whose last element is an undefined-length sequence ends with its delimitation item;
    little endian (the element stream) and big endian (pydicom's reading). Stray bytes after it: a cut."""
    ds = pydicom.dcmread(_file(name))
    del ds.PixelData
    if 0xFFFCFFFC in ds:
        del ds[0xFFFCFFFC]  # data set trailing padding
    item = pydicom.Dataset()
    item.MACIDNumber = 1
    ds.DigitalSignaturesSequence = [item]  # (FFFA,FFFA), after Pixel Data's place
    ds["DigitalSignaturesSequence"].is_undefined_length = True
    ds.save_as(tmp_path / "sq.dcm")
    raw = (tmp_path / "sq.dcm").read_bytes()
    little = "bigendian" not in name
    assert raw[-8:] == (b"\xfe\xff\xdd\xe0" if little else b"\xff\xfe\xe0\xdd") + bytes(4)
    inst = read_dicom_header(tmp_path / "sq.dcm", "sq.dcm")
    assert inst.kind is DicomKind.other_non_image and inst.kind_detail.endswith(HEADER_ONLY)
    (tmp_path / "sq.dcm").write_bytes(raw + b"\xe0\x7f\x10")
    with pytest.raises(TruncatedPixelDataError, match="a few bytes into an element"):
        read_dicom_header(tmp_path / "sq.dcm", "sq.dcm")


def test_ingest_run(tmp_path: Path) -> None:
    archive, run = tmp_path / "archive", tmp_path / "run"
    archive.mkdir()
    shutil.copy(_file("SC_ybr_full_422_uncompressed.dcm"), archive / "ybr.dcm")
    shutil.copy(_file("image_dfl.dcm"), archive / "dfl.dcm")
    for path in HEADER_ONLY_FILES[:2] + HEADER_ONLY_FILES[-1:]:
        shutil.copy(path, archive / path.name)
    ingest_archive(archive, run, workers=1, processes=False, key_file=tmp_path / "k")
    m = read_table(run / "manifest.parquet").set_index("path")
    assert m.loc["ybr.dcm", "status"] == "ingested" and m.loc["dfl.dcm", "status"] == "ingested"
    for path in HEADER_ONLY_FILES[:2] + HEADER_ONLY_FILES[-1:]:
        assert m.loc[path.name, "status"] == "non_image", m.loc[path.name, "reason"]
        reason = m.loc[path.name, "reason"]
        assert reason.startswith("other_non_image: ") and "without pixel data: a header only" in reason
        assert "cut off" not in reason
    v = read_table(run / "volumes.parquet")
    by_source = {r.sources[0]: r for r in v.itertuples()}
    ybr = np.asanyarray(nib.load(run / by_source["ybr.dcm"].path).dataobj)
    want = pydicom.dcmread(archive / "ybr.dcm").pixel_array  # YBR converted to RGB, as documented
    assert ybr.shape == (100, 100, 1, 3)
    assert np.array_equal(ybr[:, ::-1, 0, :].transpose(1, 0, 2), want)
    dfl = np.asanyarray(nib.load(run / by_source["dfl.dcm"].path).dataobj)
    want = pydicom.dcmread(archive / "dfl.dcm").pixel_array
    assert dfl.shape == (512, 512, 1) and np.array_equal(dfl[:, ::-1, 0].T, want)
