"""Beat-by-beat comparison of detected peaks with reference annotations (ANSI/AAMI EC57 style).

A detection and a reference beat *match* when they are at most ``tol_s`` apart (150 ms is the EC57
matching window); each beat matches at most once. Pairs are formed greedily by increasing distance,
which on sorted beat sequences gives the same counts as ``wfdb.processing.compare_annotations`` in all
but pathological cases (two detections within one tolerance window of two reference beats).

- TP: matched reference beats; FN: unmatched reference beats; FP: unmatched detections.
- Sensitivity ``Se = TP / (TP + FN)``; positive predictivity ``+P = TP / (TP + FP)``.

The whole record is compared; nothing is excluded at the edges.

>>> r = match_reference(np.array([100, 460, 900]), np.array([102, 455, 700]), fs=360.0)
>>> (r.tp, r.fp, r.fn)
(2, 1, 1)
>>> round(r.sensitivity, 3), round(r.positive_predictivity, 3)
(0.667, 0.667)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["MatchResult", "match_reference"]


@dataclass(frozen=True)
class MatchResult:
    """Counts and pairs of a beat-by-beat comparison.

    Attributes
    ----------
    tp, fp, fn : int
        True positives (matched reference beats), false positives (unmatched detections) and false
        negatives (unmatched reference beats).
    pairs : numpy.ndarray
        ``(tp, 2)`` int array of ``(detection_index, reference_index)`` into the inputs, sorted by reference.
    unmatched_detections, unmatched_references : numpy.ndarray
        Indices (into the inputs) of the FP detections and of the FN reference beats.
    """

    tp: int
    fp: int
    fn: int
    pairs: NDArray[np.int64] = field(repr=False)
    unmatched_detections: NDArray[np.int64] = field(repr=False)
    unmatched_references: NDArray[np.int64] = field(repr=False)

    @property
    def sensitivity(self) -> float:
        """``TP / (TP + FN)``; NaN when there is no reference beat."""
        n = self.tp + self.fn
        return self.tp / n if n else float("nan")

    @property
    def positive_predictivity(self) -> float:
        """``TP / (TP + FP)``; NaN when there is no detection."""
        n = self.tp + self.fp
        return self.tp / n if n else float("nan")

    @property
    def se(self) -> float:
        """Alias of :attr:`sensitivity`."""
        return self.sensitivity

    @property
    def ppv(self) -> float:
        """Alias of :attr:`positive_predictivity` (``+P``)."""
        return self.positive_predictivity


def match_reference(
    peaks: NDArray[np.integer], ref_samples: NDArray[np.integer], fs: float, tol_s: float = 0.15
) -> MatchResult:
    """Compare detected beats with reference beats, one-to-one within a tolerance.

    Parameters
    ----------
    peaks : numpy.ndarray
        Detected beat sample indices.
    ref_samples : numpy.ndarray
        Reference beat sample indices (e.g. every beat annotation of a MIT-BIH ``.atr`` file).
    fs : float
        Sampling rate in Hz of both.
    tol_s : float, default 0.15
        Largest distance in seconds between a detection and its reference beat.

    Returns
    -------
    MatchResult

    Examples
    --------
    >>> import numpy as np
    >>> r = match_reference(np.array([10, 370, 730]), np.array([0, 360, 720, 1080]), fs=360.0)
    >>> r.tp, r.fp, r.fn, r.pairs.tolist()
    (3, 0, 1, [[0, 0], [1, 1], [2, 2]])
    """
    if fs <= 0 or tol_s < 0:
        raise ValueError(f"fs must be > 0 and tol_s >= 0, got fs={fs!r}, tol_s={tol_s!r}")
    det = np.asarray(peaks, dtype=np.int64).reshape(-1)
    ref = np.asarray(ref_samples, dtype=np.int64).reshape(-1)
    det_order = np.argsort(det, kind="stable")
    ref_order = np.argsort(ref, kind="stable")
    ds, rs = det[det_order], ref[ref_order]
    tol = tol_s * fs
    # every (detection, reference) pair within tolerance: for each reference the detections in its window
    lo = np.searchsorted(ds, rs - tol, side="left")
    hi = np.searchsorted(ds, rs + tol, side="right")
    counts = hi - lo
    ri = np.repeat(np.arange(rs.size), counts)
    starts = np.repeat(lo, counts)
    within = np.arange(ri.size) - np.repeat(np.cumsum(counts) - counts, counts)
    di = starts + within
    dist = np.abs(ds[di] - rs[ri])
    order = np.lexsort((ri, dist))
    used_d = np.zeros(ds.size, dtype=bool)
    used_r = np.zeros(rs.size, dtype=bool)
    pairs: list[tuple[int, int]] = []
    for k in order:  # only candidate pairs (about one per beat), so this loop is short
        a, b = di[k], ri[k]
        if not used_d[a] and not used_r[b]:
            used_d[a] = used_r[b] = True
            pairs.append((int(det_order[a]), int(ref_order[b])))
    pair_arr = np.asarray(sorted(pairs, key=lambda p: p[1]), dtype=np.int64).reshape(-1, 2)
    return MatchResult(
        tp=len(pairs),
        fp=int(ds.size - len(pairs)),
        fn=int(rs.size - len(pairs)),
        pairs=pair_arr,
        unmatched_detections=np.sort(det_order[~used_d]).astype(np.int64),
        unmatched_references=np.sort(ref_order[~used_r]).astype(np.int64),
    )
