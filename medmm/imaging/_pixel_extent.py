"""Where a DICOM file's Pixel Data lies, whether it is complete, and how a data set without one ends.

Used by :mod:`medmm.imaging.dicom_header` once the header is read (pydicom with ``stop_before_pixels``
or the element stream of :mod:`medmm.imaging._element_stream`), never reading pixel values except for
deflate-compressed data sets (Deflated Explicit VR Little Endian), which have to be inflated whole to
find their Pixel Data.

* :func:`pixel_element_at`: the Pixel Data element header at the position pydicom stopped.
* :func:`check_pixel_length`: native pixel data shorter than its element or than Rows x Columns x ...
  says (subsampled YBR_FULL_422 / YBR_PARTIAL_422 hold two samples per pixel, not three).
* :func:`ends_cleanly` / :func:`stream_ends_cleanly`: whether a data set without Pixel Data ends exactly
  at the end of the file (a header-only object) rather than a few bytes into a next element (a cut).
* :func:`deflated_pixel_element`: the Pixel Data of a deflated data set.

>>> expected_pixel_bytes(rows=100, cols=100, frames=1, spp=3, bits=8, photometric="YBR_FULL_422")
20000
>>> expected_pixel_bytes(rows=100, cols=100, frames=1, spp=3, bits=8, photometric="RGB")
30000
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from medmm.imaging._dicom_values import as_int, as_str
from medmm.imaging.errors import TruncatedPixelDataError

__all__ = [
    "DEFLATED",
    "check_pixel_length",
    "deflated_pixel_element",
    "ends_cleanly",
    "expected_pixel_bytes",
    "pixel_element_at",
    "stream_ends_cleanly",
]

PIXEL_DATA = 0x7FE00010
PIXEL_TAGS = frozenset({PIXEL_DATA, 0x7FE00008, 0x7FE00009})  # Pixel Data, Float / Double Float Pixel Data
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
#: Deflated Explicit VR Little Endian: the whole data set after the file meta is one deflate stream
DEFLATED = "1.2.840.10008.1.2.1.99"
#: photometric interpretations whose native pixel data holds 2 samples per pixel (Cb, Cr shared by two
#: horizontally adjacent pixels: PS3.3 C.7.6.3.1.2)
_SUBSAMPLED = frozenset({"YBR_FULL_422", "YBR_PARTIAL_422"})
_UNDEFINED = 0xFFFFFFFF


def _element_header(raw: bytes, start: int, little: bool, implicit: bool) -> tuple[int, int, int] | None:
    """(tag, declared length, offset of the value) of the element whose first bytes (up to 12) are
    ``raw``, found at byte ``start`` of the file; None when ``raw`` is too short."""
    if len(raw) < 8:
        return None
    order = "<" if little else ">"
    group, elem = struct.unpack(order + "HH", raw[:4])
    tag = (group << 16) | elem
    if implicit or not raw[4:6].isalpha():  # some writers encode Pixel Data implicitly anyway
        (length,) = struct.unpack(order + "I", raw[4:8])
        return tag, length, start + 8
    if raw[4:6] in _LONG_VRS:
        if len(raw) < 12:
            return None
        (length,) = struct.unpack(order + "I", raw[8:12])
        return tag, length, start + 12
    (length,) = struct.unpack(order + "H", raw[6:8])
    return tag, length, start + 8


def pixel_element_at(fh: BinaryIO, little: bool, implicit: bool) -> tuple[int, int, int] | None:
    """At the position pydicom stopped: (tag, declared pixel length, byte offset of the value) or None.

    >>> import io
    >>> pixel_element_at(io.BytesIO(b"\\xe0\\x7f\\x10\\x00OW\\0\\0\\x08\\0\\0\\0"), True, False)
    (2145386512, 8, 12)
    """
    start = fh.tell()
    found = _element_header(fh.read(12), start, little, implicit)
    return found if found is not None and found[0] in PIXEL_TAGS else None


def expected_pixel_bytes(*, rows: int, cols: int, frames: int, spp: int, bits: int, photometric: str) -> int:
    """Bytes of native pixel data that Rows x Columns x frames x samples x BitsAllocated describe.

    Uncompressed YBR_FULL_422 / YBR_PARTIAL_422 store Y for every pixel and Cb, Cr once per two
    pixels: 2 samples per pixel, whatever SamplesPerPixel (3) says.

    >>> expected_pixel_bytes(rows=2, cols=4, frames=1, spp=1, bits=12, photometric="MONOCHROME2")
    12
    """
    samples = 2 if spp == 3 and photometric.strip().upper() in _SUBSAMPLED else spp
    return (rows * cols * frames * samples * bits + 7) // 8


def check_pixel_length(rel_path: str, ds: Any, declared: int, available: int) -> None:
    """Raise :class:`TruncatedPixelDataError` when native pixel data is shorter than its header says.

    ``declared``: the element's length (undefined: encapsulated, checked when decoding); ``available``:
    the bytes the file holds from the value's start.

    >>> import pydicom
    >>> ds = pydicom.Dataset()
    >>> ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel = 2, 2, 8, 3
    >>> ds.PhotometricInterpretation = "YBR_FULL_422"
    >>> check_pixel_length("x.dcm", ds, 8, 8)  # 2 x 2 pixels x 2 samples: complete
    """
    if declared == _UNDEFINED:  # encapsulated (compressed): checked when decoding
        return
    rows, cols = as_int(ds.get("Rows")) or 0, as_int(ds.get("Columns")) or 0
    frames = as_int(ds.get("NumberOfFrames")) or 1
    spp = as_int(ds.get("SamplesPerPixel")) or 1
    bits = as_int(ds.get("BitsAllocated")) or 0
    photometric = as_str(ds.get("PhotometricInterpretation"))
    expected = expected_pixel_bytes(
        rows=rows, cols=cols, frames=frames, spp=spp, bits=bits, photometric=photometric
    )
    if available < declared:
        raise TruncatedPixelDataError(
            rel_path,
            f"pixel data is truncated: the element declares {declared} bytes but the file holds only "
            f"{available}",
            "the transfer was cut off; copy the file again from the source",
        )
    if expected and declared < expected:
        samples = (
            "2 samples (4:2:2 subsampled)"
            if expected != (rows * cols * frames * spp * bits + 7) // 8
            else (f"{spp} samples")
        )
        raise TruncatedPixelDataError(
            rel_path,
            f"pixel data has {declared} bytes but {rows}x{cols}x{frames} frames x {samples} x {bits} "
            f"bits needs {expected}",
            "re-export the image; the pixel data does not match its Rows/Columns/NumberOfFrames",
        )


def stream_ends_cleanly(stream: Any, size: int) -> bool:
    """Whether the last element an element stream (:func:`~medmm.imaging._element_stream.parse_stream`)
    recorded ends exactly at the end of the file (``size`` bytes): nothing after it, not even the first
    bytes of a next element.

    >>> from medmm.imaging._element_stream import ElementStream
    >>> s = ElementStream(b"", "1.2.840.10008.1.2.1", "", False, {0x00280010: ("US", 300, 2)})
    >>> stream_ends_cleanly(s, 302), stream_ends_cleanly(s, 306)
    (True, False)
    """
    ends = [offset + length for _vr, offset, length in stream.elements.values()]
    return bool(ends) and max(ends) == size


def ends_cleanly(ds: Any, fh: BinaryIO, size: int, little: bool) -> bool:
    """Whether a data set pydicom read (without Pixel Data) ends exactly at the end of the file.

    The last top-level element's value must end at ``size``; an undefined-length sequence must be the
    file's last 8 bytes (its sequence delimitation item). A file cut a few bytes into a next element
    (pydicom stops quietly when fewer than 8 bytes remain) does not end cleanly.
    """
    tags = list(ds.keys())
    if not tags:
        return False
    elem = ds.get_item(tags[-1])
    tell, length = getattr(elem, "value_tell", None), getattr(elem, "length", None)
    if tell is None or length is None:
        # an element pydicom converted (an undefined-length sequence): ``file_tell`` is where its value
        # starts, after the 4-byte length
        tell = getattr(elem, "file_tell", None)
        if tell is None or tell < 4:
            return False
        fh.seek(tell - 4)
        (length,) = struct.unpack("<I" if little else ">I", fh.read(4))
    if length != _UNDEFINED:
        return bool(tell + length == size)
    if size < 8:
        return False
    fh.seek(size - 8)
    delimiter = struct.pack("<HHI" if little else ">HHI", 0xFFFE, 0xE0DD, 0)
    return fh.read(8) == delimiter


def deflated_pixel_element(fh: BinaryIO) -> tuple[tuple[int, int, int] | None, int]:
    """((tag, declared length, 0), bytes held) of a deflated data set's Pixel Data, ``(None, 0)`` without.

    The data set is inflated and read whole by pydicom (deflate has no random access); the offset is
    meaningless (the pixels are inside the deflate stream) and given as 0. A damaged deflate stream
    raises ``zlib.error``.
    """
    import pydicom

    fh.seek(0)
    full = pydicom.dcmread(fh, force=True)
    for tag in sorted(PIXEL_TAGS):
        if tag in full:
            raw = full.get_item(tag)
            declared = getattr(raw, "length", None)
            value = getattr(raw, "value", None)
            held = len(value) if isinstance(value, (bytes, bytearray)) else 0
            return (tag, held if declared is None else int(declared), 0), held
    return None, 0
