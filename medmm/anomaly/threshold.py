"""Label-free score normalisation and flag thresholds.

The model's default rule is **fixed**: ``FIXED_THRESHOLD = 12`` on a score that sums three capped
per-record robust z-scores (morphology, prematurity, pause), i.e. "on average at least 4 robust SD
unusual in all three aspects" - 4 SD being the usual outlier convention (about 3e-5 one-sided for a
Gaussian, < 1 false flag per 30-minute record of ~2,000 beats if the bulk were Gaussian). It depends on
no data, so nothing about the evaluation labels can leak into it. The data-driven alternative
:func:`valley_threshold` is kept (``threshold_rule="valley"``) and its results are reported in
``docs/anomaly.md``.

* :func:`robust_z` puts any per-beat quantity on the scale of *its own record*: ``(x - median) /
  (1.4826 * MAD)``, with a floor on the spread so a near-constant record does not divide by ~0.
* :func:`valley_threshold` picks the flag threshold from the **unlabelled training scores**: the scores
  of a set of records form a bulk of ordinary beats (decaying from 0) and, where any record has
  ectopic beats, a second mode far out. The threshold is the least dense point (log scale, smoothed
  histogram) between ``min_score`` and that upper mode. No labels are used; if there is no upper mode
  (training records without any repeated abnormal beats) the documented fallback ``fallback`` is used.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> scores = np.concatenate([np.abs(rng.normal(0, 2, 20000)), rng.normal(25, 4, 300)])
>>> 6 < valley_threshold(scores) < 20
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["BASELINE_Z", "FIXED_THRESHOLD", "VALLEY_RULE", "robust_z", "valley_threshold"]

#: Default flag threshold of the model (three aspects x 4 robust SD).
FIXED_THRESHOLD = 12.0
#: Flag threshold of single-aspect scores such as the RR-ratio baseline (4 robust SD).
BASELINE_Z = 4.0

VALLEY_RULE = "valley of the training-score density between min_score and the upper mode (log scale)"


def robust_z(values: NDArray[np.floating], floor: float = 1e-6) -> NDArray[np.float64]:
    """``(x - median(x)) / max(1.4826 * MAD(x), floor)``; NaN-free input expected.

    >>> robust_z(np.array([1.0, 2.0, 3.0, 100.0])).round(2).tolist()
    [-1.01, -0.34, 0.34, 65.76]
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    med = float(np.median(x))
    mad = 1.4826 * float(np.median(np.abs(x - med)))
    return (x - med) / max(mad, floor)


def valley_threshold(
    scores: NDArray[np.floating],
    min_score: float = 4.0,
    max_score: float = 300.0,
    n_bins: int = 120,
    smooth_bins: float = 3.0,
    fallback: float = 12.0,
) -> float:
    """Threshold at the density valley between the bulk of scores and their upper mode (no labels).

    Parameters
    ----------
    scores
        Scores of the training beats (higher = more anomalous).
    min_score
        The valley is searched above this (scores below are ordinary beats by construction: a
        combined robust z of 4 is within the normal spread of two z-scores).
    max_score, n_bins, smooth_bins
        Log-spaced histogram over ``[1, max_score]`` smoothed with a Gaussian of ``smooth_bins`` bins.
    fallback
        Returned when the scores have no mode above ``min_score``.

    Returns
    -------
    float
        The threshold; flag ``score > threshold``.
    """
    from scipy.ndimage import gaussian_filter1d

    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s) & (s > 1.0)]
    if s.size == 0:
        return float(fallback)
    edges = np.linspace(0.0, np.log(max_score), n_bins + 1)
    hist, _ = np.histogram(np.log(s), edges)
    centers = 0.5 * (edges[:-1] + edges[1:])
    dens = gaussian_filter1d(hist.astype(np.float64), smooth_bins)
    i0 = int(np.searchsorted(centers, np.log(min_score)))
    peaks = [
        i
        for i in range(i0 + 1, n_bins - 1)
        if dens[i] >= dens[i - 1] and dens[i] >= dens[i + 1] and dens[i] > 0
    ]
    if not peaks:
        return float(fallback)
    top = max(peaks, key=lambda i: dens[i])
    j = i0 + int(np.argmin(dens[i0 : top + 1]))
    return float(np.exp(centers[j]))
