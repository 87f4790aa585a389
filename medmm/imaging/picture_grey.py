"""Grey values of a decoded picture: what raster keeps exactly and what it converts (and says so).

:func:`pillow_grayscale` works on an opened Pillow image (PNG, JPEG, TIFF, 8-bit colour JPEG 2000);
:func:`exact_channels` on the samples a pylibjpeg plugin decoded (any bit depth). Both keep grey and
equal-channel colour exactly and convert other colour with the ITU-R 601-2 luma weights of Pillow's
``convert("L")``, adding a note that ends up in the volume's warnings.

>>> exact_channels(np.full((1, 2, 3), 4000, np.uint16), 12, [])  # R = G = B, 12-bit: kept
(array([[4000, 4000]], dtype=uint16), 'identical R, G, B channels: their common value kept')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medmm.imaging.errors import UnsupportedImageError

__all__ = [
    "colour_bits_lost",
    "drop_alpha",
    "exact_channels",
    "narrow_int32",
    "pillow_grayscale",
    "unsigned_32bit_tiff",
]


def narrow_int32(a: np.ndarray) -> np.ndarray:
    """32-bit integer pixels (Pillow mode ``I``) as uint16 / int16 when the values fit (unsigned 32-bit
    samples, given as uint32, stay uint32 when they do not)."""
    if a.size == 0:
        return a.astype(np.uint16)
    lo, hi = int(a.min()), int(a.max())
    for dtype in (np.uint16, np.int16):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return a.astype(dtype)
    return a.astype(np.uint32 if a.dtype == np.uint32 else np.int32)


def unsigned_32bit_tiff(im: Any, fmt: str) -> bool:
    """True for a TIFF of 32-bit unsigned integer samples (SampleFormat 1 or absent, BitsPerSample 32),
    which Pillow reads into a signed mode ``I`` array: values from 2**31 on come out negative."""
    if fmt != "tiff":
        return False
    tags = getattr(im, "tag_v2", {})
    bits = tags.get(258)
    bits = bits if isinstance(bits, tuple) else (bits,)
    sample_format = tags.get(339, 1)
    sample_format = sample_format[0] if isinstance(sample_format, tuple) else sample_format
    return bits == (32,) and sample_format == 1


def drop_alpha(arr: np.ndarray, notes: list[str]) -> None:
    alpha = arr[..., -1]
    if alpha.size and int(alpha.min()) < int(np.iinfo(arr.dtype).max):
        notes.append("alpha channel dropped: transparent pixels keep their stored grey value")


def pillow_grayscale(im: Any, fmt: str, rel: str, notes: list[str]) -> tuple[np.ndarray, str]:
    """(2D grayscale pixels, how they were obtained) of an opened, loaded Pillow image."""
    mode = im.mode
    if mode == "L":
        return np.asarray(im), "stored as grayscale"
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), "stored as 16-bit grayscale"
    if mode == "I":
        arr = np.asarray(im)
        if unsigned_32bit_tiff(im, fmt):  # Pillow holds unsigned 32-bit samples in int32: same bits
            return narrow_int32(arr.view(np.uint32)), "stored as 32-bit unsigned integer grayscale"
        return narrow_int32(arr), "stored as 32-bit integer grayscale"
    if mode == "F":
        return np.asarray(im).astype(np.float32), "stored as 32-bit float grayscale"
    if mode == "1":
        return np.asarray(im.convert("L")), "1-bit picture stored as 0 / 255"
    if mode in ("LA", "La"):
        arr = np.asarray(im.convert("LA"))
        drop_alpha(arr, notes)
        return np.ascontiguousarray(arr[..., 0]), "grayscale with alpha: grey channel kept"
    how = ""
    if mode in ("P", "PA"):
        im = im.convert("RGBA")
        how = "palette picture expanded; "
    elif mode in ("CMYK", "YCbCr"):
        im = im.convert("RGB")
        how = f"{mode} converted to RGB by Pillow (no colour management); "
    elif mode not in ("RGB", "RGBA", "RGBX", "RGBa"):
        raise UnsupportedImageError(
            rel,
            f"{fmt.upper()} picture in colour mode {mode!r}, which medmm does not convert to grayscale",
            "re-export it as 8- or 16-bit grayscale (or RGB) PNG/TIFF",
        )
    arr = np.asarray(im)
    if arr.shape[-1] == 4:
        drop_alpha(arr, notes)
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return np.ascontiguousarray(r), how + "identical R, G, B channels: their common value kept"
    notes.append("colour picture converted to grayscale (Pillow convert('L'): ITU-R 601-2 luma)")
    return np.asarray(im.convert("RGB").convert("L")), how + "ITU-R 601-2 luma (Pillow convert('L'))"


def colour_bits_lost(im: Any, fmt: str, path: Path) -> bool:
    """True for a 16-bit-per-sample colour (or grey + alpha) PNG or TIFF, which Pillow decodes to 8 bits
    per channel (16-bit grey alone is read whole, as mode ``I;16``)."""
    if im.mode not in ("RGB", "RGBA", "LA"):
        return False
    if fmt == "png":
        with open(path, "rb") as fh:
            ihdr = fh.read(26)
        return len(ihdr) == 26 and ihdr[24] == 16
    if fmt == "tiff":
        bits = getattr(im, "tag_v2", {}).get(258)
        return bool(bits) and max(bits if isinstance(bits, tuple) else (bits,)) > 8
    return False


def exact_channels(arr: np.ndarray, precision: int, notes: list[str]) -> tuple[np.ndarray, str]:
    """Grey pixels from decoded samples ``[row, column(, channel)]`` of any bit depth, as raster does.

    One channel is kept as is; grey + alpha keeps the grey; colour whose R, G, B are equal keeps their
    common value; other colour gets Pillow's ``convert("L")`` luma (``(19595 R + 38470 G + 7471 B +
    32768) >> 16``, ITU-R 601-2) computed at the samples' own bit depth, with a note. An alpha channel
    that is not fully opaque (``2**precision - 1``) adds a note.

    >>> exact_channels(np.full((2, 2, 3), 4000, np.uint16), 12, [])[0].tolist()
    [[4000, 4000], [4000, 4000]]
    """
    if arr.ndim == 2:
        return arr, "stored as grayscale"
    channels = arr.shape[-1]
    if channels in (2, 4) and arr.size and int(arr[..., -1].min()) < (1 << precision) - 1:
        notes.append("alpha channel dropped: transparent pixels keep their stored grey value")
    if channels <= 2:
        return np.ascontiguousarray(arr[..., 0]), "grayscale with alpha: grey channel kept"
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return np.ascontiguousarray(r), "identical R, G, B channels: their common value kept"
    notes.append("colour picture converted to grayscale (ITU-R 601-2 luma, as Pillow convert('L'))")
    wide = arr[..., :3].astype(np.int64)
    luma = (wide[..., 0] * 19595 + wide[..., 1] * 38470 + wide[..., 2] * 7471 + 32768) >> 16
    return luma.astype(arr.dtype), "ITU-R 601-2 luma (Pillow's convert('L') weights)"
