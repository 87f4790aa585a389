"""Read one DICOM file's header (never its pixel data) into a :class:`DicomInstance`.

Files without the 128-byte preamble are accepted only after checking that their first bytes look like
a DICOM element stream (``force=True`` alone would "read" any file). The object kind comes from the SOP
Class UID (see :mod:`medmm.imaging.kinds`); truncation of native pixel data is detected from the Pixel
Data element's declared length without reading it.

>>> from pydicom.data import get_testdata_file  # a CT slice shipped with pydicom
>>> read_dicom_header(Path(get_testdata_file("CT_small.dcm")), "CT_small.dcm").kind
<DicomKind.image: 'image'>
"""

from __future__ import annotations

import re
import struct
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from medmm.imaging._dicom_values import as_str
from medmm.imaging._element_stream import parse_stream
from medmm.imaging._fast_values import FastHeader
from medmm.imaging._header_instance import (
    _SERIES_MEMO,
    _from_memo,
    _instance_from,
    _memo_key,
    accession_of,
    study_time_precision,
)
from medmm.imaging._pixel_extent import (
    DEFLATED,
    PIXEL_DATA,
    check_pixel_length,
    deflated_pixel_element,
    ends_cleanly,
    pixel_element_at,
    stream_ends_cleanly,
)
from medmm.imaging.errors import (
    DicomHeaderError,
    MissingTransferSyntaxError,
    TruncatedPixelDataError,
    library_message,
)
from medmm.imaging.kinds import classify
from medmm.imaging.records import DicomInstance, DicomKind

__all__ = [
    "HEADER_ONLY",
    "NATIVE_SYNTAXES",
    "accession_of",
    "looks_like_dicom",
    "malformed_ds_problem",
    "read_dicom_header",
    "read_open_header",
    "study_time_precision",
]

#: uncompressed transfer syntaxes: implicit VR little endian, explicit VR little / big endian
NATIVE_SYNTAXES = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"})
#: what a header-only image object's kind detail says after its SOP class name
HEADER_ONLY = (
    "without pixel data: a header only (the data set ends cleanly after its last element: pixel data "
    "removed or never stored; re-export the image if it is needed)"
)
_FIX_REEXPORT = "re-export the object from the PACS/modality (or exclude it from the archive)"


def looks_like_dicom(head: bytes) -> bool:
    """True when ``head`` (the first >= 132 bytes of a file) is DICOM with or without preamble.

    Without the ``DICM`` marker the first element must be a plausible group 0x0002/0x0008 tag
    followed either by an explicit VR or by a small implicit length.

    >>> looks_like_dicom(b"\\0" * 128 + b"DICM")
    True
    >>> looks_like_dicom(b"%PDF-1.4 hello world")
    False
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    for order in "<>":
        group, elem = struct.unpack(order + "HH", head[:4])
        if group not in (0x0002, 0x0008) or elem > 0x1000:
            continue
        vr = head[4:6]
        if vr.isalpha() and vr.isupper():
            return True
        (length,) = struct.unpack(order + "I", head[4:8])
        if length < 1024:
            return True
    return False


#: numeric image attributes whose malformed values would silently break geometry or intensities
_NUMERIC = (
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "RescaleSlope",
    "RescaleIntercept",
)


#: a number written with a decimal comma (``1,5``): the one malformed DS value worth quoting (it can
#: hold no identity, and seeing it tells the fix); any other value is never quoted (a misfilled export
#: puts names, ids or birth dates into these elements)
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d{1,8},\d{1,8}\s*")


def malformed_ds_problem(keyword: str, item: object) -> str:
    """The problem of a malformed decimal string (VR DS) in ``keyword``, quoting the value only when it
    is a number with a decimal comma.

    >>> malformed_ds_problem("SliceThickness", "Smith^John")
    'malformed value in SliceThickness (VR DS): not a decimal number (value not shown)'
    >>> malformed_ds_problem("PixelSpacing", "0,5")
    "malformed value in PixelSpacing (VR DS): '0,5' has a decimal comma (DS takes a point: 0.5)"
    """
    text = str(item)
    if _DECIMAL_COMMA.fullmatch(text):
        return (
            f"malformed value in {keyword} (VR DS): {text.strip()!r} has a decimal comma "
            f"(DS takes a point: {text.strip().replace(',', '.')})"
        )
    return f"malformed value in {keyword} (VR DS): not a decimal number (value not shown)"


def _check_numeric(rel_path: str, ds: Any) -> None:
    """Raise for a present but non-numeric geometry/rescale value (a malformed DS element); the reason
    never quotes the value (:func:`malformed_ds_problem`)."""
    for keyword in _NUMERIC:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        items = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        for item in items:
            try:
                float(item)
            except (TypeError, ValueError):
                raise DicomHeaderError(
                    rel_path,
                    malformed_ds_problem(keyword, item),
                    "correct the element (e.g. with dcmodify) or re-export the image from the modality",
                ) from None


def _check_last_element(rel_path: str, ds: Any, size: int) -> None:
    """pydicom silently keeps a value cut off by the end of the file; detect that here."""
    tags = list(ds.keys())
    if not tags:
        raise DicomHeaderError(rel_path, "no DICOM elements could be read", _FIX_REEXPORT)
    raw = ds.get_item(tags[-1])
    tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
    if tell is not None and length is not None and length != 0xFFFFFFFF and tell + length > size:
        raise DicomHeaderError(
            rel_path,
            f"the header is truncated inside element {tags[-1]} ({tell + length - size} bytes missing)",
            "the transfer was cut off; copy the file again from the source",
        )


def read_dicom_header(path: Path, rel_path: str) -> DicomInstance:
    """Read the header of one DICOM file (stopping before pixel data) and summarise it.

    Parameters
    ----------
    path
        Absolute (or working-directory relative) path to the file.
    rel_path
        The file's path relative to the archive root (POSIX); used in records and error messages.

    Returns
    -------
    DicomInstance
        Geometry, kind and acquisition metadata; raw identifiers (for grouping/pseudonyms only).

    Raises
    ------
    DicomHeaderError
        Empty file, not DICOM, or a header pydicom cannot parse (malformed VR/length).
    MissingTransferSyntaxError
        Image pixel data but no Transfer Syntax UID in the file meta.
    TruncatedPixelDataError
        Native pixel data shorter than declared / needed.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> inst = read_dicom_header(Path(get_testdata_file("MR_small.dcm")), "MR_small.dcm")
    >>> inst.rows, inst.columns, inst.modality
    (64, 64, 'MR')
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DicomHeaderError(
            rel_path, f"cannot open the file ({exc.strerror})", "check permissions"
        ) from exc
    if size == 0:
        raise DicomHeaderError(rel_path, "file is empty (0 bytes)", _FIX_REEXPORT)
    with path.open("rb") as fh:
        return read_open_header(fh, rel_path, size)


def read_open_header(fh: BinaryIO, rel_path: str, size: int) -> DicomInstance:
    """:func:`read_dicom_header` of a file already open (binary, opened by its path), ``size`` bytes.

    The ingest scan sniffs a file's content and reads its header through one open file.

    >>> with open(path, "rb") as fh:  # doctest: +SKIP
    ...     inst = read_open_header(fh, "MR_small.dcm", os.fstat(fh.fileno()).st_size)
    """
    fh.seek(0)
    head = fh.read(132)
    if not looks_like_dicom(head):
        raise DicomHeaderError(
            rel_path,
            "not a DICOM file (no 'DICM' marker after the preamble and no DICOM element at the start)",
            "remove it from the archive or convert it to DICOM",
        )
    fh.seek(0)
    try:
        with warnings.catch_warnings():  # pydicom warnings quote element values (possible PHI)
            warnings.simplefilter("ignore")
            return _summarise(fh, rel_path, size)
    except Exception as exc:
        if _is_invalid_dicom(exc):
            raise DicomHeaderError(
                rel_path, f"invalid DICOM ({library_message(exc)})", _FIX_REEXPORT
            ) from exc
        if isinstance(exc, zlib.error):  # Deflated Explicit VR Little Endian: the stream is damaged
            raise DicomHeaderError(
                rel_path,
                f"the deflate-compressed data set cannot be inflated (zlib: {exc}): the file is truncated "
                "or damaged",
                "copy the file again from the source",
            ) from exc
        if isinstance(exc, _MALFORMED):  # a bad VR, length or value among the elements we use
            raise DicomHeaderError(
                rel_path,
                f"malformed DICOM header ({type(exc).__name__}: {library_message(exc)})",
                _FIX_REEXPORT,
            ) from exc
        raise


#: errors that mean a malformed element (bad VR, bad length, undecodable value) among those we use
_MALFORMED = (ValueError, TypeError, KeyError, EOFError, OSError, struct.error, NotImplementedError)


def _is_invalid_dicom(exc: BaseException) -> bool:
    """Whether ``exc`` is pydicom's ``InvalidDicomError`` (only pydicom raises it, so when pydicom has
    not been imported - a plain file read by the element stream alone - it cannot be one)."""
    errors = sys.modules.get("pydicom.errors")
    return errors is not None and isinstance(exc, errors.InvalidDicomError)


def _summarise(fh: BinaryIO, rel_path: str, size: int, fast: bool = True) -> DicomInstance:
    """Parse the header from ``fh`` and check it; raw pydicom errors propagate to the caller.

    Only the elements the summary uses are converted from their raw bytes (pydicom converts lazily), so
    an odd private element never costs time or quarantines an image. With ``fast`` a well-formed file's
    element stream is walked by :func:`~medmm.imaging._element_stream.parse_stream` (pydicom reads it
    only if an element needs pydicom's conversion: sequences, non-ASCII text), and the plain elements
    are decoded by :class:`~medmm.imaging._fast_values.FastHeader`; any other file is read by pydicom
    as without ``fast`` (same values, same errors).
    """
    name = getattr(fh, "name", None)
    path = name if isinstance(name, str) else ""
    stream = _element_stream(fh, size) if fast and path else None
    if stream is not None:

        def load() -> Any:
            import pydicom  # only for elements the stream reader leaves to pydicom (~0.1 s import)

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return pydicom.dcmread(path, stop_before_pixels=True, force=True)

        memo_key = _memo_key(stream)
        found = _SERIES_MEMO.get(memo_key)
        ds: Any = FastHeader(load, stream, found[3] if found is not None else None)
        pixel = stream.pixel
        available = size - pixel[2] if pixel is not None else 0
        clean = pixel is not None or stream_ends_cleanly(stream, size)
    else:
        import pydicom

        fh.seek(0)
        raw_ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
        raw_meta = getattr(raw_ds, "file_meta", None)
        if raw_meta is not None and as_str(raw_meta.get("TransferSyntaxUID")) == DEFLATED:
            # one deflate stream: its Pixel Data is found by inflating it whole (pydicom raises when the
            # stream is damaged or cut off); its end is the deflate stream's own
            pixel, available = deflated_pixel_element(fh)
            clean = True
        else:
            _check_last_element(rel_path, raw_ds, size)
            implicit, little = raw_ds.original_encoding
            pixel = pixel_element_at(fh, little is not False, bool(implicit))
            available = size - pixel[2] if pixel is not None else 0
            clean = pixel is not None or ends_cleanly(raw_ds, fh, size, little is not False)
        ds = FastHeader(raw_ds) if fast else raw_ds
        memo_key, found = None, None
    meta = getattr(ds, "file_meta", None)
    tsyntax = as_str(meta.get("TransferSyntaxUID")) if meta is not None else ""
    if found is not None:
        kind, detail, shared, _decoded = found
    else:
        kind, detail = classify(ds)
    classified = kind, detail
    has_pixels = pixel is not None
    pixel_offset = None
    if pixel is not None and tsyntax:
        tag, declared, offset = pixel
        check_pixel_length(rel_path, ds, declared, available)
        if tag == PIXEL_DATA and declared != 0xFFFFFFFF and tsyntax in NATIVE_SYNTAXES:
            pixel_offset = offset
    if kind.is_image:
        _check_numeric(rel_path, ds)
    if has_pixels and kind.is_image and not tsyntax:
        raise MissingTransferSyntaxError(
            rel_path,
            "the file meta has no Transfer Syntax UID (0002,0010), so the pixel encoding is unknown",
            "re-export with a valid file meta header (e.g. dcmconv +te in DCMTK)",
        )
    if (
        has_pixels
        and kind.is_image
        and not (ds.get("Rows") and ds.get("Columns") and ds.get("BitsAllocated"))
    ):
        raise DicomHeaderError(
            rel_path,
            "pixel data without Rows, Columns or BitsAllocated, so it cannot be decoded",
            _FIX_REEXPORT,
        )
    if kind.is_image and not has_pixels and not clean and ds.get("Rows") and ds.get("Columns"):
        raise TruncatedPixelDataError(
            rel_path,
            "the header describes an image (Rows/Columns) but the file ends before its Pixel Data, "
            "a few bytes into an element",
            "the transfer was cut off; copy the file again from the source",
        )
    if kind.is_image and not has_pixels:
        # the data set ends cleanly after its last element: a header-only object (pixel data removed,
        # or never stored), not a cut-off copy
        kind, detail = DicomKind.other_non_image, f"{detail} {HEADER_ONLY}"
    if found is not None:
        return _from_memo(ds, rel_path, kind, detail, shared, has_pixels, pixel_offset)
    memo = None
    if memo_key is not None and ds.complete and classified[0] is not DicomKind.multiframe_image:
        memo = (memo_key, *classified, ds.shared_values())
    return _instance_from(ds, rel_path, kind, detail, tsyntax, has_pixels, pixel_offset, memo)


def _element_stream(fh: BinaryIO, size: int) -> Any:
    fh.seek(0)
    return parse_stream(fh, size)
