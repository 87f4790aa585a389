"""Which beats of a record are its normal (dominant) beats, when ectopic beats are not rare (v0.9).

The scorer reads every beat "relative to its own record": the dominant morphology cluster is the 80 %
of beats nearest the median embedding, and rhythm, pause, QRS and P-wave evidence are robust z-scores
over all beats. That assumes ectopic beats are a small minority. In a record with 25-50 % ventricular
beats (trigeminy, bigeminy: MIT-BIH 200, 208, 233, 119, 106) the median, the core and the robust
spreads are taken partly from the ectopic beats themselves, and a PVC no longer looks unusual.

:func:`dominant_reference` decides, label-free and per record, whether the record holds **two beat
populations** and, if so, which one is the normal one:

1. **two clusters** - 2-means (Lloyd, deterministic start: the coordinate-wise median and the mean of
   the 10 % of beats farthest from it) in the beats' morphology embedding (the members' embeddings
   side by side, each centred and divided by its total spread);
2. **are they two populations?** - the smaller cluster holds at least ``min_share`` = 20 % of the
   beats (``1 - core_fraction``: the share of other beats the 80 % core tolerates) *and* the two
   clusters are separated along the line through their centres by at least ``separation`` = 4
   robust SD of each (the outlier convention of the whole scorer; a single Gaussian cloud split in two
   gives ~2.3);
3. **which one is normal?** - a majority vote of three textbook signs of a ventricular beat, each
   compared between the clusters' medians: it has no P wave (smaller P-wave stretch,
   :func:`medmm.anomaly.features.p_wave_amplitude`), it comes early (larger prematurity
   ``-log(rr_prev / local RR)``), its QRS is wide (larger QRS width of the normalised beat window,
   :func:`qrs_width`). The cluster with fewer ventricular signs is the normal one.

Otherwise (one population) nothing changes: the scorer uses its v0.6 references, bit for bit.

With two populations the scorer takes every reference from the normal cluster (``reference``): the
core of the morphology metric, the median and spread of the morphology, QRS and P-wave z-scores, and
- prematurity being the coupling interval compared with the normal-to-normal interval - the rhythm
reference from normal beats preceded by a normal beat, the pause reference from normal beats followed
by one (all normal beats where fewer than ``MIN_NN`` such beats exist, as in bigeminy).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = np.r_[rng.normal(0, 1, (300, 4)), rng.normal(12, 1, (200, 4))]
>>> ctx = np.zeros((500, 3)); ctx[300:, 0] = -0.4  # the second population comes early
>>> ref = dominant_reference(z, ctx, np.ones(500), np.full(500, 5.0))
>>> int(ref.sum()), bool(ref[:300].all())
(300, True)
>>> dominant_reference(rng.normal(size=(500, 4)), ctx, np.ones(500), np.full(500, 5.0)) is None
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["MIN_NN", "dominant_reference", "qrs_width", "reference_z"]

#: Fewer normal-to-normal pairs than this: the rhythm/pause reference falls back to all normal beats.
MIN_NN = 10


def qrs_width(waves0: NDArray[np.floating], r_index: int, half: tuple[int, int] = (8, 12)) -> NDArray:
    """Width (grid points) of each beat's QRS in its normalised window: the span of the points within
    ``r_index - half[0] ... r_index + half[1]`` whose absolute slope exceeds a quarter of the beat's
    largest slope there. A ventricular QRS (> 120 ms) is wider than a normal one (< 100 ms).

    >>> import numpy as np
    >>> t = np.arange(64.0)
    >>> narrow, wide = np.exp(-0.5 * ((t - 24) / 1.0) ** 2), np.exp(-0.5 * ((t - 24) / 4.0) ** 2)
    >>> w = qrs_width(np.stack([narrow, wide]), 24)
    >>> bool(w[0] < w[1])
    True
    """
    x = np.asarray(waves0, dtype=np.float64)
    a, b = max(r_index - half[0], 0), min(r_index + half[1], x.shape[1] - 1)
    slope = np.abs(np.diff(x[:, a : b + 1], axis=1))
    big = slope > 0.25 * np.maximum(slope.max(axis=1, keepdims=True), 1e-12)
    first = np.where(big.any(axis=1), np.argmax(big, axis=1), 0)
    last = np.where(big.any(axis=1), slope.shape[1] - 1 - np.argmax(big[:, ::-1], axis=1), 0)
    return (last - first + 1).astype(np.float64)


def _two_means(x: NDArray[np.float64], iterations: int = 30) -> NDArray[np.bool_]:
    med = np.median(x, axis=0)
    d = ((x - med) ** 2).sum(axis=1)
    far = d >= np.quantile(d, 0.9)
    c0, c1 = med, x[far].mean(axis=0)
    second = np.zeros(x.shape[0], dtype=bool)
    for _ in range(iterations):
        new = ((x - c1) ** 2).sum(axis=1) < ((x - c0) ** 2).sum(axis=1)
        if new.all() or not new.any():
            return new
        c0, c1 = x[~new].mean(axis=0), x[new].mean(axis=0)
        if np.array_equal(new, second):
            break
        second = new
    return second


def _robust_sd(v: NDArray[np.float64]) -> float:
    return 1.4826 * float(np.median(np.abs(v - np.median(v))))


def dominant_reference(
    embedding: NDArray[np.floating],
    context: NDArray[np.floating],
    p_wave: NDArray[np.floating],
    width: NDArray[np.floating],
    min_share: float = 0.2,
    separation: float = 4.0,
) -> NDArray[np.bool_] | None:
    """The normal beats of a record with two beat populations, else ``None`` (see module docstring).

    ``embedding`` (n, d): morphology embedding; ``context`` (n, >= 1): column 0 = ``log(rr_prev /
    local RR)``; ``p_wave`` (n,): P-wave stretch (NaN = unknown, that sign abstains); ``width`` (n,):
    :func:`qrs_width`. Deterministic (no random start).
    """
    x = np.asarray(embedding, dtype=np.float64)
    n = x.shape[0]
    if n < 10:
        return None
    second = _two_means(x)
    share = min(int(second.sum()), n - int(second.sum())) / n
    if share < min_share:
        return None
    c0, c1 = x[~second].mean(axis=0), x[second].mean(axis=0)
    axis = c1 - c0
    norm = float(np.sqrt((axis**2).sum()))
    if norm <= 0:
        return None
    proj = x @ (axis / norm)
    gap = abs(float(np.median(proj[second])) - float(np.median(proj[~second])))
    spread = max(_robust_sd(proj[second]), _robust_sd(proj[~second]), 1e-12)
    if gap < separation * spread:
        return None
    # votes that the `second` cluster is the ventricular one (positive) or the normal one (negative)
    premature = -np.asarray(context, dtype=np.float64)[:, 0]
    p = np.asarray(p_wave, dtype=np.float64)
    w = np.asarray(width, dtype=np.float64)
    votes = 0
    for values, ventricular_if_larger in ((premature, True), (w, True), (p, False)):
        if not np.isfinite(values).all():
            continue
        diff = float(np.median(values[second])) - float(np.median(values[~second]))
        if diff != 0:
            votes += 1 if (diff > 0) == ventricular_if_larger else -1
    if votes == 0:  # no sign decides: the larger cluster is the normal one
        votes = 1 if second.sum() < n - second.sum() else -1
    return np.asarray(~second if votes > 0 else second)


def reference_z(values: NDArray[np.floating], reference: NDArray[np.bool_], floor: float) -> NDArray:
    """Robust z of ``values`` with median and MAD taken over the ``reference`` rows only.

    >>> import numpy as np
    >>> ref = np.array([1, 1, 1, 0, 0], bool)
    >>> reference_z(np.array([0.0, 1.0, 2.0, 50.0, 60.0]), ref, 1e-6).round(1).tolist()
    [-0.7, 0.0, 0.7, 33.1, 39.8]
    """
    x = np.asarray(values, dtype=np.float64)
    ref = x[np.asarray(reference, dtype=bool)]
    if ref.size == 0:
        return np.zeros_like(x)
    med = float(np.median(ref))
    mad = 1.4826 * float(np.median(np.abs(ref - med)))
    return (x - med) / max(mad, floor)
