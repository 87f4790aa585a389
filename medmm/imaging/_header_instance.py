"""The :class:`~medmm.imaging.records.DicomInstance` summary of a checked DICOM header.

:func:`~medmm.imaging.dicom_header.read_dicom_header` reads and checks a header; this module turns it
into the summary record: each field decoded by the :mod:`~medmm.imaging._dicom_values` helpers, the
record built without pydantic's validation (every value is already typed), and the per-series memo
(:data:`_SERIES_MEMO`) that lets the slices of a series share the fields they have in common, so a scan
decodes them once per series.

>>> import pydicom
>>> ds = pydicom.Dataset()
>>> ds.StudyDate, ds.AccessionNumber = "20200301", "A1"
>>> study_time_precision(ds), accession_of(ds)
('date', 'A1')
"""

from __future__ import annotations

import re
from typing import Any

from medmm.imaging._dicom_values import (
    as_float,
    as_floats,
    as_int,
    as_str,
    datetime_and_precision,
    multiframe_geometry,
    patient_key_of,
)
from medmm.imaging._fast_values import FastHeader, stream_signature
from medmm.imaging.records import DicomInstance, DicomKind

__all__ = ["accession_of", "burned_in_of", "modality_of", "study_time_precision"]

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
    "burned_in_annotation",  # not in the header signature either
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


_BURNED_IN_ANNOTATION = 0x00280301
#: a Modality code (VR CS: upper-case letters, digits and underscore, 16 characters at most); CS allows
#: spaces, but no modality term has one, and an upper-case name ("JOHN SMITH") has
_CODE_STRING = re.compile(r"[A-Z0-9_]{1,16}")


def modality_of(ds: Any) -> tuple[str, bool]:
    """``(modality, invalid)``: the Modality (0008,0060) when it is a DICOM code string, else ``""``
    and ``invalid`` True (a name or an id typed into the element is never kept).

    >>> import pydicom
    >>> ds = pydicom.Dataset()
    >>> ds.Modality = "CT"
    >>> modality_of(ds), modality_of(pydicom.Dataset())
    (('CT', False), ('', False))
    >>> ds.Modality = "Smith^John"
    >>> modality_of(ds)
    ('', True)
    """
    value = as_str(ds.get("Modality")).strip()
    if not value or _CODE_STRING.fullmatch(value):
        return value, False
    return "", True


def burned_in_of(ds: Any) -> bool:
    """Whether BurnedInAnnotation (0028,0301) says ``YES`` (the pixels carry text). Read from the raw
    bytes of an element stream, so it never makes pydicom parse the file.

    >>> import pydicom
    >>> ds = pydicom.Dataset()
    >>> ds.BurnedInAnnotation = "YES"
    >>> burned_in_of(ds), burned_in_of(pydicom.Dataset())
    (True, False)
    """
    if isinstance(ds, FastHeader):
        found = ds._raw(_BURNED_IN_ANNOTATION)
        if found is None:
            return False
        if isinstance(found, tuple) and found[0] in (None, "CS") and found[1].isascii():
            return bool(found[1].strip(b" \x00").upper() == b"YES")
    return as_str(ds.get("BurnedInAnnotation")).strip().upper() == "YES"


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
        "burned_in_annotation": burned_in_of(ds),
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
    modality, modality_invalid = modality_of(ds)
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
            modality=modality,
            modality_invalid=modality_invalid,
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
            burned_in_annotation=burned_in_of(ds),
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
