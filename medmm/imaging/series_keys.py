"""What puts DICOM instances in one stack: the series key, the geometry key, repeats separated.

:func:`~medmm.imaging.series.assemble_series` groups instances by :func:`series_key_of` (the Series
Instance UID, or a surrogate when an anonymiser blanked it), splits a series whose slices differ in
:func:`geometry_key` (orientation, image size, pixel spacing, samples per pixel; :func:`describe_split`
says which), and separates slices repeated at one position by echo number, temporal position or
acquisition number when that leaves no repeats (:func:`split_repeats`). :func:`has_patient_geometry`
tells an instance with a usable position, orientation and spacing.

>>> from medmm.imaging.records import DicomInstance
>>> series_key_of(DicomInstance(path="a.dcm", sop_instance_uid="1", series_uid="1.2.3", kind="image"))
'1.2.3'
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from medmm.imaging.geometry import analyze_positions, orientation_key
from medmm.imaging.records import DicomInstance

__all__ = [
    "describe_split",
    "geometry_key",
    "has_patient_geometry",
    "series_key_of",
    "split_repeats",
    "valid_orientation",
]


def series_key_of(inst: DicomInstance) -> str:
    """Raw grouping key of an instance's series: the Series Instance UID, or when an anonymizer blanked
    it, a surrogate from study, frame of reference, series number, modality and description."""
    if inst.series_uid:
        return inst.series_uid
    parts = (inst.frame_of_reference_uid, inst.series_number, inst.modality, inst.series_description)
    return "no-series-uid:" + "|".join("" if v is None else str(v) for v in parts)


def geometry_key(inst: DicomInstance) -> tuple[object, ...]:
    """What slices of one stack share: orientation, image size, pixel spacing (0.001 mm), samples."""
    iop, ps = inst.image_orientation, inst.pixel_spacing
    return _geometry_key_of(
        tuple(iop) if iop is not None else None,
        tuple(ps) if ps is not None else None,
        inst.rows,
        inst.columns,
        inst.samples_per_pixel,
    )


@functools.lru_cache(maxsize=256)  # the slices of a series share their geometry
def _geometry_key_of(
    iop: tuple[float, ...] | None,
    pixel_spacing: tuple[float, ...] | None,
    rows: int | None,
    columns: int | None,
    samples: int,
) -> tuple[object, ...]:
    spacing = tuple(round(v, 3) for v in pixel_spacing) if pixel_spacing else None
    return (orientation_key(iop), (rows, columns), spacing, samples)


def describe_split(keys: Sequence[tuple[object, ...]]) -> str:
    """The ``split_reason`` of a series split by :func:`geometry_key`: which attributes differed."""
    parts = []
    for idx, label in enumerate(("orientation", "image size", "pixel spacing", "samples per pixel")):
        if len({k[idx] for k in keys}) > 1:
            parts.append(label)
    return "mixed " + " and ".join(parts) + f": split into {len(keys)} stacks"


def valid_orientation(iop: Sequence[float]) -> bool:
    """Two unit vectors at right angles (tolerance 1e-2): anything else has no usable geometry."""
    return _valid_iop(tuple(iop))


@functools.lru_cache(maxsize=256)  # the slices of a series share their orientation
def _valid_iop(iop: tuple[float, ...]) -> bool:
    row, col = np.asarray(iop[:3], dtype=float), np.asarray(iop[3:6], dtype=float)
    return bool(
        abs(np.linalg.norm(row) - 1) < 1e-2 and abs(np.linalg.norm(col) - 1) < 1e-2 and abs(row @ col) < 1e-2
    )


def has_patient_geometry(inst: DicomInstance) -> bool:
    """True when position, a valid orientation and positive pixel spacing are all present."""
    return bool(
        inst.image_position
        and inst.image_orientation
        and inst.pixel_spacing
        and all(v > 0 for v in inst.pixel_spacing)
        and valid_orientation(inst.image_orientation)
    )


def split_repeats(
    group: list[DicomInstance],
) -> tuple[list[tuple[str, list[DicomInstance]]], str]:
    """Separate repeated positions by echo / temporal position / acquisition number when that works."""
    fields: list[tuple[str, Callable[[DicomInstance], int | None]]] = [
        ("echo number", lambda i: i.echo_number),
        ("temporal position", lambda i: i.temporal_position),
        ("acquisition number", lambda i: i.acquisition_number),
    ]
    for label, get in fields:
        values = {get(i) for i in group}
        if len(values) < 2:
            continue
        parts: dict[int | None, list[DicomInstance]] = defaultdict(list)
        for inst in group:
            parts[get(inst)].append(inst)
        if all(
            not analyze_positions(
                [i.image_position or [] for i in p], group[0].image_orientation or []
            ).duplicates
            for p in parts.values()
        ):
            ordered = sorted(parts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
            subs = [(f"{label.replace(' ', '_')}={v}", p) for v, p in ordered]
            shown = ", ".join(str(v) for v, _ in ordered)
            return subs, f"repeated slice positions separated by {label} ({shown}): {len(subs)} stacks"
    return [("", group)], ""
