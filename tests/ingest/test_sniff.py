"""Format sniffing and archive walking on crafted files (content decides, never the extension)."""

from __future__ import annotations

import gzip
import os
import random
import struct
from pathlib import Path

import pytest

from medmm.ingest.discover import pair_units, walk_archive
from medmm.ingest.sniff import Format, sniff_bytes, sniff_file
from medmm.ingest.tasks import scan_batch
from medmm.pseudonym import Pseudonymizer
from medmm.records import Status


def _nifti1(magic: bytes = b"n+1\0", endian: str = "<") -> bytes:
    hdr = bytearray(352)
    hdr[0:4] = struct.pack(f"{endian}i", 348)
    hdr[40:48] = struct.pack(f"{endian}hhhh", 3, 4, 4, 4)
    hdr[344:348] = magic
    return bytes(hdr)


def _analyze(endian: str = ">") -> bytes:
    hdr = bytearray(348)
    hdr[0:4] = struct.pack(f"{endian}i", 348)
    hdr[40:48] = struct.pack(f"{endian}hhhh", 3, 4, 4, 4)
    return bytes(hdr)


def _explicit_le_no_preamble() -> bytes:
    value = b"ISO_IR 100"
    return struct.pack("<HH", 0x0008, 0x0005) + b"CS" + struct.pack("<H", len(value)) + value


def _implicit_le_no_preamble() -> bytes:
    value = b"1.2.840.10008.5.1.4.1.1.2\0"
    return struct.pack("<HHI", 0x0008, 0x0016, len(value)) + value


def test_dicom_with_and_without_preamble() -> None:
    assert sniff_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL").format == Format.dicom
    explicit = sniff_bytes(_explicit_le_no_preamble())
    assert explicit.format == Format.dicom and "explicit VR little" in explicit.note
    implicit = sniff_bytes(_implicit_le_no_preamble())
    assert implicit.format == Format.dicom and "implicit VR" in implicit.note
    big = struct.pack(">HH", 0x0008, 0x0005) + b"CS" + struct.pack(">H", 10) + b"ISO_IR 100"
    assert "big endian" in sniff_bytes(big).note
    # a text file whose first bytes are not a DICOM tag is not DICOM
    assert sniff_bytes(b"DICM at the start is not enough").format == Format.text


def test_nifti_analyze_both_endiannesses() -> None:
    assert sniff_bytes(_nifti1()).format == Format.nifti1
    assert sniff_bytes(_nifti1(endian=">")).format == Format.nifti1
    assert sniff_bytes(_nifti1(b"ni1\0")).format == Format.nifti1_pair
    assert sniff_bytes(_analyze(">")).format == Format.analyze
    assert sniff_bytes(_analyze("<")).format == Format.analyze
    nifti2 = bytearray(544)
    nifti2[0:4] = struct.pack("<i", 540)
    nifti2[4:12] = b"n+2\0\r\n\x1a\n"
    assert sniff_bytes(bytes(nifti2)).format == Format.nifti2


def test_sniff_file_gzip_wrong_extension_and_corruption(tmp_path: Path) -> None:
    good = tmp_path / "scan.dat"  # a .nii.gz under a misleading name
    good.write_bytes(gzip.compress(_nifti1() + b"\0" * 128))
    assert sniff_file(good).format == "nifti1.gz"
    dicom_txt = tmp_path / "notes.txt"  # DICOM named .txt
    dicom_txt.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00")
    assert sniff_file(dicom_txt).format == Format.dicom
    corrupt = tmp_path / "broken.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00" + random.Random(0).randbytes(16) + b"\xff" * 200)  # seeded
    found = sniff_file(corrupt)
    assert found.format == Format.gzip and "corrupt" in found.error


def test_walk_pairs_links_and_scan_outcomes(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "brain.hdr").write_bytes(_analyze())
    (root / "sub" / "brain.img").write_bytes(b"\0" * 128)
    (root / "lonely.hdr").write_bytes(_analyze())
    (root / "empty.dcm").write_bytes(b"")
    (root / "junk.txt").write_text("free text, not an image\n")
    (root / "corrupt.nii.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 300)
    (root / "volume.nrrd").write_bytes(b"NRRD0004\ntype: short\n")
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(b"x")
    (root / "to_outside.dcm").symlink_to(outside)
    (root / "to_inside.txt").symlink_to(root / "junk.txt")
    (root / "dangling").symlink_to(root / "missing")
    os.mkfifo(root / "pipe")

    entries, link_rows = walk_archive(root)
    rels = [e.rel for e in entries]
    assert rels == sorted(rels) and "sub/brain.img" in rels
    by_link = {r.path: r for r in link_rows}
    assert by_link["to_outside.dcm"].status is Status.quarantined
    assert "outside the archive" in by_link["to_outside.dcm"].reason
    assert (
        by_link["to_inside.txt"].status is Status.duplicate and "junk.txt" in by_link["to_inside.txt"].reason
    )
    assert by_link["dangling"].status is Status.quarantined
    assert by_link["pipe"].reason.startswith("UnreadableInputError: pipe: not a regular file")
    assert set(rels).isdisjoint(by_link)
    assert pair_units(rels) == {"sub/brain.img": "sub/brain.hdr"}

    scanned = {s.row.path: s for s in scan_batch(entries, str(root), Pseudonymizer(b"k" * 32))}
    assert scanned["empty.dcm"].row.reason.startswith("EmptyFileError")
    assert scanned["junk.txt"].row.status is Status.non_image
    assert scanned["corrupt.nii.gz"].row.reason.startswith("CorruptGzipError")
    nrrd = scanned["volume.nrrd"].row
    assert (
        nrrd.status is Status.quarantined and nrrd.format == "nrrd" and "convert it to NIfTI" in nrrd.reason
    )
    assert scanned["sub/brain.hdr"].pending and scanned["lonely.hdr"].pending


def test_unreadable_file_is_quarantined(tmp_path: Path) -> None:
    root = tmp_path / "a"
    root.mkdir()
    secret = root / "locked.dcm"
    secret.write_bytes(b"\0" * 128 + b"DICM")
    secret.chmod(0)
    try:
        if os.access(secret, os.R_OK):
            pytest.skip("running as a user who can read mode-000 files (root)")
        entries, _ = walk_archive(root)
        (row,) = [s.row for s in scan_batch(entries, str(root), Pseudonymizer(b"k" * 32))]
        assert row.status is Status.quarantined and row.reason.startswith("UnreadableInputError")
    finally:
        secret.chmod(0o600)
