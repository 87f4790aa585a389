"""Input errors of the imaging stage; each names the file, the problem and the fix.

The class name groups manifest ``reason`` values (``reason_of(exc)`` starts with it), so a
quarantined file says e.g. ``MissingSliceError: ct/: 1 slice missing between ...``.

>>> err = MissingTransferSyntaxError("a.dcm", "no Transfer Syntax UID in the file meta", "re-export it")
>>> isinstance(err, DicomHeaderError), str(err)
(True, 'a.dcm: no Transfer Syntax UID in the file meta. Fix: re-export it')
"""

from __future__ import annotations

from medmm.errors import InputError

__all__ = [
    "CorruptImageError",
    "DicomHeaderError",
    "DuplicatePositionError",
    "GantryTiltError",
    "ImageFileError",
    "ImageTooLargeError",
    "MissingCompanionError",
    "MissingSliceError",
    "MissingTransferSyntaxError",
    "MixedGeometryError",
    "NotAVolumeError",
    "PixelDecodeError",
    "TooFewSlicesError",
    "TruncatedPixelDataError",
    "UnsupportedImageError",
]


class DicomHeaderError(InputError):
    """The file is not readable DICOM (empty, not DICOM, malformed element/VR, truncated header)."""


class MissingTransferSyntaxError(DicomHeaderError):
    """The file meta has no Transfer Syntax UID, so pixel data cannot be decoded reliably."""


class TruncatedPixelDataError(InputError):
    """Pixel data is shorter than Rows x Columns x Frames x Samples x BitsAllocated says."""


class PixelDecodeError(InputError):
    """Pixel data exists but could not be decoded (unknown/unsupported codec, corrupt stream)."""


class UnsupportedImageError(InputError):
    """Pixel data of a kind we do not turn into a volume (whole-slide microscopy, colour video ...)."""


class MissingSliceError(InputError):
    """A gap in slice positions larger than the series' slice spacing: at least one slice is missing."""


class DuplicatePositionError(InputError):
    """Two different instances claim the same slice position in one stack."""


class MixedGeometryError(InputError):
    """Slices of one stack do not share orientation / size / in-plane spacing."""


class GantryTiltError(InputError):
    """Slice positions are not along the slice normal (tilted gantry) and cannot be stacked exactly."""


class NotAVolumeError(InputError):
    """Slice positions do not form a line along the slice normal (e.g. scattered localizers)."""


class TooFewSlicesError(InputError):
    """Too few slices to build the volume the series claims to be."""


class ImageFileError(InputError):
    """A NIfTI / ANALYZE file is unreadable (empty, corrupt gzip, bad header, short data)."""


class MissingCompanionError(ImageFileError):
    """A ``.hdr`` without its ``.img`` (or the reverse)."""


class CorruptImageError(InputError):
    """A picture file (PNG, JPEG, TIFF, JPEG 2000) that is truncated, damaged or not really that format."""


class ImageTooLargeError(InputError):
    """A picture whose declared size exceeds Pillow's decompression-bomb limit."""
