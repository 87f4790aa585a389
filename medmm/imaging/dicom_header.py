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

import struct
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from medmm.imaging._dicom_values import (
    as_float,
    as_floats,
    as_int,
    as_str,
    datetime_and_precision,
    multiframe_geometry,
    patient_key_of,
)
from medmm.imaging._element_stream import parse_stream
from medmm.imaging._fast_values import FastHeader, stream_signature
from medmm.imaging._pixel_extent import (
    DEFLATED,
    PIXEL_DATA,
    check_pixel_length,
    deflated_pixel_element,
    ends_cleanly,
    pixel_element_at,
    stream_ends_cleanly,
)
from medmm.imaging.errors import DicomHeaderError, MissingTransferSyntaxError, TruncatedPixelDataError
from medmm.imaging.kinds import classify
from medmm.imaging.records import DicomInstance, DicomKind

__all__ = [
    "HEADER_ONLY",
    "NATIVE_SYNTAXES",
    "accession_of",
    "looks_like_dicom",
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


def _check_numeric(rel_path: str, ds: Any) -> None:
    """Raise for a present but non-numeric geometry/rescale value (a malformed DS element)."""
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
                    f"malformed value in {keyword}: {str(item)[:32]!r} is not a decimal number (VR DS)",
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
            raise DicomHeaderError(rel_path, f"invalid DICOM ({exc})", _FIX_REEXPORT) from exc
        if isinstance(exc, zlib.error):  # Deflated Explicit VR Little Endian: the stream is damaged
            raise DicomHeaderError(
                rel_path,
                f"the deflate-compressed data set cannot be inflated (zlib: {exc}): the file is truncated "
                "or damaged",
                "copy the file again from the source",
            ) from exc
        if isinstance(exc, _MALFORMED):  # a bad VR, length or value among the elements we use
            raise DicomHeaderError(
                rel_path, f"malformed DICOM header ({type(exc).__name__}: {exc})", _FIX_REEXPORT
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


#: every field name of DicomInstance (each summary sets them all); shared, never mutated in practice
_ALL_FIELDS: set[str] = set(DicomInstance.model_fields)
_FIELD_ORDER = tuple(DicomInstance.model_fields)
#: what pydantic's model_construct does for a plain model given every field: set the instance dict
_PLAIN_MODEL = not (
    DicomInstance.__pydantic_post_init__
    or DicomInstance.__private_attributes__
    or DicomInstance.model_config.get("extra") == "allow"
    or DicomInstance.__pydantic_root_model__
)


def _construct_all(values: dict[str, Any]) -> DicomInstance:
    """``DicomInstance.model_construct(_fields_set=_ALL_FIELDS, **values)`` for values of every field.

    model_construct walks every field's aliases and defaults (~9 us); with every field given, the
    result is the instance dict in field order and the shared fields set, set here directly (<1 us).
    """
    if not _PLAIN_MODEL or len(values) != len(_FIELD_ORDER):
        return DicomInstance.model_construct(_fields_set=_ALL_FIELDS, **values)
    inst = DicomInstance.__new__(DicomInstance)
    object.__setattr__(inst, "__dict__", {name: values[name] for name in _FIELD_ORDER})
    object.__setattr__(inst, "__pydantic_fields_set__", _ALL_FIELDS)
    object.__setattr__(inst, "__pydantic_extra__", None)
    object.__setattr__(inst, "__pydantic_private__", None)
    return inst


#: fields taken from the file's own elements (or path / pixel data) every time; the others depend only
#: on the elements a header signature covers (see _SERIES_MEMO)
_OWN_FIELDS = (
    "path",
    "sop_instance_uid",
    "kind",
    "kind_detail",
    "image_position",
    "acquisition_number",
    "instance_number",
    "pixel_offset",
    "has_pixel_data",
    "study_datetime",
    "study_time_precision",
    "accession_number",  # not in the header signature: read from each file
)
#: list values of the shared fields, copied for each instance
_LIST_FIELDS = ("image_orientation", "pixel_spacing", "image_type")
_DIRECTORY_RECORDS, _PER_FRAME_GROUPS = 0x00041220, 0x52009230

#: header signature (+ transfer syntax, media SOP class, sequences classify looks for) of a complete
#: single-frame header -> (kind, detail, the summary's fields outside _OWN_FIELDS, the decoded values
#: outside PER_INSTANCE). The slices of a series share all of them, so a scan decodes them once per
#: series. Bounded: cleared when full.
_SERIES_MEMO: dict[Any, tuple[DicomKind, str, dict[str, Any], dict[str, Any]]] = {}
_MEMO_SIZE = 256


_ACCESSION_NUMBER = 0x00080050


def study_time_precision(ds: Any) -> str | None:
    """``"datetime"`` when the date :func:`~medmm.imaging._dicom_values.datetime_of` uses comes with a
    time of day, ``"date"`` when it comes without one (``study_datetime`` is then midnight, which is no
    time: ``medmm align`` compares it as a whole day), ``None`` without a date
    (:func:`~medmm.imaging._dicom_values.datetime_and_precision`, which gives both at once).

    >>> import pydicom
    >>> ds = pydicom.Dataset()
    >>> ds.StudyDate = "20200301"
    >>> study_time_precision(ds)
    'date'
    >>> ds.StudyTime = "101500"
    >>> study_time_precision(ds)
    'datetime'
    """
    return datetime_and_precision(ds)[1]


def accession_of(ds: Any) -> str:
    """The raw AccessionNumber (0008,0050), ``""`` when absent (only ever pseudonymized).

    A header read from an element stream (:class:`FastHeader`) has its plain ASCII value decoded here
    from the raw bytes, so reading it never makes pydicom parse the file; other text goes to pydicom
    (its character set).

    >>> import pydicom
    >>> ds = pydicom.Dataset()
    >>> ds.AccessionNumber = "A123 "
    >>> accession_of(ds), accession_of(pydicom.Dataset())
    ('A123', '')
    """
    if isinstance(ds, FastHeader):
        found = ds._raw(_ACCESSION_NUMBER)  # the view's raw element: no pydicom parse of the file
        if found is None:
            return ""
        plain = isinstance(found, tuple) and found[0] in (None, "SH") and found[1].isascii()
        if plain and b"\x1b" not in found[1]:
            return str(found[1].decode("ascii").strip(" \x00"))
    return as_str(ds.get("AccessionNumber")).strip()


def _memo_key(stream: Any) -> Any:
    elements = stream.elements
    return (
        stream_signature(stream),
        stream.transfer_syntax,
        stream.media_sop_class,
        _DIRECTORY_RECORDS in elements,
        _PER_FRAME_GROUPS in elements,
    )


def _own_fields(ds: Any, rel_path: str, has_pixels: bool, pixel_offset: int | None) -> dict[str, Any]:
    when, precision = datetime_and_precision(ds)
    return {
        "path": rel_path,
        "sop_instance_uid": as_str(ds.get("SOPInstanceUID")) or rel_path,
        "image_position": as_floats(ds.get("ImagePositionPatient"), 3),
        "acquisition_number": as_int(ds.get("AcquisitionNumber")),
        "instance_number": as_int(ds.get("InstanceNumber")),
        "pixel_offset": pixel_offset,
        "has_pixel_data": has_pixels,
        "study_datetime": when,
        "study_time_precision": precision,
        "accession_number": accession_of(ds),
    }


def _instance_from(
    ds: Any,
    rel_path: str,
    kind: DicomKind,
    detail: str,
    tsyntax: str,
    has_pixels: bool,
    pixel_offset: int | None,
    memo: tuple[Any, DicomKind, str, dict[str, Any]] | None = None,
) -> DicomInstance:
    """The summary; with ``memo`` (key, classified kind and detail, shared decoded values of a complete
    single-frame header) its fields outside _OWN_FIELDS are remembered for headers with the same key."""
    inst = _construct(ds, rel_path, kind, detail, tsyntax, has_pixels, pixel_offset)
    if memo is not None:
        key, classified, classified_detail, decoded = memo
        shared = _with_own_lists({k: v for k, v in inst.__dict__.items() if k not in _OWN_FIELDS})
        if len(_SERIES_MEMO) >= _MEMO_SIZE:
            _SERIES_MEMO.clear()
        _SERIES_MEMO[key] = (classified, classified_detail, shared, decoded)
    return inst


def _with_own_lists(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with a fresh copy of each list field, so memo and summaries never share a list."""
    for name in _LIST_FIELDS:
        if values[name] is not None:
            values[name] = list(values[name])
    return values


def _from_memo(
    ds: Any,
    rel_path: str,
    kind: DicomKind,
    detail: str,
    shared: dict[str, Any],
    has_pixels: bool,
    pixel_offset: int | None,
) -> DicomInstance:
    """A summary from the remembered fields of its series and the file's own values."""
    values = _with_own_lists(dict(shared))
    values.update(_own_fields(ds, rel_path, has_pixels, pixel_offset))
    values["kind"], values["kind_detail"] = kind, detail
    return _construct_all(values)


def _construct(
    ds: Any,
    rel_path: str,
    kind: DicomKind,
    detail: str,
    tsyntax: str,
    has_pixels: bool,
    pixel_offset: int | None,
) -> DicomInstance:
    image_type = [str(v) for v in (ds.get("ImageType") or [])] if "ImageType" in ds else []
    geometry = multiframe_geometry(ds) if kind is DicomKind.multiframe_image else {}
    n_frames = as_int(ds.get("NumberOfFrames")) or 1
    when, precision = datetime_and_precision(ds)
    # every value below is already typed by the _dicom_values helpers: skip pydantic's validation.
    # All fields are set, so the instances share one fields-set object (it is pickled once per scan
    # batch instead of once per file: ~2 KB less per header record held on the driver).
    return _construct_all(
        dict(
            path=rel_path,
            sop_instance_uid=as_str(ds.get("SOPInstanceUID")) or rel_path,
            sop_class_uid=as_str(ds.get("SOPClassUID")),
            study_uid=as_str(ds.get("StudyInstanceUID")),
            series_uid=as_str(ds.get("SeriesInstanceUID")),
            series_number=as_int(ds.get("SeriesNumber")),
            frame_of_reference_uid=as_str(ds.get("FrameOfReferenceUID")),
            patient_key=patient_key_of(ds),
            modality=as_str(ds.get("Modality")),
            kind=kind,
            kind_detail=detail,
            rows=as_int(ds.get("Rows")),
            columns=as_int(ds.get("Columns")),
            n_frames=n_frames,
            samples_per_pixel=as_int(ds.get("SamplesPerPixel")) or 1,
            photometric_interpretation=as_str(ds.get("PhotometricInterpretation")),
            image_position=geometry.get("image_position", as_floats(ds.get("ImagePositionPatient"), 3)),
            image_orientation=geometry.get(
                "image_orientation", as_floats(ds.get("ImageOrientationPatient"), 6)
            ),
            pixel_spacing=geometry.get(
                "pixel_spacing",
                # projection X-ray (CR/DX/MG) often has only the detector-plane ImagerPixelSpacing
                as_floats(ds.get("PixelSpacing"), 2) or as_floats(ds.get("ImagerPixelSpacing"), 2),
            ),
            slice_thickness=geometry.get("slice_thickness", as_float(ds.get("SliceThickness"))),
            spacing_between_slices=as_float(ds.get("SpacingBetweenSlices")),
            frame_positions=geometry.get("frame_positions"),
            acquisition_number=as_int(ds.get("AcquisitionNumber")),
            echo_number=as_int(ds.get("EchoNumbers")),
            temporal_position=as_int(ds.get("TemporalPositionIdentifier")),
            instance_number=as_int(ds.get("InstanceNumber")),
            image_type=image_type,
            is_mosaic=any(v.upper() == "MOSAIC" for v in image_type),
            transfer_syntax_uid=tsyntax,
            bits_allocated=as_int(ds.get("BitsAllocated")),
            bits_stored=as_int(ds.get("BitsStored")),
            pixel_offset=pixel_offset,
            pixel_representation=as_int(ds.get("PixelRepresentation")),
            rescale_slope=geometry.get("rescale_slope", as_float(ds.get("RescaleSlope"))),
            rescale_intercept=geometry.get("rescale_intercept", as_float(ds.get("RescaleIntercept"))),
            has_pixel_data=has_pixels,
            study_datetime=when,
            study_time_precision=precision,
            accession_number=accession_of(ds),
            manufacturer=as_str(ds.get("Manufacturer")),
            manufacturer_model=as_str(ds.get("ManufacturerModelName")),
            body_part=as_str(ds.get("BodyPartExamined")),
            series_description=as_str(ds.get("SeriesDescription")),
            protocol_name=as_str(ds.get("ProtocolName")),
            kvp=as_float(ds.get("KVP")),
            repetition_time=as_float(ds.get("RepetitionTime")),
            echo_time=as_float(ds.get("EchoTime")),
            inversion_time=as_float(ds.get("InversionTime")),
            flip_angle=as_float(ds.get("FlipAngle")),
            magnetic_field_strength=as_float(ds.get("MagneticFieldStrength")),
            gantry_tilt=as_float(ds.get("GantryDetectorTilt")),
            convolution_kernel=as_str(ds.get("ConvolutionKernel")),
        )
    )
