"""Standalone JPEG 2000 pictures (.jp2 JP2 files, .j2k/.j2c codestreams) are recognised by their magic
bytes and ingested as one-slice volumes with their stored values kept exactly (8/12/16-bit, signed);
truncated files are quarantined as truncated. Test files are made here with pylibjpeg-openjpeg's encoder
and Pillow's JPEG 2000 writer."""

from __future__ import annotations

import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import openjpeg
import pytest
from PIL import Image

from medmm.imaging.errors import CorruptImageError, ImageTooLargeError
from medmm.imaging.picture_grey import exact_channels
from medmm.imaging.picture_streams import j2k_codestream, j2k_problem
from medmm.imaging.raster import picture_to_volume, read_raster
from medmm.ingest.pipeline import ingest_archive
from medmm.ingest.sniff import Format, sniff_bytes, sniff_file
from medmm.schemas import validate_frame
from medmm.tables import read_table

RNG = np.random.default_rng(20261125)


def _grey(bits: int, signed: bool = False, shape: tuple[int, int] = (40, 36)) -> np.ndarray:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    dtype = np.uint8 if bits <= 8 else (np.int16 if signed else np.uint16)
    a = RNG.integers(lo, hi + 1, size=shape).astype(dtype)
    a[0, 0], a[0, 1] = lo, hi  # the full range, so that a rescale cannot hide
    return a


def _j2k(a: np.ndarray, bits: int, jp2: bool) -> bytes:
    return bytes(openjpeg.encode(a, bits_stored=bits, codec_format=1 if jp2 else 0))


def test_sniffed_by_magic_bytes_whatever_the_name(tmp_path: Path) -> None:
    g = _grey(12)
    jp2, j2k = _j2k(g, 12, jp2=True), _j2k(g, 12, jp2=False)
    assert jp2[:12] == b"\0\0\0\x0cjP  \r\n\x87\n" and j2k[:4] == b"\xff\x4f\xff\x51"
    assert sniff_bytes(jp2) == sniff_bytes(jp2[:4096])
    assert (sniff_bytes(jp2).format, sniff_bytes(jp2).note) == (Format.jpeg2000, "JP2 container")
    assert (sniff_bytes(j2k).format, sniff_bytes(j2k).note) == (Format.jpeg2000, "JPEG 2000 codestream")
    for name, data in (("scan.png", jp2), ("scan.dcm", j2k), ("noext", jp2)):
        (tmp_path / name).write_bytes(data)
        assert sniff_file(tmp_path / name).format == "jpeg2000", name
    assert sniff_bytes(b"\xff\x4f\xff\x52" + bytes(40)).format != Format.jpeg2000  # SOC without SIZ


@pytest.mark.parametrize(
    ("bits", "signed", "jp2"),
    [
        (8, False, False),
        (12, False, True),
        (12, False, False),
        (16, False, True),
        (16, True, False),
        (12, True, True),
        (10, False, True),
    ],
)
def test_grey_values_kept_exactly(tmp_path: Path, bits: int, signed: bool, jp2: bool) -> None:
    a = _grey(bits, signed)
    path = tmp_path / ("x.jp2" if jp2 else "x.j2k")
    path.write_bytes(_j2k(a, bits, jp2))
    pic = read_raster(path, path.name, "jpeg2000")
    assert pic.pixels.dtype == a.dtype, (pic.pixels.dtype, a.dtype)
    assert np.array_equal(pic.pixels, a)  # Pillow would give 4095 << 4 = 65520 for a 12-bit 4095
    assert (pic.format, pic.decoder) == ("jpeg2000", "pylibjpeg-openjpeg")
    assert pic.mode == f"1 x {bits}-bit {'signed' if signed else 'unsigned'}"
    assert pic.notes == [] and pic.grayscale == "stored as grayscale"
    assert read_raster(path, path.name).pixels.tolist() == a.tolist()  # found by magic bytes too


def test_pillow_written_grey_and_rgb(tmp_path: Path) -> None:
    g8, g16 = _grey(8), _grey(16)
    Image.fromarray(g8).save(tmp_path / "g8.jp2")
    Image.fromarray(g16).save(tmp_path / "g16.jp2")  # mode I;16
    assert np.array_equal(read_raster(tmp_path / "g8.jp2", "g8.jp2", "jpeg2000").pixels, g8)
    assert np.array_equal(read_raster(tmp_path / "g16.jp2", "g16.jp2", "jpeg2000").pixels, g16)
    same = np.repeat(g8[:, :, None], 3, axis=2)  # the usual X-ray export: R = G = B
    Image.fromarray(same).save(tmp_path / "grey_rgb.jp2")
    pic = read_raster(tmp_path / "grey_rgb.jp2", "grey_rgb.jp2", "jpeg2000")
    assert np.array_equal(pic.pixels, g8) and pic.grayscale.startswith("identical R, G, B")
    colour = RNG.integers(0, 256, size=(40, 36, 3)).astype(np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour.jp2", irreversible=False)
    pic = read_raster(tmp_path / "colour.jp2", "colour.jp2", "jpeg2000")
    want = np.asarray(Image.fromarray(colour).convert("L"))
    assert np.array_equal(pic.pixels, want) and any("converted to grayscale" in n for n in pic.notes)


def test_deep_colour_luma_matches_pillow_weights() -> None:
    rgb8 = RNG.integers(0, 256, size=(9, 7, 3)).astype(np.uint8)
    grey, how = exact_channels(rgb8, 8, notes := [])
    assert np.array_equal(grey, np.asarray(Image.fromarray(rgb8).convert("L"))) and "luma" in how
    assert notes and "grayscale" in notes[0]
    rgb12 = rgb8.astype(np.uint16) * 16  # 12-bit colour: the same weights at 12 bits
    assert np.abs(exact_channels(rgb12, 12, [])[0].astype(int) - grey.astype(int) * 16).max() <= 16
    with_alpha = np.dstack([rgb12[..., :1], np.full((9, 7, 1), 4095, np.uint16)])  # opaque 12-bit alpha
    assert exact_channels(with_alpha, 12, notes := [])[0].tolist() == rgb12[..., 0].tolist() and not notes
    with_alpha[0, 0, 1] = 0
    assert exact_channels(with_alpha, 12, notes := [])[0].shape == (9, 7) and "alpha" in notes[0]


def test_truncated_and_damaged_files_say_so(tmp_path: Path) -> None:
    a = _grey(12, shape=(64, 64))
    jp2, j2k = _j2k(a, 12, jp2=True), _j2k(a, 12, jp2=False)
    cases = {
        "half.jp2": (jp2[: len(jp2) // 2], "jp2c box declares"),
        "no_eoc.j2k": (j2k[:-2], "before its EOC"),
        "half.j2k": (j2k[: len(j2k) // 2], "before its EOC"),
        "header_only.j2k": (j2k[:60], "truncated"),
        "signature_only.jp2": (jp2[:40], "truncated"),
    }
    for name, (data, words) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CorruptImageError, match="truncated") as info:
            read_raster(tmp_path / name, name, "jpeg2000")
        assert words in str(info.value) and str(info.value).startswith(f"{name}: cannot decode the JPEG 2000")
        assert "Fix: copy the file again" in str(info.value)
    assert j2k_problem(j2k_codestream(jp2)[0]) == "" and j2k_problem(j2k) == ""


def test_declared_size_above_the_bomb_limit_is_refused(tmp_path: Path) -> None:
    data = bytearray(_j2k(_grey(8, shape=(32, 32)), 8, jp2=False))
    data[8:16] = (100_000).to_bytes(4, "big") * 2  # SIZ Xsiz, Ysiz: 10^10 pixels
    (tmp_path / "huge.j2k").write_bytes(bytes(data))
    with pytest.raises(ImageTooLargeError, match=r"huge\.j2k: JPEG 2000 picture declares 10000000000 pixels"):
        read_raster(tmp_path / "huge.j2k", "huge.j2k", "jpeg2000")


def test_ingest_jpeg2000_folder(tmp_path: Path) -> None:
    archive, run = tmp_path / "archive", tmp_path / "run"
    archive.mkdir()
    g12, s16 = _grey(12), _grey(16, signed=True)
    (archive / "cr12.jp2").write_bytes(_j2k(g12, 12, jp2=True))
    (archive / "signed.j2c").write_bytes(_j2k(s16, 16, jp2=False))
    (archive / "lying.png").write_bytes(_j2k(g12, 12, jp2=True))  # a JP2 named .png: content decides
    buf = io.BytesIO()
    Image.fromarray(np.repeat(_grey(8)[:, :, None], 3, axis=2)).save(buf, "JPEG2000")
    (archive / "rgb.jp2").write_bytes(buf.getvalue())
    whole = _j2k(g12, 12, jp2=True)
    (archive / "cut.jp2").write_bytes(whole[: len(whole) - 100])
    ingest_archive(archive, run, workers=1, processes=False, key_file=tmp_path / "k")
    m = read_table(run / "manifest.parquet").set_index("path")
    validate_frame(m.reset_index(), "manifest")
    assert sorted(m.index) == ["cr12.jp2", "cut.jp2", "lying.png", "rgb.jp2", "signed.j2c"]
    assert set(m["format"]) == {"jpeg2000"}
    assert (m.drop("cut.jp2")["status"] == "ingested").all(), m["reason"].to_dict()
    assert m.loc["cut.jp2", "status"] == "quarantined"
    assert m.loc["cut.jp2", "reason"].startswith(
        "CorruptImageError: cut.jp2: cannot decode the JPEG 2000 picture: the jp2c box declares"
    )
    v = read_table(run / "volumes.parquet")
    validate_frame(v, "volumes")
    by_source = {r.sources[0]: r for r in v.itertuples()}
    for source, want in (("cr12.jp2", g12), ("signed.j2c", s16), ("lying.png", g12)):
        rec = by_source[source]
        img = nib.load(run / rec.path)
        assert img.get_data_dtype() == want.dtype, source
        assert np.array_equal(np.asanyarray(img.dataobj), picture_to_volume(want)), source
        assert rec.orientation == "none" and rec.warnings[0].startswith("pixel spacing unknown")
        side = json.loads((run / rec.sidecar).read_text())
        assert side["picture"]["codec"] == "JPEG 2000" and side["picture"]["decoder"] == "pylibjpeg-openjpeg"
        assert side["spacing_known"] is False and side["source_format"] == rec.source_format
    assert json.loads((run / by_source["rgb.jp2"].sidecar).read_text())["picture"]["decoder"] == "Pillow"


def test_last_tile_part_of_unknown_length_with_padding() -> None:
    """Psot = 0 (the last tile-part runs to the end) is complete when EOC ends the codestream, also when
    a pad byte follows it (DICOM pads odd-length fragments); without EOC it is truncated."""
    code = bytearray(_j2k(_grey(8, shape=(32, 32)), 8, jp2=False))
    sot = code.index(b"\xff\x90")
    code[sot + 6 : sot + 10] = bytes(4)  # Psot = 0
    assert j2k_problem(bytes(code)) == ""
    assert j2k_problem(bytes(code) + b"\0") == "" and j2k_problem(bytes(code) + b"\xff") == ""
    assert "truncated" in j2k_problem(bytes(code[:-2]))
