"""12-bit JPEG (JPEG Extended, transfer syntax 1.2.840.10008.1.2.4.51) and other JPEG beyond Pillow's
8 bits: decoded exactly where an installed decoder can (pylibjpeg-libjpeg), otherwise an accurate reason
(which decoders refuse it and how to convert it), never "truncated or damaged" for a complete stream.
A cut-off JPEG stream, which libjpeg decodes without an error, is reported as truncated.

Uses pydicom's shipped test files: JPGExtended.dcm (12-bit, decodable by pylibjpeg-libjpeg),
JPEG-lossy.dcm (the same picture, a stream libjpeg rejects), MR_small_jpeg_ls_lossless.dcm (16-bit JPEG-LS)
and SC_rgb_jls_lossy_line.dcm (colour JPEG-LS); standalone pictures are their frames saved as .jpg."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames

from medmm.imaging import assemble_series, convert_stack, read_dicom_header
from medmm.imaging.errors import (
    CorruptImageError,
    PixelDecodeError,
    TruncatedPixelDataError,
    UnsupportedImageError,
)
from medmm.imaging.picture_streams import jpeg_frame, jpeg_problem
from medmm.imaging.pixels import _raise_decode
from medmm.imaging.raster import read_raster
from medmm.ingest.pipeline import ingest_archive
from medmm.pseudonym import Pseudonymizer
from medmm.tables import read_table


def _ds(name: str) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(get_testdata_file(name))


def _frame(name: str) -> bytes:
    ds = _ds(name)
    return next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


def _reference(name: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(_ds(name).pixel_array)


def _convert(root: Path, rel: str, run: Path) -> object:
    inst = read_dicom_header(root / rel, rel)
    (stack,) = assemble_series([inst]).stacks
    return convert_stack(stack, [inst], root, run, Pseudonymizer(b"k" * 32))


def test_12bit_dicom_decoded_exactly(tmp_path: Path) -> None:
    src = Path(get_testdata_file("JPGExtended.dcm"))
    (tmp_path / "ct12.dcm").write_bytes(src.read_bytes())
    rec = _convert(tmp_path, "ct12.dcm", tmp_path / "run")
    import nibabel as nib

    vol = np.asanyarray(nib.load(tmp_path / "run" / rec.path).dataobj)  # type: ignore[attr-defined]
    ref = _reference("JPGExtended.dcm")
    assert ref.max() > 255  # 12-bit values, not scaled to 8 bits
    assert np.array_equal(vol[:, ::-1, 0].T, ref)  # no patient geometry: rows counted from the bottom


def test_undecodable_12bit_dicom_names_the_codec_not_damage(tmp_path: Path) -> None:
    src = Path(get_testdata_file("JPEG-lossy.dcm"))
    (tmp_path / "lossy.dcm").write_bytes(src.read_bytes())
    with pytest.raises(PixelDecodeError) as info:
        _convert(tmp_path, "lossy.dcm", tmp_path / "run")
    text = str(info.value)
    assert text.startswith("lossy.dcm: cannot decode pixel data: 12-bit JPEG pixel data (JPEG Extended")
    assert "Pillow decodes 8-bit JPEG only and pylibjpeg-libjpeg rejects this stream (libjpeg error" in text
    assert "not a cut-off copy" in text and "dcmdjpeg" in text and "gdcmconv --raw" in text
    assert "damaged" not in text and "install the decoder for this syntax" not in text


def test_missing_libjpeg_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from medmm.imaging.records import DicomInstance

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "libjpeg" else real(n, *a))
    inst = DicomInstance(
        path="a.dcm",
        sop_instance_uid="1",
        kind="image",
        bits_stored=12,
        transfer_syntax_uid="1.2.840.10008.1.2.4.51",
    )
    err = RuntimeError("pillow: Pillow does not support 'JPEG Extended' for samples with 12-bit precision")
    with pytest.raises(
        PixelDecodeError, match="pylibjpeg-libjpeg, which decodes 12-bit JPEG, is not installed"
    ):
        _raise_decode("a.dcm", inst, err)


@pytest.mark.parametrize(
    "name", ["JPGExtended.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_dcmtk.dcm"]
)
def test_cut_off_jpeg_frame_in_dicom_is_truncated_not_filled_in(tmp_path: Path, name: str) -> None:
    ds = _ds(name)
    frame = _frame(name)
    ds.PixelData = encapsulate([frame[: int(len(frame) * 0.6)]])  # the DICOM file is whole; the stream not
    ds.save_as(tmp_path / "cut.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filled = pydicom.dcmread(tmp_path / "cut.dcm").pixel_array  # libjpeg decodes it without an error
    assert filled.shape == _reference(name).shape
    with pytest.raises(
        TruncatedPixelDataError, match=r"cut\.dcm: pixel data is truncated or damaged: the stream"
    ):
        _convert(tmp_path, "cut.dcm", tmp_path / "run")


def test_jpeg_frame_and_stream_structure() -> None:
    j12 = _frame("JPGExtended.dcm")
    assert jpeg_problem(j12) == "" and jpeg_problem(_frame("MR_small_jpeg_ls_lossless.dcm")) == ""
    assert "before its end-of-image marker" in jpeg_problem(j12[:-3])
    assert jpeg_problem(b"\x89PNG").startswith("it does not start with")


def _pictures(root: Path) -> None:
    root.mkdir()
    (root / "cr12.jpg").write_bytes(_frame("JPGExtended.dcm"))
    (root / "lossy12.jpg").write_bytes(_frame("JPEG-lossy.dcm"))
    (root / "mr16.jls").write_bytes(_frame("MR_small_jpeg_ls_lossless.dcm"))
    (root / "colour.jls").write_bytes(_frame("SC_rgb_jls_lossy_line.dcm"))
    whole = _frame("JPGExtended.dcm")
    (root / "cut12.jpg").write_bytes(whole[: len(whole) // 2])


def test_standalone_12bit_and_jpeg_ls_pictures(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _pictures(root)
    frame = jpeg_frame(root / "cr12.jpg")
    assert frame is not None and (frame.precision, frame.components) == (12, 1) and not frame.pillow_decodes
    pic = read_raster(root / "cr12.jpg", "cr12.jpg", "jpeg")
    assert np.array_equal(pic.pixels, _reference("JPGExtended.dcm")) and pic.pixels.dtype == np.uint16
    assert (pic.decoder, pic.mode) == ("pylibjpeg-libjpeg", "1 x 12-bit unsigned")
    mr = read_raster(root / "mr16.jls", "mr16.jls")  # JPEG-LS, found by magic bytes
    assert np.array_equal(mr.pixels, _reference("MR_small_jpeg_ls_lossless.dcm").astype(np.uint16))
    with pytest.raises(UnsupportedImageError) as info:
        read_raster(root / "lossy12.jpg", "lossy12.jpg", "jpeg")
    text = str(info.value)
    assert text.startswith(
        "lossy12.jpg: 12-bit JPEG (extended sequential) picture that the installed decoders"
    )
    assert "not a cut-off copy" in text and "truncated" not in text
    with pytest.raises(
        CorruptImageError, match=r"cut12\.jpg: cannot decode the 12-bit JPEG .* before its end"
    ):
        read_raster(root / "cut12.jpg", "cut12.jpg", "jpeg")
    with pytest.raises(UnsupportedImageError, match=r"colour\.jls: 8-bit JPEG-LS picture with 3 colour"):
        read_raster(root / "colour.jls", "colour.jls", "jpeg")


def test_ingest_reasons_for_deep_jpeg_pictures(tmp_path: Path) -> None:
    root, run = tmp_path / "pics", tmp_path / "run"
    _pictures(root)
    ingest_archive(root, run, workers=1, processes=False, key_file=tmp_path / "k")
    m = read_table(run / "manifest.parquet").set_index("path")
    assert dict(m["status"]) == {
        "colour.jls": "quarantined",
        "cr12.jpg": "ingested",
        "cut12.jpg": "quarantined",
        "lossy12.jpg": "quarantined",
        "mr16.jls": "ingested",
    }
    assert m.loc["lossy12.jpg", "reason"].startswith("UnsupportedImageError: lossy12.jpg: 12-bit JPEG")
    assert m.loc["cut12.jpg", "reason"].startswith(
        "CorruptImageError: cut12.jpg: cannot decode the 12-bit JPEG"
    )
    assert all(". Fix: " in r for r in m["reason"] if r)


def _app1_exif(orientation: int) -> bytes:
    """The APP1 Exif segment Pillow writes for an EXIF orientation tag."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "JPEG", exif=exif)
    data = buf.getvalue()
    at = data.index(b"\xff\xe1")
    return data[at : at + 2 + int.from_bytes(data[at + 2 : at + 4], "big")]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied_to_12bit_jpeg(tmp_path: Path, orientation: int) -> None:
    """The exact (libjpeg) path turns the picture as the Pillow path does (PIL.ImageOps.exif_transpose)."""
    import io

    from PIL import Image, ImageOps

    stream = _frame("JPGExtended.dcm")
    (tmp_path / "cr.jpg").write_bytes(stream[:2] + _app1_exif(orientation) + stream[2:])
    pic = read_raster(tmp_path / "cr.jpg", "cr.jpg", "jpeg")
    ref = _reference("JPGExtended.dcm")
    index = np.arange(ref.size, dtype=np.int32).reshape(ref.shape)  # where each stored pixel goes
    buf = io.BytesIO()
    probe = Image.fromarray(index)
    exif = probe.getexif()
    exif[0x0112] = orientation
    probe.save(buf, "TIFF", exif=exif)
    turned = np.asarray(ImageOps.exif_transpose(Image.open(buf)))
    assert pic.exif_orientation == orientation and pic.pixels.shape == turned.shape
    assert np.array_equal(pic.pixels, ref.ravel()[turned])
    assert any(f"EXIF orientation {orientation} applied" in n for n in pic.notes)
