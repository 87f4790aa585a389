"""Input errors of the imaging stage; each names the file, the problem and the fix.

The class name groups manifest ``reason`` values (``reason_of(exc)`` starts with it), so a
quarantined file says e.g. ``MissingSliceError: ct/: 1 slice missing between ...``.

>>> err = MissingTransferSyntaxError("a.dcm", "no Transfer Syntax UID in the file meta", "re-export it")
>>> isinstance(err, DicomHeaderError), str(err)
(True, 'a.dcm: no Transfer Syntax UID in the file meta. Fix: re-export it')
"""

from __future__ import annotations

import re

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
    "library_message",
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


#: Quoted values a decoder's message may keep: DICOM's own terms, never a header's free text.
_TERMS = frozenset(
    {
        *("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422"),
        *("YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "OB", "OW", "OF", "OD", "UN"),
    }
)
# a single-quoted value may hold an apostrophe followed by a letter ('O'BRIEN^JOHN'): the quote closes
# only where no letter or digit follows it
_QUOTED = re.compile(r"'((?:[^'\n]|'(?=\w)){0,200})'(?!\w)|\"([^\"\n]{0,200})\"")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")
# a run of 7 or more digits is a date (19800101), a record or accession number: not shown
_LONG_DIGITS = re.compile(r"[+-]?\d{7,}")


def _known_term(text: str) -> bool:
    from pydicom.datadict import DicomDictionary, keyword_dict

    if _LONG_DIGITS.fullmatch(text):
        return False
    if not text or _NUMBER.fullmatch(text) or text in _TERMS or text.startswith("1.2.840.10008."):
        return True
    if text in keyword_dict:
        return True
    global _NAMES
    if _NAMES is None:
        _NAMES = frozenset(entry[2] for entry in DicomDictionary.values())
    return text in _NAMES


_NAMES: frozenset[str] | None = None


def library_message(exc: BaseException) -> str:
    """One line of ``exc``'s text (a decoder's or pydicom's message) with header values hidden.

    Libraries quote the values they refuse (``Unknown (0028,0004) 'Photometric Interpretation' value
    'SMITH^JOHN'``), and a header element can hold anything, a patient's name included. A quoted text
    stays only when it is a number (of fewer than 7 digits: ``'19800101'`` is a birth date, a longer one
    may be a record number), a DICOM element name or keyword, a standard DICOM UID or a photometric /
    VR term; any other becomes ``<value not shown>``, a name with an apostrophe (``'O'BRIEN'``) whole.

    >>> library_message(ValueError("Unknown (0028,0004) 'Photometric Interpretation' value 'SMITH^JOHN'"))
    "Unknown (0028,0004) 'Photometric Interpretation' value <value not shown>"
    >>> library_message(ValueError("A (0028,0100) 'Bits Allocated' value of '12' is invalid"))
    "A (0028,0100) 'Bits Allocated' value of '12' is invalid"
    """

    def keep(match: re.Match[str]) -> str:
        inner = match.group(1) if match.group(1) is not None else match.group(2)
        return match.group(0) if _known_term(inner.strip()) else "<value not shown>"

    return _QUOTED.sub(keep, " ".join(str(exc).split()))
