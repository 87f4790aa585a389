"""Turn an assembled DICOM stack, or a NIfTI / ANALYZE file, into a canonical RAS volume + record.

Both functions are plain (no Dask): one call per stack / file, memory bounded by one series. Bad input
raises an :class:`~medmm.errors.InputError` subclass naming the file, the problem and the fix.

>>> import tempfile, nibabel as nib
>>> from medmm.pseudonym import Pseudonymizer
>>> archive, run_dir = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
>>> las = np.diag([-1.0, 1.0, 1.0, 1.0])  # x runs right to left
>>> nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), las), archive / "brain.nii.gz")
>>> rec = convert_image_file("brain.nii.gz", archive, run_dir, Pseudonymizer(b"k" * 32), "nifti")
>>> rec.path, rec.orientation, rec.shape
('volumes/vol-....nii.gz', 'RAS', [4, 5, 6])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from medmm.errors import InputError
from medmm.imaging.errors import ImageFileError, MixedGeometryError
from medmm.imaging.geometry import LPS_TO_RAS, affine_lps, normal_of
from medmm.imaging.image_file import (
    check_image_file,
    narrow_int64,
    no_orientation,
    refuse_cifti,
    squeeze_trailing,
)
from medmm.imaging.pixels import native_fast_path, read_mosaic, read_multiframe, read_native_stack, read_slice
from medmm.imaging.raster import PICTURE_AXES, RASTER_FORMATS, convert_raster_file, given_ids
from medmm.imaging.records import (
    DicomInstance,
    DicomKind,
    SourceFormat,
    VolumeRecord,
    accession_pseudonym,
    time_precision,
)
from medmm.imaging.series import SeriesStack, has_patient_geometry, series_key_of
from medmm.imaging.volume_store import canonical_dtype, write_volume
from medmm.pseudonym import Pseudonymizer

__all__ = [
    "DESCRIPTION_FIELDS",
    "convert_image_file",
    "convert_stack",
    "dicom_sidecar",
    "narrow_int64",
    "squeeze_trailing",
]

#: (DicomInstance field, sidecar key) of the acquisition metadata a sidecar holds. SeriesDescription and
#: ProtocolName are not among them: they are free text typed at the console ("CHEST JOHN SMITH",
#: "TRAUMA MRN4471923"), so they are never written (series are told apart by ``series_id``, image type
#: and the acquisition parameters below); they only help to group a series' instances
#: (:func:`~medmm.imaging.series_keys.series_key_of`).
_SIDECAR_FIELDS = (
    ("modality", "modality"),
    ("manufacturer", "manufacturer"),
    ("manufacturer_model", "manufacturer_model"),
    ("body_part", "body_part"),
    ("kvp", "kvp"),
    ("repetition_time", "repetition_time_ms"),
    ("echo_time", "echo_time_ms"),
    ("inversion_time", "inversion_time_ms"),
    ("flip_angle", "flip_angle_deg"),
    ("magnetic_field_strength", "magnetic_field_strength_t"),
    ("slice_thickness", "slice_thickness_mm"),
    ("convolution_kernel", "convolution_kernel"),
    ("gantry_tilt", "gantry_detector_tilt_deg"),
    ("photometric_interpretation", "photometric_interpretation"),
)


#: the warning of a DICOM picture without patient geometry and without PixelSpacing
DICOM_NO_SPACING_NOTE = "no PixelSpacing: spacing 1.0 is one pixel, not a millimetre"


#: (DicomInstance field, sidecar key) of the operator free text written only on request
#: (``medmm ingest --keep-descriptions``): identity-bearing, never shared
DESCRIPTION_FIELDS = (("series_description", "series_description"), ("protocol_name", "protocol_name"))


def dicom_sidecar(first: DicomInstance, n_sources: int, keep_descriptions: bool = False) -> dict[str, Any]:
    """Non-identifying acquisition metadata of a DICOM stack (no names, ids, UIDs, real dates or free
    text: no SeriesDescription / ProtocolName, see :data:`_SIDECAR_FIELDS`, unless
    ``keep_descriptions``: the site asked for them, :data:`DESCRIPTION_FIELDS`).

    >>> inst = DicomInstance(path="a", sop_instance_uid="1", kind="image", modality="CT", kvp=120,
    ...                      series_description="CHEST JOHN SMITH")
    >>> side = dicom_sidecar(inst, 1)
    >>> side["kvp"], "series_description" in side
    (120.0, False)
    """
    out: dict[str, Any] = {"source_format": "dicom", "n_sources": n_sources}
    for attr, key in (*_SIDECAR_FIELDS, *(DESCRIPTION_FIELDS if keep_descriptions else ())):
        value = getattr(first, attr)
        if value not in (None, ""):
            out[key] = value
    if first.image_type:
        out["image_type"] = first.image_type
    if first.modality == "CT" and first.rescale_slope is not None:
        out["units"] = "HU"
    return out


def _shifted(inst: DicomInstance, pseudonymizer: Pseudonymizer) -> str | None:
    if not inst.study_datetime or not inst.patient_key:
        return None
    try:
        when = datetime.fromisoformat(inst.study_datetime)
    except ValueError:
        return None
    return pseudonymizer.shift_datetime(inst.patient_key, when).isoformat()


#: the warning of a stack with BurnedInAnnotation (0028,0301) YES in one of its files
BURNED_IN_NOTE = (
    "BurnedInAnnotation YES: the pixels carry text (names, ids or dates may be drawn in); check or mask "
    "this volume before medmm share --with-volumes, or leave it out of shares"
)
#: the warning of a stack whose Modality element holds no DICOM code string (the value is not kept)
MODALITY_INVALID_NOTE = (
    "Modality (0008,0060) is not a DICOM code string (value not shown): modality left empty; correct "
    "the element (e.g. with dcmodify) and ingest again"
)


#: the warning of a single-slice volume whose slice thickness is not in its header
NO_THICKNESS_NOTE = (
    "slice thickness unknown (no SliceThickness or SpacingBetweenSlices): 1.0 mm assumed along the "
    "slice normal; the third spacing of this single slice is not measured"
)
#: the warning of a MONOCHROME1 image (stored values kept: low values are shown bright by DICOM viewers)
MONOCHROME1_NOTE = (
    "MONOCHROME1: stored values kept, so low values mean bright (DICOM viewers invert such images; "
    "plot_slice and the models do not): invert (min + max - value) before comparing or mixing with "
    "MONOCHROME2 images or picture exports"
)


def _single_step(inst: DicomInstance, notes: list[str]) -> list[float]:
    depth = inst.spacing_between_slices or inst.slice_thickness
    if not depth:
        notes.append(NO_THICKNESS_NOTE)
        depth = 1.0
    return [float(v) for v in normal_of(inst.image_orientation or [1, 0, 0, 0, 1, 0]) * depth]


def _dicom_volume(
    stack: SeriesStack, insts: list[DicomInstance], archive_root: Path
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(array [col,row,slice(,...)], LPS affine or None when there is no patient geometry, warnings)."""
    first = insts[0]
    notes: list[str] = []
    if first.is_mosaic:
        data, affine = read_mosaic(archive_root / first.path, first)
        notes.append("Siemens mosaic unpacked with the CSA header")
        return data, affine, notes
    if first.kind is DicomKind.multiframe_image or first.n_frames > 1:
        data = read_multiframe(archive_root / first.path, first, stack.frame_order)
        if stack.step is None and first.frame_positions and len(first.frame_positions) > 1:
            data = data[:, :, None, ...] if data.ndim == 3 else data  # time series of one slice
        position = None
        if first.frame_positions and stack.frame_order:
            position = first.frame_positions[stack.frame_order[0]]
        position = position or first.image_position
        step = stack.step or (_single_step(first, notes) if first.image_orientation else None)
    elif native_fast_path(insts):  # uncompressed: bytes straight into the stack, no re-parse
        data = read_native_stack(archive_root, insts)
        position = first.image_position
        step = (
            stack.step
            if len(insts) > 1
            else (_single_step(first, notes) if first.image_orientation else None)
        )
    else:
        slices = [read_slice(archive_root / inst.path, inst) for inst in insts]
        shapes = {s.shape for s in slices}
        if len(shapes) > 1:
            raise MixedGeometryError(
                _stack_where(stack),
                f"slices decode to different pixel array shapes {sorted(shapes)}",
                "re-export the series; its slices disagree with their Rows/Columns headers",
            )
        data = np.stack(slices, axis=2)
        position = first.image_position
        step = (
            stack.step
            if len(insts) > 1
            else (_single_step(first, notes) if first.image_orientation else None)
        )
    if first.photometric_interpretation == "MONOCHROME1":
        notes.append(MONOCHROME1_NOTE)
    iop, pixel_spacing = first.image_orientation, first.pixel_spacing
    if not (position and step and iop and pixel_spacing and has_patient_geometry(first)):
        notes[:] = [n for n in notes if n != NO_THICKNESS_NOTE]  # a picture has no third spacing at all
        notes.append("no patient geometry: affine is pixel spacing only, rows counted from the bottom")
        return data, None, notes
    return data, affine_lps(iop, position, pixel_spacing, step), notes


def _stack_where(stack: SeriesStack) -> str:
    return stack.paths[0] if len(stack.paths) == 1 else f"{stack.paths[0]} (+{len(stack.paths) - 1} files)"


def convert_stack(
    stack: SeriesStack,
    instances: list[DicomInstance],
    archive_root: Path,
    run_dir: Path,
    pseudonymizer: Pseudonymizer,
    *,
    keep_descriptions: bool = False,
) -> VolumeRecord:
    """Decode, stack, rescale and write one DICOM stack as a RAS NIfTI volume with a sidecar.

    Parameters
    ----------
    stack
        From :func:`~medmm.imaging.series.assemble_series`; a stack with ``problems`` is refused.
    instances
        Header summaries of (at least) the stack's files; looked up by path.
    archive_root
        Root the instance paths are relative to.
    run_dir
        Run directory; the volume goes to ``run_dir/volumes/<volume_id>.nii.gz``.
    pseudonymizer
        Site-keyed pseudonymizer for ids and the patient date shift.
    keep_descriptions
        Also write SeriesDescription and ProtocolName (operator free text: may name the patient) into
        the sidecar (``medmm ingest --keep-descriptions``).

    Returns
    -------
    VolumeRecord
        Pseudonymous ids, canonical geometry and relative output paths.

    Raises
    ------
    InputError
        The stack's first problem (missing slice, tilt ...), or a decode error
        (:class:`~medmm.imaging.errors.TruncatedPixelDataError`, ``PixelDecodeError`` ...).

    Examples
    --------
    >>> rec = convert_stack(stack, insts, archive, run_dir, pseudonymizer)  # doctest: +SKIP
    >>> rec.shape  # doctest: +SKIP
    [512, 512, 20]
    """
    if stack.problems:
        raise stack.problems[0].exception()
    by_path = {i.path: i for i in instances}
    missing = [p for p in stack.paths if p not in by_path]
    if missing:
        raise ValueError(f"convert_stack: no DicomInstance given for {missing[:3]}")
    insts = [by_path[p] for p in stack.paths]
    first = insts[0]
    data, affine_l, notes = _dicom_volume(stack, insts, Path(archive_root))
    if data.dtype.kind == "f":
        data = canonical_dtype(data)
    volume_id = pseudonymizer.id(stack.stack_key, "volume")
    warnings_ = [*stack.warnings, *notes]
    if first.modality_invalid:
        warnings_.append(MODALITY_INVALID_NOTE)
    if any(i.burned_in_annotation for i in insts):
        warnings_.append(BURNED_IN_NOTE)
    sidecar = dicom_sidecar(first, len(insts), keep_descriptions)
    study_time = _shifted(first, pseudonymizer)
    sidecar.update(volume_id=volume_id, warnings=warnings_, study_time=study_time)
    if stack.split_reason:
        sidecar["split_reason"] = stack.split_reason
    if affine_l is None:  # a picture (CR/DX/US/SC): laid out as picture exports are, upright in plot_slice
        units = "mm"
        if not first.pixel_spacing:  # never pretend millimetres
            warnings_.append(DICOM_NO_SPACING_NOTE)
            sidecar.update(spacing_known=False, spacing_unit="pixel")
            units = "unknown"
        spacing = first.pixel_spacing or [1.0, 1.0]
        affine = np.diag([float(spacing[1]), float(spacing[0]), 1.0, 1.0])
        sidecar["axes"] = PICTURE_AXES
        data = data[:, ::-1]  # [column, row] -> rows counted from the bottom (picture_to_volume)
        written = write_volume(
            run_dir, volume_id, data, affine, sidecar, orientation="none", reorient=False, xyz_units=units
        )
    else:
        written = write_volume(run_dir, volume_id, data, LPS_TO_RAS @ affine_l, sidecar)
    pkey = first.patient_key
    return VolumeRecord(
        volume_id=volume_id,
        **asdict(written),
        modality=first.modality,
        n_sources=len(insts),
        source_format=SourceFormat.dicom,
        sources=list(stack.paths),
        patient_id=pseudonymizer.id(pkey, "patient") if pkey else None,
        study_id=pseudonymizer.id(first.study_uid, "study") if first.study_uid else None,
        series_id=pseudonymizer.id(series_key_of(first), "series"),
        study_time=study_time,
        warnings=warnings_,
        accession_id=accession_pseudonym(pseudonymizer, first.accession_number),
        study_time_precision=first.study_time_precision if study_time else None,
    )


def convert_image_file(
    rel_path: str,
    archive_root: Path,
    run_dir: Path,
    pseudonymizer: Pseudonymizer,
    fmt: str,
    *,
    ids: Mapping[str, str] | None = None,
) -> VolumeRecord:
    """Read a NIfTI-1/2 (.nii, .nii.gz, .hdr/.img) or ANALYZE 7.5 (.hdr/.img) file, write it as RAS.

    A PNG, JPEG or TIFF picture (``fmt`` ``"png"``, ``"jpeg"``, ``"tiff"``) goes to
    :func:`medmm.imaging.raster.convert_raster_file` instead: a one-slice volume with unknown spacing.

    Loading goes through MONAI's :class:`monai.data.NibabelReader` (nibabel's affine: sform/qform for
    NIfTI, pixdim with the ANALYZE default radiological x flip); the array is reoriented to the closest
    canonical RAS+ orientation, so the world position of every voxel is unchanged.

    Parameters
    ----------
    rel_path
        Path relative to ``archive_root`` (either member of a pair).
    archive_root, run_dir, pseudonymizer
        As for :func:`convert_stack`.
    fmt
        ``"nifti"`` or ``"analyze"`` (or ``"png"``, ``"jpeg"``, ``"tiff"``: see above).
    ids
        Raw ``patient``, ``study``, ``study_time`` and ``modality`` the user gives for this file (a row of
        ``medmm ingest --ids``), pseudonymized by :func:`medmm.imaging.raster.given_ids`; ``None``: the
        volume has no patient or study id and an unknown modality, as the file itself carries none.

    Raises
    ------
    MissingCompanionError
        A ``.hdr`` without its ``.img`` (or the reverse).
    ImageFileError
        Empty file, corrupt gzip, unreadable header or data shorter than the header says.

    Examples
    --------
    >>> import tempfile, nibabel as nib
    >>> from medmm.pseudonym import Pseudonymizer
    >>> root, run_dir = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
    >>> vol = np.zeros((9, 11, 9, 1), np.uint8)  # a 3D volume whose header says dim[0] = 4
    >>> nib.save(nib.AnalyzeImage(vol, np.diag([2.0, 2.0, 2.0, 1.0])), root / "atlas.hdr")
    >>> rec = convert_image_file("atlas.img", root, run_dir, Pseudonymizer(b"k" * 32), "analyze")
    >>> rec.shape, rec.sources, rec.warnings[0][:30]
    ([9, 11, 9], ['atlas.img'], 'ANALYZE 7.5 has no orientation')
    """
    if fmt in RASTER_FORMATS:
        picture = convert_raster_file(rel_path, archive_root, run_dir, pseudonymizer, fmt, ids=ids)
        return picture.model_copy(update=_given_link_fields(ids, picture, pseudonymizer))
    from monai.data import NibabelReader

    if fmt not in ("nifti", "analyze"):
        raise ValueError(
            f"convert_image_file: fmt must be 'nifti' or 'analyze', not {fmt!r} ({rel_path}); "
            f"pictures: 'png', 'jpeg' or 'tiff'"
        )
    source = SourceFormat(fmt)
    path = check_image_file(rel_path, Path(archive_root) / rel_path)
    refuse_cifti(path, rel_path)
    reader = NibabelReader(as_closest_canonical=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = reader.read(str(path))
            data, meta = reader.get_data(img)
    except InputError:
        raise
    except Exception as exc:  # nibabel raises ImageFileError, ValueError, EOFError, OSError ...
        # nibabel quotes the full path: keep the reason relative to the archive, as every manifest path is
        detail = " ".join(str(exc).replace(f"{Path(archive_root)}{os.sep}", "").split())
        raise ImageFileError(
            rel_path,
            f"cannot read the {source.value} image ({type(exc).__name__}: {detail})",
            "check that header and data belong together and are complete; re-export the image",
        ) from exc
    affine = np.asarray(meta["original_affine"], dtype=float)
    volume_id = pseudonymizer.id(f"{source.value}:{path.relative_to(archive_root).as_posix()}", "volume")
    notes: list[str] = []
    if source is SourceFormat.analyze:
        notes.append("ANALYZE 7.5 has no orientation: nibabel's default (radiological, x flipped) is assumed")
    elif no_orientation(img):
        notes.append(
            "NIfTI qform_code and sform_code are both 0 (orientation unknown): nibabel's default "
            "(ANALYZE-like: voxel sizes, x flipped, centred) is assumed"
        )
    idents = given_ids(ids, pseudonymizer, notes)
    modality = (ids or {}).get("modality", "")
    sidecar: dict[str, Any] = {
        "source_format": source.value,
        "n_sources": 1,
        "volume_id": volume_id,
        "warnings": notes,
    }
    if modality:
        sidecar["modality"] = modality
    if idents["study_time"]:
        sidecar["study_time"] = idents["study_time"]
    array = squeeze_trailing(np.asarray(data))  # a 3D volume stays 3D whatever dim[0] declares
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        array = narrow_int64(array)
    if array.dtype.kind == "f":  # nibabel applies scl_slope/inter in float64
        array = canonical_dtype(array)
        array = array.astype(np.float32) if array.dtype == np.float64 else array
    written = write_volume(run_dir, volume_id, array, affine, sidecar)
    rec = VolumeRecord(
        volume_id=volume_id,
        **asdict(written),
        modality=modality,
        n_sources=1,
        source_format=source,
        sources=[Path(rel_path).as_posix()],
        warnings=notes,
        **idents,
    )
    return rec.model_copy(update=_given_link_fields(ids, rec, pseudonymizer))


def _given_link_fields(
    ids: Mapping[str, str] | None, rec: VolumeRecord, pseudonymizer: Pseudonymizer
) -> dict[str, str | None]:
    """``accession_id`` and ``study_time_precision`` of a file given ids by the user (``--ids``): the
    accession pseudonym (only with a patient id, as the other ids) and ``"date"`` for a study time
    written without a time of day."""
    if not ids or rec.patient_id is None:
        return {}
    return {
        "accession_id": accession_pseudonym(pseudonymizer, ids.get("accession")),
        "study_time_precision": time_precision(ids.get("study_time")) if rec.study_time else None,
    }
