"""Scan reasons that know pictures are read: text saved under a JPEG 2000 / JPEG-LS name is a missing
picture (quarantined, not ``non_image``); BMP, GIF and WebP exports are named with the fix (convert to
PNG), not "unrecognised binary content"; unknown binaries and raw data of other formats no longer say
that medmm reads DICOM, NIfTI and ANALYZE only."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmm.ingest.discover import Entry
from medmm.ingest.records import IngestManifestRow
from medmm.ingest.tasks import image_extension, other_picture, scan_batch
from medmm.pseudonym import Pseudonymizer
from medmm.records import Status

PZ = Pseudonymizer(b"k" * 32)


def _scan(root: Path, rel: str, data: bytes) -> IngestManifestRow:
    (root / rel).write_bytes(data)
    (scanned,) = scan_batch([Entry(rel, len(data), 0)], str(root), PZ)
    return scanned.row


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("cxr.jp2", "JPEG 2000"),
        ("cxr.J2K", "JPEG 2000"),
        ("cxr.j2c", "JPEG 2000"),
        ("cxr.jpx", "JPEG 2000"),
        ("cxr.jls", "JPEG-LS"),
        ("cxr.jfif", "JPEG"),
    ],
)
def test_text_named_like_a_picture_is_quarantined(tmp_path: Path, name: str, named: str) -> None:
    assert image_extension(name) == named
    row = _scan(tmp_path, name, b"<html>502 Bad Gateway</html>\n")
    assert row.status is Status.quarantined  # was non_image: "text file: not an imaging input"
    assert row.reason.startswith(
        f"UnsupportedFormatError: {name}: named like a {named} image but holds a text"
    )


def _picture(fmt: str) -> bytes:
    buf = io.BytesIO()
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(grey).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "name"), [("BMP", "BMP"), ("GIF", "GIF"), ("WEBP", "WebP")])
def test_bmp_gif_webp_are_named_with_the_fix(tmp_path: Path, fmt: str, name: str) -> None:
    data = _picture(fmt)
    assert other_picture(data[:4096]) == name
    row = _scan(tmp_path, "export.bin", data)
    assert row.status is Status.quarantined and row.kind == name.lower()
    assert row.reason.startswith(
        f"UnsupportedFormatError: export.bin: {name} picture: medmm ingest reads PNG, JPEG, TIFF and "
        f"JPEG 2000 pictures, not {name}. Fix: convert it to PNG"
    )
    assert "unrecognised binary content" not in row.reason


def test_other_picture_signatures() -> None:
    bmp_v5 = b"BM" + struct.pack("<IHHI", 1000, 0, 0, 138) + struct.pack("<I", 124)
    assert other_picture(bmp_v5) == "BMP"
    assert other_picture(b"BM" + bytes(40)) == ""  # "BM" text without a DIB header size
    assert other_picture(b"\xff\x0a\xfa\x7f") == "JPEG XL"
    assert other_picture(b"\0\0\0\x1cftypavif" + bytes(8)) == "HEIF/AVIF"
    assert other_picture(b"RIFF\0\0\0\0WAVEfmt ") == ""  # a RIFF that is not WebP


def test_unknown_binary_names_what_is_read(tmp_path: Path) -> None:
    row = _scan(tmp_path, "blob.bin", bytes(range(256)) * 4)
    assert row.status is Status.quarantined
    assert "not DICOM, NIfTI, ANALYZE or a PNG/JPEG/TIFF/JPEG 2000 picture (unrecognised binary" in row.reason
    assert "NIfTI or ANALYZE (" not in row.reason


def test_raw_data_of_a_format_not_read_names_what_is_read(tmp_path: Path) -> None:
    (tmp_path / "scan.PAR").write_text("# === DATA DESCRIPTION FILE ===\n")
    row = _scan(tmp_path, "scan.REC", bytes(range(256)) * 4)
    assert row.status is Status.quarantined
    assert "medmm ingest reads DICOM, NIfTI, ANALYZE and PNG/JPEG/TIFF/JPEG 2000 pictures only" in row.reason
    assert "ANALYZE only" not in row.reason
