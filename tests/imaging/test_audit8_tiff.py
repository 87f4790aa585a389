"""TIFF exports a demanding user meets (found auditing picture ingest): 32-bit unsigned samples came out
negative from 2**31 on (Pillow reads them into int32), a 64-bit float TIFF was reported as "truncated or
damaged" (Pillow cannot identify it; its header is fine), and a BigTIFF was not recognised at all."""

from __future__ import annotations

import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medmm.imaging.errors import CorruptImageError, UnsupportedImageError
from medmm.imaging.raster import picture_to_volume, read_raster
from medmm.ingest.pipeline import ingest_archive
from medmm.ingest.sniff import sniff_file
from medmm.tables import read_table


def _tiff(samples: np.ndarray, sample_format: int) -> bytes:
    """A minimal little-endian single-strip grey TIFF of ``samples`` (one row per picture row)."""
    height, width = samples.shape
    pixels = samples.astype(samples.dtype.newbyteorder("<")).tobytes()
    bits = samples.dtype.itemsize * 8
    tags = [(256, 3, width), (257, 3, height), (258, 3, bits), (259, 3, 1), (262, 3, 1), (273, 4, 0),
            (277, 3, 1), (278, 3, height), (279, 4, len(pixels)), (339, 3, sample_format)]  # fmt: skip
    data_at = 8 + 2 + 12 * len(tags) + 4
    out = bytearray(b"II*\0" + struct.pack("<IH", 8, len(tags)))
    for tag, kind, value in tags:
        value = data_at if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    return bytes(out + struct.pack("<I", 0) + pixels)


U32 = np.array([[0, 70_000], [2**31, 4_000_000_000]], dtype=np.uint32)


def test_unsigned_32bit_samples_kept(tmp_path: Path) -> None:
    (tmp_path / "u32.tif").write_bytes(_tiff(U32, 1))
    pic = read_raster(tmp_path / "u32.tif", "u32.tif", "tiff")
    assert pic.pixels.dtype == np.uint32 and pic.pixels.tolist() == U32.tolist()
    small = np.array([[0, 65535]], dtype=np.uint32)  # fits 16 bits: narrowed as before
    (tmp_path / "small.tif").write_bytes(_tiff(small, 1))
    assert read_raster(tmp_path / "small.tif", "small.tif").pixels.dtype == np.uint16
    signed = np.array([[-5, 2**31 - 1]], dtype=np.int32)
    (tmp_path / "s32.tif").write_bytes(_tiff(signed, 2))
    assert read_raster(tmp_path / "s32.tif", "s32.tif").pixels.tolist() == signed.tolist()


def test_float64_tiff_is_unsupported_not_damaged(tmp_path: Path) -> None:
    (tmp_path / "f64.tif").write_bytes(_tiff(np.array([[0.5, -1.25]]), 3))
    with pytest.raises(UnsupportedImageError) as info:
        read_raster(tmp_path / "f64.tif", "f64.tif", "tiff")
    text = str(info.value)
    assert text.startswith("f64.tif: TIFF picture stored as 64-bit floating-point samples, 1 per pixel")
    assert "not a damaged copy" in text and "truncated" not in text
    cut = _tiff(np.array([[0.5, -1.25]]), 3)[:12]  # the IFD itself is cut off: damaged, as before
    (tmp_path / "cut.tif").write_bytes(cut)
    with pytest.raises(CorruptImageError, match="truncated or damaged"):
        read_raster(tmp_path / "cut.tif", "cut.tif", "tiff")


def test_bigtiff_and_uint32_through_ingest(tmp_path: Path) -> None:
    root, run = tmp_path / "a", tmp_path / "run"
    root.mkdir()
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(grey).save(root / "big.tif", big_tiff=True)
    assert (root / "big.tif").read_bytes()[:4] == b"II+\0" and sniff_file(root / "big.tif").format == "tiff"
    (root / "u32.tif").write_bytes(_tiff(U32, 1))
    ingest_archive(root, run, workers=1, processes=False, key_file=tmp_path / "k")
    m = read_table(run / "manifest.parquet").set_index("path")
    assert dict(m["status"]) == {"big.tif": "ingested", "u32.tif": "ingested"}, m["reason"].to_dict()
    v = {r.sources[0]: r for r in read_table(run / "volumes.parquet").itertuples()}
    for name, want in (("big.tif", grey), ("u32.tif", U32)):
        img = nib.load(run / v[name].path)
        assert img.get_data_dtype() == want.dtype, name
        assert np.array_equal(np.asanyarray(img.dataobj), picture_to_volume(want)), name


def _tiff_pages(pages: list[tuple[np.ndarray, int]]) -> bytes:
    """A little-endian uint8 TIFF with one IFD per (picture, NewSubfileType) page, chained in order."""
    out = bytearray(b"II*\0" + struct.pack("<I", 8))
    for k, (pic, subfile) in enumerate(pages):
        height, width = pic.shape
        tags = [(254, 4, subfile), (256, 3, width), (257, 3, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
                (273, 4, 0), (277, 3, 1), (278, 3, height), (279, 4, pic.size)]  # fmt: skip
        ifd_at = len(out)
        data_at = ifd_at + 2 + 12 * len(tags) + 4
        out += struct.pack("<H", len(tags))
        for tag, kind, value in tags:
            value = data_at if tag == 273 else value
            packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
            out += struct.pack("<HHI", tag, kind, 1) + packed
        next_at = data_at + pic.size if k + 1 < len(pages) else 0
        out += struct.pack("<I", next_at) + pic.astype(np.uint8).tobytes()
    return bytes(out)


def test_thumbnails_do_not_make_a_multipage_tiff(tmp_path: Path) -> None:
    full = (np.arange(48 * 64) % 251).astype(np.uint8).reshape(48, 64)
    thumb = full[::4, ::4].copy()
    (tmp_path / "scan.tif").write_bytes(_tiff_pages([(full, 0), (thumb, 1), (thumb[::2, ::2].copy(), 1)]))
    pic = read_raster(tmp_path / "scan.tif", "scan.tif", "tiff")
    assert np.array_equal(pic.pixels, full)
    assert any("2 reduced-resolution copies" in n for n in pic.notes)
    (tmp_path / "pages.tif").write_bytes(_tiff_pages([(full, 0), (full, 0)]))  # two real pages: refused
    with pytest.raises(UnsupportedImageError, match=r"pages\.tif: multi-page TIFF with 2 frames"):
        read_raster(tmp_path / "pages.tif", "pages.tif", "tiff")
