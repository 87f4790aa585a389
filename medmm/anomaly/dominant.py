"""Which beats of a record are its normal beats, when ventricular ectopy is not rare (v0.10).

The scorer reads every beat "relative to its own record": the dominant morphology cluster is the 80 %
of beats nearest the median embedding, and rhythm, pause, QRS and P-wave evidence are robust z-scores
over all beats. That assumes ectopic beats are a small minority. In a record with 25-50 % ventricular
beats (trigeminy, bigeminy: MIT-BIH 200, 208, 233, 119, 106) the median, the core and the robust
spreads are taken partly from the ectopic beats themselves, and a PVC no longer looks unusual.

:func:`dominant_reference` decides, label-free and per record, whether the record holds **a normal
and a premature ectopic beat population** and, if so, which beats are the normal ones:

1. **two clusters** - 2-means (Lloyd, deterministic start: the coordinate-wise median and the mean of
   the 10 % of beats farthest from it) in the beats' morphology embedding (the members' embeddings
   side by side, each centred and divided by its total spread);
2. **two shapes?** - the smaller cluster holds at least ``min_share`` = 20 % of the beats (``1 -
   core_fraction``: the share of other beats the 80 % core tolerates) *and* the two clusters are
   separated along the line through their centres by at least ``separation`` = 4 robust SD of each
   (the outlier convention of the whole scorer; a single Gaussian cloud split in two gives ~2.3);
3. **is one of them a premature ectopic population?** (v0.10; the sign that does not fail in
   bigeminy) - the cluster whose beats come earlier (smaller median ``log(rr_prev / local RR)``) is the
   candidate ectopic one; it is a population of ectopic beats only if its median preceding RR is
   below ``premature`` = 0.9 x the other cluster's (``log`` difference ``< log 0.9``) **and** its beats
   are followed by a longer RR than they are preceded by, by the same margin (median ``log(rr_next /
   rr_prev) > -log 0.9``: the compensatory pause). 10 % is the beat-to-beat variation of sinus
   arrhythmia, and both are medians over >= 20 % of the beats. Two *normal* QRS shapes (axis shifts,
   record 108) differ in shape but not in timing: both conditions fail and nothing changes;
4. the other cluster is the normal one. (v0.9 decided this by a vote of P wave, prematurity and QRS
   width; the P-wave sign points the wrong way in bigeminy - an early beat's P-wave window holds the
   previous T wave - so v0.10 decides by timing only.)

Otherwise ``None``: the scorer uses its v0.6 references, bit for bit.

With two populations the scorer takes every reference from the normal beats (``reference``): the core
of the morphology metric, the median and spread of the morphology, QRS and P-wave z-scores, the QRS
template of the QRS residual (:func:`window_qrs_residual`), and - prematurity being the coupling
interval compared with the normal-to-normal interval - the rhythm reference from normal beats preceded
by a normal beat, the pause reference from normal beats followed by one (:func:`nn_reference`: all
normal beats where such beats are fewer than ``min_share`` of the normal beats, as in bigeminy).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = np.r_[rng.normal(0, 1, (300, 4)), rng.normal(12, 1, (200, 4))]
>>> ctx = np.zeros((500, 3)); ctx[300:, 0] = -0.4; ctx[300:, 2] = 0.8  # early, then a pause
>>> ref = dominant_reference(z, ctx)
>>> int(ref.sum()), bool(ref[:300].all())
(300, True)
>>> ctx[300:] = 0.0  # the same two shapes with the same timing: one normal population
>>> dominant_reference(z, ctx) is None
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MIN_SHARE",
    "PREMATURE",
    "dominant_reference",
    "nn_reference",
    "reference_z",
    "window_qrs_residual",
]

#: Smallest share of a record's beats that counts as a population (``1 - core_fraction``).
MIN_SHARE = 0.2
#: An ectopic population's median preceding RR is below this times the normal one's (and its
#: following RR above its preceding RR by the same margin): 10 % = sinus arrhythmia's beat-to-beat range.
PREMATURE = 0.9


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
    min_share: float = MIN_SHARE,
    separation: float = 4.0,
    premature: float = PREMATURE,
) -> NDArray[np.bool_] | None:
    """The normal beats of a record with a premature ectopic beat population, else ``None``.

    ``embedding`` (n, d): morphology embedding; ``context`` (n, 3): the beats' RR context
    (:func:`medmm.anomaly.features.rr_context`: ``log(rr_prev / local)``, ``log(rr_next / local)``,
    ``log(rr_next / rr_prev)``). See the module docstring for the rule. Deterministic.

    >>> import numpy as np
    >>> dominant_reference(np.random.default_rng(1).normal(size=(500, 4)), np.zeros((500, 3))) is None
    True
    """
    x = np.asarray(embedding, dtype=np.float64)
    ctx = np.asarray(context, dtype=np.float64)
    n = x.shape[0]
    if n < 10 or ctx.shape[0] != n or ctx.ndim != 2 or ctx.shape[1] < 3 or not np.isfinite(ctx).all():
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
    prev_a, prev_b = float(np.median(ctx[~second, 0])), float(np.median(ctx[second, 0]))
    ectopic = second if prev_b < prev_a else ~second
    margin = -float(np.log(premature))
    earlier = abs(prev_b - prev_a) > margin
    paused = float(np.median(ctx[ectopic, 2])) > margin
    if not (earlier and paused):
        return None
    return np.asarray(~ectopic)


def nn_reference(
    reference: NDArray[np.bool_], before: bool, min_share: float = MIN_SHARE
) -> NDArray[np.bool_]:
    """Normal beats preceded (``before=False``: the beat before is normal) or followed (``before=True``)
    by a normal beat - the normal-to-normal intervals, the reference of a coupling interval and of a
    compensatory pause; all normal beats where those are fewer than ``min_share`` of the normal beats
    (bigeminy: a few misassigned beats must not become the reference).

    >>> import numpy as np
    >>> ref = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1], bool)
    >>> nn_reference(ref, before=False).astype(int).tolist()
    [0, 1, 1, 0, 0, 1, 0, 0, 1, 1]
    >>> nn_reference(np.tile([True, False], 20), before=False).sum()
    20
    """
    ref = np.asarray(reference, dtype=bool)
    pair = ref & (np.r_[ref[1:], False] if before else np.r_[False, ref[:-1]])
    return pair if pair.sum() >= min_share * max(int(ref.sum()), 1) else ref


def window_qrs_residual(
    waves0: NDArray[np.floating],
    reference: NDArray[np.bool_],
    pre_s: float = 0.25,
    post_s: float = 0.40,
    qrs_s: tuple[float, float] = (0.08, 0.12),
    shift_s: float = 0.03,
) -> NDArray[np.float64]:
    """QRS residual (as :func:`medmm.anomaly.features.qrs_residual`) against the **normal beats'** QRS.

    On the model's normalised beat windows ``waves0`` (n, points) over ``-pre_s ... +post_s``: each
    beat's ``R - qrs_s[0] ... R + qrs_s[1]`` minus its window median, best of +-``shift_s`` shifts, RMS
    difference to the point-wise median of the ``reference`` beats, divided by that template's
    peak-to-peak amplitude. In a bigeminal record the median QRS of *all* beats is half normal, half
    ventricular; the template of the normal beats is the normal QRS.

    >>> import numpy as np
    >>> t = np.linspace(-0.25, 0.40, 64)
    >>> n, v = np.exp(-0.5 * (t / 0.01) ** 2), -np.exp(-0.5 * (t / 0.04) ** 2)
    >>> r = window_qrs_residual(np.stack([n, v, n, v]), np.array([1, 0, 1, 0], bool))
    >>> bool(r[0] < 0.01 < r[1])
    True
    """
    w = np.asarray(waves0, dtype=np.float64)
    ref = np.asarray(reference, dtype=bool)
    if w.shape[0] == 0 or not ref.any():
        return np.zeros(w.shape[0])
    t = np.linspace(-pre_s, post_s, w.shape[1])
    dt = (pre_s + post_s) / max(w.shape[1] - 1, 1)
    shift = max(round(shift_s / dt), 0)
    inside = np.flatnonzero((t >= -qrs_s[0] - 1e-9) & (t <= qrs_s[1] + 1e-9))
    a, b = int(inside[0]), int(inside[-1])
    x = w - np.median(w, axis=1, keepdims=True)
    template = np.median(x[ref, a : b + 1], axis=0)
    amp = float(np.ptp(template))
    best = np.full(w.shape[0], np.inf)
    for sh in range(-shift, shift + 1):
        lo, hi = a + sh, b + 1 + sh
        if lo < 0 or hi > w.shape[1]:
            continue
        best = np.minimum(best, np.sqrt(((x[:, lo:hi] - template[None, :]) ** 2).mean(axis=1)))
    return best / (amp if amp > 1e-12 else 1.0)


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
