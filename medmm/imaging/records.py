"""Typed records of the imaging stage: DICOM header summaries and written volumes.

:class:`DicomInstance` is the small, picklable summary of one DICOM file that header reading returns
(it holds *raw* identifiers so series can be grouped and pseudonymized; it is never written out).
:class:`VolumeRecord` is one row of the ``volumes`` table: a canonical (RAS) NIfTI volume written under
the run directory, with pseudonymous ids only.

>>> inst = DicomInstance(path="ct/1.dcm", sop_instance_uid="1.2.3", kind=DicomKind.image, modality="CT")
>>> inst.kind.is_image
True
>>> DicomKind.waveform.is_image
False
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from medmm.records import Record

__all__ = [
    "ACCESSION_KIND",
    "SCHEMAS",
    "TIME_PRECISIONS",
    "DicomInstance",
    "DicomKind",
    "SourceFormat",
    "VolumeRecord",
    "accession_pseudonym",
    "time_precision",
]

#: The :meth:`~medmm.pseudonym.Pseudonymizer.id` kind of accession numbers, wherever they come from
#: (DICOM AccessionNumber, an ids table, a reports table): the kind of report ids, because in RIS
#: exports the report id *is* the accession number (``medmm reports parse`` takes an ``accession``
#: column as the report id by default). One accession number -> one pseudonym ``rep-...`` everywhere.
ACCESSION_KIND = "report"
#: Values of ``study_time_precision`` / ``report_time_precision``.
TIME_PRECISIONS = ("datetime", "date")


def accession_pseudonym(pseudonymizer: Any, accession: str | None) -> str | None:
    """``Pseudonymizer.id(accession, "report")``, or ``None`` for an empty / missing accession number.

    >>> from medmm.pseudonym import Pseudonymizer
    >>> pz = Pseudonymizer(b"k" * 32)
    >>> accession_pseudonym(pz, " A123 ") == pz.id("A123", "report"), accession_pseudonym(pz, "")
    (True, None)
    """
    text = "" if accession is None else str(accession).strip()
    return pseudonymizer.id(text, ACCESSION_KIND) if text else None


def time_precision(text: str | None) -> str | None:
    """``"date"`` for an ISO date without a time of day (``2020-03-01``), ``"datetime"`` for a date-time,
    ``None`` for an empty value.

    >>> time_precision("2020-03-01"), time_precision("2020-03-01T10:00"), time_precision("")
    ('date', 'datetime', None)
    """
    t = (text or "").strip()
    if not t:
        return None
    return "datetime" if len(t) > 10 and t[10] in "T t" else "date"


class DicomKind(StrEnum):
    """What a DICOM object is, decided from its SOP Class UID (and DICOMDIR markers)."""

    image = "image"  # single-frame image (CT/MR/PET/CR/DX/US/SC ...), one slice of a series
    multiframe_image = "multiframe_image"  # enhanced / multi-frame image: one file is a whole stack
    sr = "sr"  # structured report
    seg = "seg"  # segmentation object
    rt = "rt"  # RT structure set / plan / dose / ion plan ...
    presentation_state = "presentation_state"
    waveform = "waveform"  # ECG, haemodynamic, audio ...: routed to the signals stage
    dicomdir = "dicomdir"  # media directory
    other_non_image = "other_non_image"  # encapsulated PDF, key object selection, raw data ...
    unsupported_image = "unsupported_image"  # pixel data we cannot turn into a volume (e.g. WSI)

    @property
    def is_image(self) -> bool:
        """True for kinds whose pixel data becomes a volume."""
        return self in (DicomKind.image, DicomKind.multiframe_image)


class SourceFormat(StrEnum):
    """Container format a volume was read from."""

    dicom = "dicom"
    nifti = "nifti"
    analyze = "analyze"
    png = "png"  # 2D picture exports (medmm.imaging.raster): no pixel spacing, no patient orientation
    jpeg = "jpeg"  # also 12/16-bit JPEG and JPEG-LS pictures (decoded by pylibjpeg-libjpeg)
    tiff = "tiff"
    jpeg2000 = "jpeg2000"  # JP2 file (.jp2) or bare JPEG 2000 codestream (.j2k/.j2c)


class DicomInstance(Record):
    """Header summary of one DICOM file (no pixel data); raw ids stay inside the process.

    Geometry fields follow DICOM (LPS patient coordinates, millimetres). For multi-frame objects
    ``frame_positions`` holds each frame's ImagePositionPatient (from the per-frame functional groups)
    and ``image_orientation`` / ``pixel_spacing`` come from the shared (or first per-frame) group.
    """

    path: str  # relative to the archive root, POSIX separators
    sop_instance_uid: str
    sop_class_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    series_number: int | None = None
    frame_of_reference_uid: str = ""
    patient_key: str = ""  # raw PatientID (or a fallback); used only to pseudonymize
    modality: str = ""  # a DICOM code string ([A-Z0-9 _], 16 at most), else "" and modality_invalid
    #: the Modality element held something other than a DICOM code string (a name typed into it ...):
    #: ``modality`` is left empty (the value is not kept) and the volume gets a warning
    modality_invalid: bool = False
    kind: DicomKind
    kind_detail: str = ""  # human-readable SOP class name, e.g. "12-lead ECG Waveform Storage"
    rows: int | None = None
    columns: int | None = None
    n_frames: int = 1
    samples_per_pixel: int = 1
    photometric_interpretation: str = ""
    image_position: list[float] | None = None
    image_orientation: list[float] | None = None
    pixel_spacing: list[float] | None = None
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None
    frame_positions: list[list[float]] | None = None  # multi-frame: per-frame IPP
    acquisition_number: int | None = None
    echo_number: int | None = None
    temporal_position: int | None = None
    instance_number: int | None = None
    image_type: list[str] = Field(default_factory=list)
    is_mosaic: bool = False  # Siemens MOSAIC: several slices tiled in one 2D frame
    transfer_syntax_uid: str = ""
    bits_allocated: int | None = None
    bits_stored: int | None = None
    pixel_representation: int | None = None
    # byte offset of native (uncompressed) Pixel Data (7FE0,0010) in the file, None when encapsulated /
    # float / absent: lets conversion read the pixels without parsing the header a second time
    pixel_offset: int | None = None
    rescale_slope: float | None = None
    rescale_intercept: float | None = None
    has_pixel_data: bool = False
    study_datetime: str | None = None  # raw ISO datetime; shifted only when written out
    #: ``"datetime"``, or ``"date"`` when the date came without a time (``study_datetime`` is then
    #: midnight, which is no time of day); ``None`` without a date
    study_time_precision: str | None = None
    accession_number: str = ""  # raw AccessionNumber (0008,0050); used only to pseudonymize
    #: BurnedInAnnotation (0028,0301) is YES: the pixels carry text (names, ids, dates may be drawn in)
    burned_in_annotation: bool = False
    # acquisition metadata for sidecars; series_description and protocol_name are operator free text,
    # never written out (series_description only helps to group a series' instances)
    manufacturer: str = ""
    manufacturer_model: str = ""
    body_part: str = ""
    series_description: str = ""
    protocol_name: str = ""
    kvp: float | None = None
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    flip_angle: float | None = None
    magnetic_field_strength: float | None = None
    gantry_tilt: float | None = None
    convolution_kernel: str = ""


class VolumeRecord(Record):
    """One written canonical volume (row of the ``volumes`` table); identifiers are pseudonyms.

    ``path`` and ``sidecar`` are relative to the run directory; ``affine`` maps voxel indices to RAS+
    world millimetres (the NIfTI sform/qform written); ``shape`` is (x, y, z[, t]) in RAS order.
    """

    volume_id: str
    path: str
    sidecar: str
    shape: list[int]
    spacing: list[float]
    orientation: str = "RAS"
    affine: list[list[float]]
    modality: str = ""
    n_sources: int
    source_format: SourceFormat
    sources: list[str] = Field(default_factory=list)  # input paths relative to the archive root
    patient_id: str | None = None
    study_id: str | None = None
    series_id: str | None = None
    study_time: str | None = None  # patient-date-shifted ISO datetime
    warnings: list[str] = Field(default_factory=list)
    dtype: str
    #: keyed pseudonym of the DICOM AccessionNumber (or an ids table's accession column) with the kind
    #: of report ids: ``Pseudonymizer.id(accession, "report")`` (:data:`ACCESSION_KIND`), so it equals the
    #: ``report_id`` of a report whose id is that accession number, and the ``accession_id`` the reports
    #: stage writes for ``--accession-column``; ``None`` when the images carry none
    accession_id: str | None = None
    #: ``"datetime"``, or ``"date"`` when ``study_time`` is a date without a time of day (DICOM StudyDate
    #: without StudyTime, an ids table's date): compare it as a whole day, not as midnight
    study_time_precision: str | None = None


SCHEMAS: dict[str, type[BaseModel]] = {"volumes": VolumeRecord}
