"""PNG/JPEG/TIFF pictures read as grayscale pixels: modes, EXIF orientation, bad files, no metadata."""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

from medmm.imaging.errors import UnsupportedImageError
from medmm.imaging.raster import CorruptImageError, ImageTooLargeError, picture_to_volume, read_raster

RNG = np.random.default_rng(0)


def _save(tmp_path: Path, name: str, im: Image.Image, **kw: object) -> Path:
    path = tmp_path / name
    im.save(path, **kw)
    return path


def test_8_bit_grayscale_is_exact(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 256, (30, 40), dtype=np.uint8)
    pic = read_raster(_save(tmp_path, "a.png", Image.fromarray(pixels)), "a.png", "png")
    assert pic.pixels.dtype == np.uint8 and np.array_equal(pic.pixels, pixels)
    assert pic.notes == [] and pic.mode == "L"


@pytest.mark.parametrize("name", ["x16.png", "x16.tif"])
def test_16_bit_grayscale_keeps_every_bit(tmp_path: Path, name: str) -> None:
    pixels = RNG.integers(0, 65536, (20, 25), dtype=np.uint16)
    pixels[0, 0], pixels[0, 1] = 0, 65535
    pic = read_raster(_save(tmp_path, name, Image.fromarray(pixels)), name)
    assert pic.pixels.dtype == np.uint16
    assert np.array_equal(pic.pixels, pixels)


def test_32_bit_integer_and_float_tiff(tmp_path: Path) -> None:
    ints = RNG.integers(0, 4000, (8, 9)).astype(np.int32)
    pic = read_raster(_save(tmp_path, "i.tif", Image.fromarray(ints, mode="I")), "i.tif", "tiff")
    assert pic.pixels.dtype == np.uint16 and np.array_equal(pic.pixels, ints)
    floats = RNG.random((8, 9)).astype(np.float32)
    pic = read_raster(_save(tmp_path, "f.tif", Image.fromarray(floats, mode="F")), "f.tif", "tiff")
    assert pic.pixels.dtype == np.float32 and np.array_equal(pic.pixels, floats)


def test_rgb_with_equal_channels_keeps_exact_values(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, (16, 12), dtype=np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    pic = read_raster(_save(tmp_path, "xray.png", Image.fromarray(rgb)), "xray.png", "png")
    assert np.array_equal(pic.pixels, grey)
    assert pic.mode == "RGB" and "identical R, G, B" in pic.grayscale and pic.notes == []


def test_colour_picture_gets_pillow_luma_and_a_note(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, (16, 12, 3), dtype=np.uint8)
    path = _save(tmp_path, "photo.png", Image.fromarray(rgb))
    pic = read_raster(path, "photo.png", "png")
    with Image.open(path) as im:
        expected = np.asarray(im.convert("L"))
    assert np.array_equal(pic.pixels, expected)
    assert any("converted to grayscale" in n for n in pic.notes)


def test_alpha_is_dropped_with_a_note_only_when_transparent(tmp_path: Path) -> None:
    rgba = np.zeros((6, 7, 4), dtype=np.uint8)
    rgba[..., :3] = 100
    rgba[..., 3] = 255
    opaque = read_raster(_save(tmp_path, "o.png", Image.fromarray(rgba)), "o.png")
    assert opaque.notes == [] and int(opaque.pixels.max()) == 100
    rgba[0, 0, 3] = 0
    seethrough = read_raster(_save(tmp_path, "t.png", Image.fromarray(rgba)), "t.png")
    assert any("alpha channel dropped" in n for n in seethrough.notes)
    la = Image.fromarray(rgba[..., [0, 3]], mode="LA")
    pic = read_raster(_save(tmp_path, "la.png", la), "la.png")
    assert np.array_equal(pic.pixels, rgba[..., 0]) and any("alpha" in n for n in pic.notes)


def test_palette_grey_is_exact_and_bilevel_is_0_255(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, (10, 11), dtype=np.uint8)
    pal = Image.fromarray(grey).convert("P")  # a grey palette: every entry has R = G = B
    pic = read_raster(_save(tmp_path, "p.png", pal), "p.png")
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "P"
        expected = np.asarray(im.convert("L"))
    assert np.array_equal(pic.pixels, expected) and "palette" in pic.grayscale
    bits = Image.fromarray(grey > 128)
    pic = read_raster(_save(tmp_path, "b.png", bits), "b.png")
    assert set(np.unique(pic.pixels).tolist()) <= {0, 255}
    assert np.array_equal(pic.pixels == 255, grey > 128)


def test_cmyk_jpeg_is_converted_with_a_note(tmp_path: Path) -> None:
    path = _save(tmp_path, "c.jpg", Image.new("CMYK", (8, 8), (0, 0, 0, 0)), quality=100)
    pic = read_raster(path, "c.jpg", "jpeg")
    assert pic.mode == "CMYK" and "CMYK converted" in pic.grayscale
    assert pic.pixels.shape == (8, 8) and int(pic.pixels.min()) > 240  # no ink = white


@pytest.mark.parametrize(
    ("orientation", "turn"), [(3, lambda p: p[::-1, ::-1]), (6, lambda p: np.rot90(p, -1))]
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, turn: object) -> None:
    stored = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(tmp_path, "r.png", Image.fromarray(stored), exif=exif)
    pic = read_raster(path, "r.png", "png")
    assert np.array_equal(pic.pixels, turn(stored))  # type: ignore[operator]
    with Image.open(path) as im:  # the same as a viewer (Pillow's own exif_transpose) shows it
        assert np.array_equal(pic.pixels, np.asarray(ImageOps.exif_transpose(im)))
    assert pic.exif_orientation == orientation
    assert any(f"EXIF orientation {orientation} applied" in n for n in pic.notes)


def test_multi_frame_pictures_are_refused(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (0, 100, 200)]
    apng = _save(tmp_path, "cine.png", frames[0], save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedImageError, match="animated PNG with 3 frames"):
        read_raster(apng, "cine.png", "png")
    tif = _save(tmp_path, "pages.tif", frames[0], save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedImageError, match="multi-page TIFF with 3 frames"):
        read_raster(tif, "pages.tif", "tiff")


def test_truncated_and_fake_pictures_are_corrupt(tmp_path: Path) -> None:
    noise = Image.fromarray(RNG.integers(0, 256, (64, 64), dtype=np.uint8))
    for name in ("cut.png", "cut.jpg"):
        full = _save(tmp_path, name, noise)
        full.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(CorruptImageError, match=f"^{name}: cannot decode the .* truncated or damaged"):
            read_raster(full, name)
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"\xff\xd8\xff" + b"garbage" * 10)
    with pytest.raises(CorruptImageError) as info:
        read_raster(fake, "fake.jpg", "jpeg")
    assert str(tmp_path) not in str(info.value)  # the reason names the file relative to the archive


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (its data holds one row)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(40_000, 40_000))  # 1.6 gigapixels declared, nothing stored
    with pytest.raises(ImageTooLargeError, match=r"^bomb\.png: PNG picture declares more pixels") as info:
        read_raster(path, "bomb.png", "png")
    assert "Fix: if it is a genuine picture" in str(info.value)


def test_no_metadata_reaches_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    im = Image.fromarray(np.zeros((5, 5), np.uint8))
    info = PngInfo()
    info.add_text("Patient", "Doe^John 4711")
    info.add_text("Comment", "Doe^John 4711", zip=True)
    info.add_itxt("Author", "Doe^John 4711")
    png = _save(tmp_path, "a.png", im, pnginfo=info)
    tif = _save(tmp_path, "a.tif", im, tiffinfo={270: "Doe^John 4711", 315: "Doe^John 4711"})
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("PIL").setLevel(logging.DEBUG)
        for path in (png, tif):
            pic = read_raster(path, path.name)
            assert "Doe" not in repr(pic)
    assert "Doe" not in caplog.text and "4711" not in caplog.text


def test_picture_to_volume_layout() -> None:
    pic = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    vol = picture_to_volume(pic)
    assert vol.shape == (3, 2, 1)
    assert vol[0, 1, 0] == 1  # top-left pixel: x = 0, y = top (rows counted from the bottom)
    assert vol[2, 0, 0] == 6  # bottom-right pixel
    assert np.array_equal(vol[:, ::-1, 0].T, pic)


def test_no_metadata_in_debug_logs_of_a_fresh_process(tmp_path: Path) -> None:
    """Pillow makes its TIFF logger when the plugin is first imported, inside the first read: a fresh
    worker with DEBUG logging must not print a tag's value either."""
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "a.tif", tiffinfo={270: "Doe^John 4711"})
    code = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
        "from medmm.imaging.raster import read_raster\n"
        f"print(read_raster(Path({str(tmp_path / 'a.tif')!r}), 'a.tif').pixels.shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(5, 5)" in done.stdout
    assert "Doe" not in done.stderr + done.stdout and "4711" not in done.stderr + done.stdout


def test_16_bit_colour_png_is_read_with_a_warning_about_lost_bits(tmp_path: Path) -> None:
    """Pillow decodes 48-bit RGB PNG to 8 bits per channel: the volume says so (grey 16-bit stays whole)."""
    h, w = 4, 5
    rgb = np.full((h, w, 3), 40000, dtype=">u2")  # a 16-bit grey X-ray saved as RGB48
    raw = b"".join(b"\0" + rgb[r].tobytes() for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )
    (tmp_path / "rgb48.png").write_bytes(png)
    pic = read_raster(tmp_path / "rgb48.png", "rgb48.png", "png")
    assert pic.pixels.dtype == np.uint8 and int(pic.pixels[0, 0]) == 40000 >> 8
    assert any(n.startswith("16-bit colour or grey+alpha picture") for n in pic.notes)
