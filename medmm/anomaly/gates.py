"""Per-beat weights of the anomaly score (:mod:`medmm.anomaly.score`, steps 4 and 6).

* :func:`quality_weight` (with :func:`noise_limit`): how far a beat's score can be trusted - noise,
  a flat or clipped lead, the kurtosis SQI;
* :func:`qrs_gate` and :func:`p_absent_gate`: the ventricular signs (an abnormal QRS, no P wave) the
  timing evidence needs;
* :func:`saturate`: the cap of each aspect's contribution.

Each reads one record's values; ``reference`` (v0.10, :mod:`medmm.anomaly.dominant`) takes medians and
spreads from the normal beats only. Re-exported by :mod:`medmm.anomaly.score`.

>>> import numpy as np
>>> saturate(np.array([0.5]), 8.0).round(2).tolist()
[0.5]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medmm.anomaly.dominant import reference_z
from medmm.anomaly.threshold import robust_z

__all__ = ["noise_limit", "p_absent_gate", "qrs_gate", "quality_weight", "saturate"]


def saturate(z: NDArray[np.floating], cap: float) -> NDArray[np.float64]:
    """``cap * tanh(max(z, 0) / cap)``: keeps small z as is, never exceeds ``cap``, ignores negatives.

    >>> saturate(np.array([-3.0, 1.0, 100.0]), 8.0).round(2).tolist()
    [0.0, 0.99, 8.0]
    """
    return np.asarray(cap * np.tanh(np.clip(np.asarray(z, dtype=np.float64), 0.0, None) / cap))


def noise_limit(noise: NDArray[np.floating], z: float) -> float:
    """Label-free noise threshold of one record: ``z`` robust SD above its median log noise.

    ``exp(median(log n) + z * 1.4826 * MAD(log n))``: a beat noisier than this is an outlier of its
    own record's noise (a burst), by the same convention as the flag threshold.

    >>> n = np.exp(np.random.default_rng(0).normal(0, 0.1, 2000))
    >>> round(noise_limit(n, 4.0), 1)
    1.5
    """
    ln = np.log(np.maximum(np.asarray(noise, dtype=np.float64), 1e-12))
    if ln.size == 0:
        return 1.0
    med = float(np.median(ln))
    return float(np.exp(med + z * 1.4826 * float(np.median(np.abs(ln - med)))))


def quality_weight(
    quality: NDArray[np.floating],
    noise_ratio: float,
    min_qrs_ratio: float,
    max_saturated: float = 0.1,
    noise_z: float = 0.0,
    group: NDArray[np.integer] | None = None,
    kurtosis_sqi: bool = False,
) -> NDArray:
    """Per-beat weight in [0, 1] of the score from :func:`medmm.anomaly.features.beat_quality`.

    ``min(1, limit / noise)`` - 1 for beats no noisier than ``limit`` x the record's median noise -
    and 0 where the QRS amplitude is below ``min_qrs_ratio`` x the record's median (flat lead) or more
    than ``max_saturated`` of the beat's surroundings are clipped (third column, if present). ``limit``
    is ``noise_ratio``, or with ``noise_z > 0`` each record's :func:`noise_limit` (records = ``group``).
    With ``kurtosis_sqi`` (v0.6) the weight is at most ``sqrt(min(1, kurtosis_rel))`` (fourth column,
    :mod:`medmm.anomaly.sqi`): the share of the beat's window that is the record's usual ECG.

    >>> q = np.array([[1.0, 1.0, 0.0], [4.0, 1.0, 0.0], [1.0, 0.1, 0.0], [1.0, 1.0, 0.4]])
    >>> quality_weight(q, 2.0, 0.3).tolist()
    [1.0, 0.5, 0.0, 0.0]
    >>> q4 = np.array([[1.0, 1.0, 0.0, 0.25], [1.0, 1.0, 0.0, 3.0]])
    >>> quality_weight(q4, 2.0, 0.3, kurtosis_sqi=True).tolist()
    [0.5, 1.0]
    """
    q = np.asarray(quality, dtype=np.float64)
    w = np.ones(q.shape[0])
    if noise_z > 0:
        g = np.zeros(q.shape[0], np.int64) if group is None else np.asarray(group)
        limit = np.ones(q.shape[0])
        for key in np.unique(g):
            idx = g == key
            limit[idx] = noise_limit(q[idx, 0], noise_z)
        w = np.minimum(1.0, limit / np.maximum(q[:, 0], 1e-12))
    elif noise_ratio > 0:
        w = np.minimum(1.0, noise_ratio / np.maximum(q[:, 0], 1e-12))
    if kurtosis_sqi and q.shape[1] > 3:
        w = np.minimum(w, np.sqrt(np.clip(q[:, 3], 0.0, 1.0)))
    bad = q[:, 1] < min_qrs_ratio
    if q.shape[1] > 2 and max_saturated > 0:
        bad |= q[:, 2] > max_saturated
    return np.where(bad, 0.0, w)


def qrs_gate(
    qrs: NDArray[np.floating],
    gate_z: float,
    floor: float = 0.05,
    linear_floor: float = 0.0,
    reference: NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """Weight in [0, 1] of the timing aspects from one record's QRS residuals.

    ``clip(z / gate_z, 0, 1)``: 0 for a QRS no more different from the record's median QRS than the
    typical beat, 1 from ``gate_z`` robust SD on. With ``linear_floor > 0`` (v0.5) ``z`` is the robust
    z of the residual itself with its robust SD floored at ``linear_floor`` (the residual is a fraction
    of the QRS amplitude, so 0.05 = "a QRS differing by less than 5 % of its amplitude per SD is the
    same QRS": in a very regular record a 3 % difference is not 3 SD); else (v0.4) the robust z of
    ``log(residual)`` with its SD floored at ``floor``. All-NaN residuals (not computed) or
    ``gate_z <= 0`` give 1 (no gating). ``reference`` (v0.10): median and spread of these beats only.

    >>> qrs_gate(np.array([0.05, 0.06, 0.05, 0.07, 0.5]), 1.0).round(2).tolist()
    [0.0, 0.0, 0.0, 0.57, 1.0]
    >>> qrs_gate(np.array([0.05, 0.06, 0.05, 0.07, 0.5]), 1.0, linear_floor=0.05).round(2).tolist()
    [0.0, 0.0, 0.0, 0.2, 1.0]
    """
    q = np.asarray(qrs, dtype=np.float64)
    if gate_z <= 0 or q.size == 0 or not np.isfinite(q).any():
        return np.ones(q.size)
    q = np.nan_to_num(q, nan=float(np.nanmedian(q)))
    log_z = linear_floor <= 0  # v0.4: robust z of log(residual)
    x, fl = (np.log(np.maximum(q, 1e-6)), floor) if log_z else (q, linear_floor)
    z = robust_z(x, fl) if reference is None else reference_z(x, reference, fl)
    return np.asarray(np.clip(z / gate_z, 0.0, 1.0))


def p_absent_gate(
    p_wave: NDArray[np.floating],
    gate_z: float,
    floor: float = 0.05,
    reference: NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """Weight in [0, 1] from one record's P-wave amplitudes: 1 where the P wave is missing.

    ``clip(robust_z(-log p) / gate_z, 0, 1)`` with ``p`` from
    :func:`medmm.anomaly.features.p_wave_amplitude` (robust SD floored at ``floor``): a beat whose
    P-wave stretch is ``gate_z`` robust SD flatter than the record's usual one has no P wave - the
    textbook sign of a ventricular (or junctional) beat, used when its QRS differs from the record's
    variable normal QRS by less than the normal spread (record 108). All-NaN input gives 0 (no
    criterion). ``reference`` (v0.10): median and spread of these beats only.

    >>> p_absent_gate(np.array([1.0, 1.2, 0.8, 1.0, 1.1, 0.9, 0.2]), 4.0).round(2).tolist()
    [0.0, 0.0, 0.36, 0.0, 0.0, 0.17, 1.0]
    """
    p = np.asarray(p_wave, dtype=np.float64)
    if gate_z <= 0 or p.size == 0 or not np.isfinite(p).any():
        return np.zeros(p.size)
    p = np.nan_to_num(p, nan=float(np.nanmedian(p)))
    x = -np.log(np.maximum(p, 1e-3))
    z = robust_z(x, floor) if reference is None else reference_z(x, reference, floor)
    return np.asarray(np.clip(z / gate_z, 0.0, 1.0))
