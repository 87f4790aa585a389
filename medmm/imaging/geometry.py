"""Pure geometry of DICOM slice stacks: slice normal, ordering, spacing checks, world affines.

Conventions: DICOM patient coordinates are LPS; ``ImageOrientationPatient`` is (row direction,
column direction), i.e. the direction in which the column index ``i`` and the row index ``j`` grow;
``PixelSpacing`` is (spacing between rows, spacing between columns). Voxel ``(i, j, k)`` (column, row,
slice) maps to ``IPP_0 + i*dc*r + j*dr*c + k*step``. NIfTI wants RAS, which flips the first two axes.

>>> iop = [1, 0, 0, 0, 1, 0]
>>> normal_of(iop).tolist()
[0.0, 0.0, 1.0]
>>> rep = analyze_positions([[0, 0, 2.0], [0, 0, 0.0], [0, 0, 1.0]], iop)
>>> rep.order, rep.spacing, rep.missing
([1, 2, 0], 1.0, 0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "LPS_TO_RAS",
    "PositionReport",
    "affine_lps",
    "analyze_positions",
    "normal_of",
    "orientation_key",
]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: relative tolerance on slice spacing before it counts as non-uniform
SPACING_RTOL = 0.05
#: a step this many times the typical spacing means slices are missing
GAP_FACTOR = 1.5
#: positions closer than this (mm) along the normal are the same slice position
SAME_POSITION_MM = 1e-3
#: in-plane drift per slice (as an angle) above which the stack counts as gantry-tilted
TILT_DEG = 0.5


def normal_of(iop: Sequence[float]) -> np.ndarray:
    """Unit slice normal (row direction x column direction) of an ImageOrientationPatient."""
    row = np.asarray(iop[:3], dtype=float)
    col = np.asarray(iop[3:6], dtype=float)
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else n


def orientation_key(iop: Sequence[float] | None, decimals: int = 3) -> tuple[float, ...] | None:
    """Rounded orientation for grouping (slices whose IOP differ by < ~1e-3 share a key)."""
    if iop is None:
        return None
    return tuple(round(float(v), decimals) + 0.0 for v in iop)


@dataclass
class PositionReport:
    """What the slice positions of one stack say about it (see :func:`analyze_positions`)."""

    order: list[int]  # indices of the input positions, sorted along the normal (ascending)
    distances: list[float]  # sorted distances along the normal (mm)
    spacing: float | None  # typical (median) slice spacing along the normal, mm
    step: list[float] | None  # mean world step vector between consecutive slices (LPS, mm)
    duplicates: list[tuple[int, int]] = field(default_factory=list)  # input index pairs, same position
    missing: int = 0  # number of slices missing in gaps
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (distance, gap) of each gap
    nonuniform: bool = False
    tilt_deg: float = 0.0  # angle between the slice step and the normal
    off_line_mm: float = 0.0  # largest deviation of a position from the line through the stack


def analyze_positions(positions: Sequence[Sequence[float]], iop: Sequence[float]) -> PositionReport:
    """Sort slice positions along the normal and measure spacing, gaps, duplicates and tilt.

    Parameters
    ----------
    positions
        ImagePositionPatient of each slice (LPS, mm), in any order.
    iop
        The shared ImageOrientationPatient.

    Returns
    -------
    PositionReport
        ``order`` sorts the input; ``missing`` counts slices absent from gaps larger than
        ``GAP_FACTOR`` x the median spacing; ``tilt_deg`` is the angle between the mean step and the
        normal (gantry tilt); ``off_line_mm`` how far positions stray from one straight line.

    Examples
    --------
    >>> r = analyze_positions([[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 4]], [1, 0, 0, 0, 1, 0])
    >>> r.missing, r.gaps
    (1, [(2.0, 2.0)])
    """
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    normal = normal_of(iop)
    dist = pos @ normal
    order = sorted(range(len(pos)), key=lambda i: (dist[i], i))
    d = dist[order]
    report = PositionReport(order=list(order), distances=[float(x) for x in d], spacing=None, step=None)
    if len(pos) < 2:
        return report
    diffs = np.diff(d)
    same = diffs < SAME_POSITION_MM
    report.duplicates = [(order[i], order[i + 1]) for i in np.flatnonzero(same)]
    steps = diffs[~same]
    if steps.size == 0:
        return report
    spacing = float(np.median(steps))
    report.spacing = spacing
    for i, gap in enumerate(diffs):
        if gap > GAP_FACTOR * spacing:
            report.missing += max(1, round(gap / spacing) - 1)
            report.gaps.append((float(d[i]), float(gap)))
    regular = steps[steps <= GAP_FACTOR * spacing]
    report.nonuniform = bool(regular.size and (regular.max() - regular.min()) > SPACING_RTOL * spacing)
    # geometry along the stack: the line from first to last position
    sorted_pos = pos[order]
    span = d[-1] - d[0]
    step = (sorted_pos[-1] - sorted_pos[0]) / span * spacing if span > 0 else normal * spacing
    report.step = [float(x) for x in step]
    cosang = float(np.clip(abs(step @ normal) / (np.linalg.norm(step) or 1.0), -1.0, 1.0))
    report.tilt_deg = math.degrees(math.acos(cosang))
    if span > 0:
        t = (d - d[0]) / span
        expected = sorted_pos[0] + np.outer(t, sorted_pos[-1] - sorted_pos[0])
        report.off_line_mm = float(np.linalg.norm(sorted_pos - expected, axis=1).max())
    return report


def affine_lps(
    iop: Sequence[float],
    first_position: Sequence[float],
    pixel_spacing: Sequence[float],
    step: Sequence[float] | None,
) -> np.ndarray:
    """4x4 affine from voxel (column i, row j, slice k) to LPS millimetres.

    ``step`` is the world vector between consecutive slices (``None`` for a single slice: the normal
    times 1 mm is used so the affine stays invertible).

    >>> affine_lps([1, 0, 0, 0, 1, 0], [10, 20, 30], [0.5, 0.25], [0, 0, 2]).tolist()[0]
    [0.25, 0.0, 0.0, 10.0]
    """
    row = np.asarray(iop[:3], dtype=float)
    col = np.asarray(iop[3:6], dtype=float)
    out = np.eye(4)
    out[:3, 0] = row * float(pixel_spacing[1])
    out[:3, 1] = col * float(pixel_spacing[0])
    out[:3, 2] = np.asarray(step, dtype=float) if step is not None else normal_of(iop)
    out[:3, 3] = np.asarray(first_position, dtype=float)
    return out
