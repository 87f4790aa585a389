"""Assemble DICOM instances into stacks (future volumes): group, split, sort along the normal, check.

Policy (documented in ``docs/imaging.md``):

* **non-image kinds** (SR, SEG, RT, presentation state, waveform, DICOMDIR, documents) -> outcome
  ``non_image`` with the kind in the reason; **unsupported pixel data** (whole-slide, video) ->
  ``quarantined`` (:class:`~medmm.imaging.errors.UnsupportedImageError`); a repeated SOP Instance UID ->
  ``duplicate`` naming the kept file. The copy kept is the first in path order whose pixel data
  decodes (``decodable``, e.g. :func:`decodable_in`; asked only about repeated instances, in path
  order, until one decodes), else the first in path order.
* **split** a series into separate stacks when slices differ in orientation, image size, pixel
  spacing or samples per pixel, or when positions repeat and echo number / temporal position /
  acquisition number separates them into duplicate-free stacks; ``split_reason`` says why.
* **quarantine** a stack (``problems``) for: missing slices (a gap > 1.5x the median spacing), different
  instances at one position that no attribute separates, every instance at a single position (not a
  volume), positions off one straight line (not a volume), gantry tilt (unless ``allow_tilt``), and
  2-slice stacks (too few slices to check spacing; single images are fine).
* **warn** for non-uniform spacing (within the gap threshold) and, with ``allow_tilt``, gantry tilt
  (the volume keeps the exact sheared affine).

Slices are sorted by their distance along the slice normal (ImagePositionPatient .
(row x column)), never by InstanceNumber.

>>> from medmm.imaging.records import DicomInstance, DicomKind
>>> mk = lambda n, z: DicomInstance(path=f"s/{n}.dcm", sop_instance_uid=f"1.{n}", series_uid="9",
...     kind=DicomKind.image, rows=2, columns=2, instance_number=n, image_position=[0, 0, z],
...     image_orientation=[1, 0, 0, 0, 1, 0], pixel_spacing=[1, 1])
>>> out = assemble_series([mk(1, 2.0), mk(2, 1.0), mk(3, 0.0)])
>>> out.stacks[0].paths, out.stacks[0].problems
(['s/3.dcm', 's/2.dcm', 's/1.dcm'], [])
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import Field

from medmm.errors import InputError, reason_of
from medmm.imaging import errors as imaging_errors
from medmm.imaging.errors import UnsupportedImageError
from medmm.imaging.geometry import PositionReport, analyze_positions
from medmm.imaging.records import DicomInstance, DicomKind
from medmm.imaging.series_keys import (
    describe_split,
    geometry_key,
    has_patient_geometry,
    series_key_of,
    split_repeats,
    valid_orientation,
)
from medmm.records import Record, Status

__all__ = [
    "FileOutcome",
    "SeriesAssembly",
    "SeriesStack",
    "StackProblem",
    "assemble_series",
    "decodable_in",
    "has_patient_geometry",
    "series_key_of",
]

MIN_SLICES = 3
_ROUTES = {
    DicomKind.waveform: "routed to the signals stage",
    DicomKind.sr: "kept for the reports stage",
    DicomKind.seg: "kept as a segmentation of its referenced series",
    DicomKind.rt: "kept as an RT object",
    DicomKind.presentation_state: "kept as display settings",
    DicomKind.dicomdir: "media index; the files it lists are ingested on their own",
    DicomKind.other_non_image: "kept as a non-image object",
}


class StackProblem(Record):
    """Why a stack is quarantined: an :class:`InputError` subclass name, the problem and the fix."""

    error: str
    path: str
    problem: str
    fix: str

    def exception(self) -> InputError:
        """The matching :mod:`medmm.imaging.errors` exception (``InputError`` if unknown)."""
        cls = getattr(imaging_errors, self.error, InputError)
        return cls(self.path, self.problem, self.fix)

    @property
    def reason(self) -> str:
        """Manifest reason, ``"ClassName: path: problem. Fix: fix"``."""
        return reason_of(self.exception())


class FileOutcome(Record):
    """Status of a file that does not go into a volume (duplicate, quarantined, non_image)."""

    status: Status
    reason: str
    kind: DicomKind | None = None


class SeriesStack(Record):
    """Files (or frames) forming one volume, sorted along the slice normal.

    ``stack_key`` holds raw UIDs: use it only to derive pseudonyms. ``frame_order`` (multi-frame) lists
    frame indices in slice order. ``step`` is the world (LPS) vector between consecutive slices.
    """

    stack_key: str
    paths: list[str]
    frame_order: list[int] | None = None
    step: list[float] | None = None
    spacing: float | None = None
    split_reason: str = ""
    warnings: list[str] = Field(default_factory=list)
    problems: list[StackProblem] = Field(default_factory=list)

    @property
    def quarantined(self) -> bool:
        """True when :attr:`problems` is non-empty: convert would refuse the stack."""
        return bool(self.problems)

    @property
    def reason(self) -> str:
        """All problems as one manifest reason ("" when none)."""
        return "; ".join(p.reason for p in self.problems)


class SeriesAssembly(Record):
    """Result of :func:`assemble_series`: each input file is in one stack or in ``outcomes``."""

    stacks: list[SeriesStack] = Field(default_factory=list)
    outcomes: dict[str, FileOutcome] = Field(default_factory=dict)


def _where(paths: Sequence[str]) -> str:
    if len(paths) == 1:
        return paths[0]
    common = posixpath.commonpath(list(paths)) if all("/" in p for p in paths) else ""
    return f"{common or '.'}/ ({len(paths)} files of one series)"


def _check_stack(
    stack: SeriesStack, insts: list[DicomInstance], min_slices: int, allow_tilt: bool
) -> SeriesStack:
    """Sort a single-frame stack along its normal and attach warnings/problems."""
    iop = insts[0].image_orientation or []
    report = analyze_positions([i.image_position or [] for i in insts], iop)
    ordered = [insts[k] for k in report.order]
    stack.paths = [i.path for i in ordered]
    stack.step, stack.spacing = report.step, report.spacing
    _apply_report(stack, report, len(insts), min_slices, allow_tilt)
    return stack


def _apply_report(
    stack: SeriesStack, report: PositionReport, n: int, min_slices: int, allow_tilt: bool
) -> None:
    where = _where(stack.paths)
    context = f" (after {stack.split_reason})" if stack.split_reason else ""

    def problem(err: type[InputError], text: str, fix: str) -> None:
        stack.problems.append(StackProblem(error=err.__name__, path=where, problem=text + context, fix=fix))

    if n < 2:
        return
    if report.spacing is None:
        problem(
            imaging_errors.NotAVolumeError,
            f"not a volume: all {n} images lie at one slice position (repeated images of one slice)",
            "export the images as separate series, or keep them as 2D images",
        )
        return
    if report.duplicates:
        problem(
            imaging_errors.DuplicatePositionError,
            f"{len(report.duplicates)} pair(s) of different instances share a slice position and no "
            "echo/temporal/acquisition number separates them",
            "remove the repeated slices (or re-export the series) so each position occurs once",
        )
    if report.missing:
        gaps = ", ".join(f"{g:.2f} mm at {d:.2f} mm" for d, g in report.gaps)
        problem(
            imaging_errors.MissingSliceError,
            f"missing slice: {report.missing} slice(s) missing (gap {gaps} along the normal; typical "
            f"spacing {report.spacing:.3f} mm)",
            "re-send the complete series from the PACS",
        )
    if report.off_line_mm > max(1.0, 0.5 * report.spacing) and not report.missing:
        problem(
            imaging_errors.NotAVolumeError,
            f"not a volume: slice positions stray up to {report.off_line_mm:.1f} mm from one straight line",
            "export the images as separate series (they are not one stack)",
        )
    if report.tilt_deg > 0.5:
        text = f"gantry tilt of {report.tilt_deg:.1f} degrees: slices are offset in-plane along the stack"
        if allow_tilt:
            stack.warnings.append(f"{text}; the affine is sheared to keep exact world positions")
        else:
            problem(
                imaging_errors.GantryTiltError,
                text,
                "reconstruct without tilt at the scanner, or convert with allow_tilt=True to keep a "
                "sheared affine",
            )
    if n < min_slices:
        problem(
            imaging_errors.TooFewSlicesError,
            f"too few slices: {n} slices (a volume needs at least {min_slices} to check spacing)",
            "send the complete series; single images are accepted as 2D images",
        )
    if report.nonuniform:
        stack.warnings.append(
            f"non-uniform slice spacing (median {report.spacing:.3f} mm); the volume uses the mean step"
        )


def _multiframe_stack(inst: DicomInstance, key: str, min_slices: int, allow_tilt: bool) -> SeriesStack:
    stack = SeriesStack(stack_key=key, paths=[inst.path])
    if inst.frame_positions and inst.image_orientation and len(inst.frame_positions) > 1:
        report = analyze_positions(inst.frame_positions, inst.image_orientation)
        stack.frame_order, stack.step, stack.spacing = report.order, report.step, report.spacing
        if report.spacing is None:  # every frame at one position: cine / time series of one slice
            stack.warnings.append(f"{inst.n_frames} frames at one position: written as a time series")
            stack.frame_order = list(range(inst.n_frames))
            stack.step = None
        else:
            _apply_report(stack, report, len(inst.frame_positions), min_slices, allow_tilt)
    elif inst.n_frames > 1:
        stack.warnings.append("multi-frame object without per-frame positions: frames stacked in file order")
    return stack


def decodable_in(archive_root: Path | str) -> Callable[[DicomInstance], bool]:
    """A ``decodable`` check for :func:`assemble_series`: whether an instance's pixel data decodes.

    The file (``archive_root / inst.path``) is decoded as conversion would decode it
    (:mod:`medmm.imaging.pixels`: a slice, a multi-frame object or a mosaic); any error means no. Only
    instances whose SOP Instance UID repeats are ever asked about, so archives without duplicates decode
    nothing more.

    >>> from pydicom.data import get_testdata_file
    >>> from medmm.imaging.dicom_header import read_dicom_header
    >>> inst = read_dicom_header(Path(get_testdata_file("MR_small.dcm")), "MR_small.dcm")
    >>> decodable_in(Path(get_testdata_file("MR_small.dcm")).parent)(inst)
    True
    """
    root = Path(archive_root)

    def decodable(inst: DicomInstance) -> bool:
        from medmm.imaging import pixels

        path = root / inst.path
        try:
            if inst.is_mosaic:
                pixels.read_mosaic(path, inst)
            elif inst.kind is DicomKind.multiframe_image or inst.n_frames > 1:
                pixels.read_multiframe(path, inst, None)
            else:
                pixels.read_slice(path, inst)
        except Exception:  # a decode error, a damaged or vanished file: not the copy to keep
            return False
        return True

    return decodable


def _kept_copies(
    images: list[DicomInstance], decodable: Callable[[DicomInstance], bool] | None
) -> tuple[dict[str, str], set[str]]:
    """The kept copy's path for each repeated SOP Instance UID of ``images`` (in path order), and the
    paths of the copies passed over because their pixel data does not decode."""
    by_uid: dict[str, list[DicomInstance]] = defaultdict(list)
    for inst in images:
        by_uid[inst.sop_instance_uid].append(inst)
    kept: dict[str, str] = {}
    undecodable: set[str] = set()
    for uid, copies in by_uid.items():
        if len(copies) < 2:
            continue
        chosen = copies[0]
        if decodable is not None:
            tried = []
            for copy in copies:  # in path order, until one decodes
                if decodable(copy):
                    chosen = copy
                    break
                tried.append(copy.path)
            else:
                tried = []  # none decodes: the first is kept and its conversion says why
            undecodable.update(tried)
        kept[uid] = chosen.path
    return kept, undecodable


def assemble_series(
    instances: list[DicomInstance],
    *,
    min_slices: int = MIN_SLICES,
    allow_tilt: bool = False,
    decodable: Callable[[DicomInstance], bool] | None = None,
) -> SeriesAssembly:
    """Group instances into sorted, checked stacks; every file lands in one stack or in ``outcomes``.

    Parameters
    ----------
    instances
        Header summaries (any mix of studies/series/kinds; typically one study or series).
    min_slices
        Smallest multi-slice stack accepted (single images are always accepted as 2D volumes).
    allow_tilt
        Accept gantry-tilted stacks with a warning (sheared affine) instead of quarantining them.
    decodable
        Whether an instance's pixel data decodes (:func:`decodable_in`): of several files with one SOP
        Instance UID the first in path order that decodes is kept (e.g. of two copies of a 12-bit JPEG
        image, the one a decoder reads), the others are ``duplicate``. Asked only about repeated
        instances. ``None``: the first in path order is kept.

    Returns
    -------
    SeriesAssembly
        ``stacks`` (check ``stack.problems``: a non-empty list quarantines all its files) and
        ``outcomes`` for non-image, unsupported and duplicate files.

    Examples
    --------
    >>> from medmm.imaging.records import DicomInstance, DicomKind
    >>> ecg = DicomInstance(path="e.dcm", sop_instance_uid="1", kind=DicomKind.waveform,
    ...                     kind_detail="12-lead ECG Waveform Storage")
    >>> assemble_series([ecg]).outcomes["e.dcm"].reason
    'waveform: 12-lead ECG Waveform Storage, routed to the signals stage'
    """
    out = SeriesAssembly()
    groups: dict[tuple[str, str], list[DicomInstance]] = defaultdict(list)
    ordered = sorted(instances, key=lambda i: i.path)
    kept, undecodable = _kept_copies([i for i in ordered if i.kind.is_image], decodable)
    for inst in ordered:
        if inst.kind is DicomKind.unsupported_image:
            err = UnsupportedImageError(
                inst.path,
                f"{inst.kind_detail or 'this object'} holds pixel data that is not a volume",
                "keep it in the archive and use a dedicated viewer (e.g. OpenSlide for whole-slide images)",
            )
            out.outcomes[inst.path] = FileOutcome(
                status=Status.quarantined, reason=reason_of(err), kind=inst.kind
            )
            continue
        if not inst.kind.is_image:
            route = _ROUTES.get(inst.kind, "kept")
            out.outcomes[inst.path] = FileOutcome(
                status=Status.non_image,
                reason=f"{inst.kind.value}: {inst.kind_detail}, {route}",
                kind=inst.kind,
            )
            continue
        if kept.get(inst.sop_instance_uid, inst.path) != inst.path:
            why = ": this copy's pixel data cannot be decoded" if inst.path in undecodable else ""
            out.outcomes[inst.path] = FileOutcome(
                status=Status.duplicate,
                reason=f"same SOP Instance UID as {kept[inst.sop_instance_uid]} (kept that one{why})",
                kind=inst.kind,
            )
            continue
        groups[(inst.study_uid, series_key_of(inst))].append(inst)
    for (_study, series), group in sorted(groups.items()):
        out.stacks.extend(_assemble_group(series, group, min_slices, allow_tilt))
    return out


def _assemble_group(
    series: str, group: list[DicomInstance], min_slices: int, allow_tilt: bool
) -> list[SeriesStack]:
    stacks: list[SeriesStack] = []
    volume_like: list[DicomInstance] = []
    for inst in group:
        if inst.kind is DicomKind.multiframe_image or inst.n_frames > 1 or inst.is_mosaic:
            stacks.append(
                _multiframe_stack(inst, f"{series}|{inst.sop_instance_uid}", min_slices, allow_tilt)
            )
        elif not has_patient_geometry(inst):
            stack = SeriesStack(stack_key=f"{series}|{inst.sop_instance_uid}", paths=[inst.path])
            if len(group) > 1:
                stack.split_reason = "no patient geometry (2D image): one volume per image"
            if inst.image_orientation and not valid_orientation(inst.image_orientation):
                stack.warnings.append(
                    "ImageOrientationPatient is not two orthogonal unit vectors: "
                    "written without patient geometry"
                )
            stacks.append(stack)
        else:
            volume_like.append(inst)
    by_geometry: dict[tuple[object, ...], list[DicomInstance]] = defaultdict(list)
    for inst in volume_like:
        by_geometry[geometry_key(inst)].append(inst)
    geometry_split = describe_split(list(by_geometry)) if len(by_geometry) > 1 else ""
    for gi, (_gkey, ginsts) in enumerate(sorted(by_geometry.items(), key=lambda kv: kv[1][0].path)):
        report = analyze_positions(
            [i.image_position or [] for i in ginsts], ginsts[0].image_orientation or []
        )
        subs: list[tuple[str, list[DicomInstance]]] = [("", ginsts)]
        repeat_split = ""
        if report.duplicates and report.spacing is not None:
            subs, repeat_split = split_repeats(ginsts)
        for label, insts in subs:
            key = series
            if geometry_split:
                key += f"|geometry={gi}"
            if label:
                key += f"|{label}"
            why = "; ".join(r for r in (geometry_split, repeat_split) if r)
            stack = SeriesStack(stack_key=key, paths=[i.path for i in insts], split_reason=why)
            stacks.append(_check_stack(stack, insts, min_slices, allow_tilt))
    return stacks
