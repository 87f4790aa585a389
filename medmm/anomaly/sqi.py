"""Beat-level signal-quality indices: kurtosis (kSQI, v0.6) and detector agreement (bSQI, v0.7).

Li, Mark and Clifford (2008, *Physiol. Meas.* 29:15-32) and Clifford et al. (2012, *Physiol. Meas.*
33:1419-1433) use the kurtosis of an ECG segment as a quality index (``kSQI``): clean ECG is a train of
sharp QRS complexes on a quiet baseline, strongly leptokurtic (kurtosis > 5), while muscle noise and
motion artefact pull it towards a Gaussian's 3. Here it is computed per beat over a window centred on
the beat, and read **relative to the record** (a record's kurtosis depends on its heart rate and QRS
width, not only on its quality):

``kurtosis_rel = (k - 3) / (median_record(k) - 3)``

For an ECG plus independent Gaussian noise the excess kurtosis is the ECG's times the squared share of
the variance that is ECG, so ``sqrt(kurtosis_rel)`` estimates how much of the window's variance is the
record's usual ECG (1: as clean as the record's typical beat, 0: noise only). The scorer
(:func:`medmm.anomaly.score.quality_weight`) multiplies a beat's score by at most this share: a beat
in a noisy stretch needs proportionally stronger evidence.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> sig = rng.normal(0, 0.01, 72000); sig[::360] += 1.0
>>> sig[36000:37800] += rng.normal(0, 0.5, 1800)  # a 5-s noise burst
>>> k = kurtosis_rel(sig, 360.0, np.arange(360, 71640, 360))
>>> bool(abs(np.median(k) - 1.0) < 1e-6 and k[102] < 0.1)
True

The kSQI also falls where wide ectopic beats are dense (a window full of broad QRS complexes is less
leptokurtic than the record's typical one), so v0.7 (tried; off by default, see
:class:`medmm.anomaly.model.ScoreConfig`) reads it only where the **bSQI** (Li, Mark and
Clifford 2008) says the stretch is doubtful: the agreement of two independent QRS detectors - the
signals stage's R peaks and PhysioNet's ``gqrs`` (:func:`wfdb.processing.gqrs_detect`) on the same
lead - over ``R +- 5 s`` (Li et al.'s 10-s window), beats matched within 150 ms (their tolerance),
``bSQI = matched / (n_ours + n_gqrs - matched)``. Two detectors built differently agree on clean
beats, narrow or wide, and disagree in noise. :data:`BSQI_AGREE` = 0.9 tolerates one disagreement in
a 10-s window at normal rates (one beat missed or added by either detector: 11/12 = 0.92).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BSQI_AGREE",
    "BSQI_HALF_WINDOW_S",
    "BSQI_TOLERANCE_S",
    "KSQI_HALF_WINDOW_S",
    "detector_agreement",
    "gqrs_peaks",
    "kurtosis_rel",
    "window_kurtosis",
]

#: Half-width of the kSQI window around each beat (5 s in all: a few beats, short enough to localise
#: a burst; Li et al. 2008 use 10-s segments for whole-segment quality).
KSQI_HALF_WINDOW_S = 2.5
#: Half-width of the bSQI window (Li et al. 2008: 10-s segments).
BSQI_HALF_WINDOW_S = 5.0
#: Two detections of the same beat lie within this many seconds (Li et al. 2008: 150 ms).
BSQI_TOLERANCE_S = 0.15
#: bSQI from which the two detectors are taken to agree (v0.7 rule, fixed a priori; not the default).
BSQI_AGREE = 0.9


def window_kurtosis(
    x: NDArray[np.floating], fs: float, samples: NDArray[np.integer], half_s: float = KSQI_HALF_WINDOW_S
) -> NDArray[np.float64]:
    """Kurtosis (Pearson, 3 for a Gaussian) of ``x`` over ``R +- half_s`` seconds around each beat.

    Computed from cumulative sums of the first four powers (O(n)); windows are cut at the record's
    ends. A constant window gives 3 (no evidence of ECG structure).

    >>> import numpy as np
    >>> x = np.random.default_rng(1).normal(size=36000)
    >>> round(float(np.median(window_kurtosis(x, 360.0, np.arange(1000, 35000, 500)))), 1)
    3.0
    """
    v = np.nan_to_num(np.asarray(x, dtype=np.float64))
    s = np.asarray(samples, dtype=np.int64)
    if s.size == 0 or v.size == 0:
        return np.zeros(s.size)
    v = v - float(np.mean(v))
    sums = [np.concatenate([[0.0], np.cumsum(v**p)]) for p in (1, 2, 3, 4)]
    h = max(round(half_s * fs), 1)
    a = np.clip(s - h, 0, v.size)
    b = np.clip(s + h + 1, 0, v.size)
    n = np.maximum(b - a, 1).astype(np.float64)
    m1, m2, m3, m4 = ((c[b] - c[a]) / n for c in sums)
    var = m2 - m1**2
    mu4 = m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4
    ok = var > 1e-12 * max(float(np.max(m2)), 1e-300)
    return np.where(ok, mu4 / np.where(ok, var, 1.0) ** 2, 3.0)


def kurtosis_rel(
    x: NDArray[np.floating], fs: float, samples: NDArray[np.integer], half_s: float = KSQI_HALF_WINDOW_S
) -> NDArray[np.float32]:
    """Each beat's excess window kurtosis relative to the record's median (see module docstring).

    ``(k - 3) / (median(k) - 3)``, floored at 0; all ones when the record's median window is not
    leptokurtic (median excess kurtosis <= 0.1: no reference to compare with).

    >>> import numpy as np
    >>> sig = np.zeros(36000); sig[::360] = 1.0
    >>> kurtosis_rel(sig, 360.0, np.arange(1800, 34000, 360))[:3].round(3).tolist()
    [1.0, 1.0, 1.0]
    """
    k = window_kurtosis(x, fs, samples, half_s)
    if k.size == 0:
        return np.zeros(0, dtype=np.float32)
    ref = float(np.median(k)) - 3.0
    if ref <= 0.1:
        return np.ones(k.size, dtype=np.float32)
    return np.maximum((k - 3.0) / ref, 0.0).astype(np.float32)


def gqrs_peaks(x: NDArray[np.floating], fs: float) -> NDArray[np.int64]:
    """QRS locations of ``x`` (one lead, millivolts) by PhysioNet's ``gqrs`` (the second detector).

    >>> import numpy as np
    >>> t = np.arange(36000) / 360.0
    >>> sig = np.exp(-(((t + 0.5) % 1.0 - 0.5) ** 2) / (2 * 0.015**2))  # 1-mV spikes, 60 / min
    >>> bool(55 <= gqrs_peaks(sig, 360.0).size <= 101)
    True
    """
    from wfdb.processing import gqrs_detect

    v = np.nan_to_num(np.asarray(x, dtype=np.float64))
    if v.size < round(2 * fs):
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.asarray(gqrs_detect(v, fs=fs), dtype=np.int64))


def _within(a: NDArray[np.int64], b: NDArray[np.int64], tol: int) -> NDArray[np.bool_]:
    """For each of sorted ``a``: is some element of sorted ``b`` within ``tol`` samples?"""
    if b.size == 0:
        return np.zeros(a.size, dtype=bool)
    i = np.clip(np.searchsorted(b, a), 1, b.size - 1) if b.size > 1 else np.zeros(a.size, np.int64)
    near = np.minimum(np.abs(b[i] - a), np.abs(b[np.maximum(i - 1, 0)] - a))
    return near <= tol


def detector_agreement(
    samples: NDArray[np.integer],
    other: NDArray[np.integer],
    fs: float,
    half_s: float = BSQI_HALF_WINDOW_S,
    tol_s: float = BSQI_TOLERANCE_S,
) -> NDArray[np.float32]:
    """Per-beat bSQI: agreement of two detectors' beats over ``R +- half_s`` seconds.

    ``matched / (n1 + n2 - matched)`` (Li et al. 2008) with ``n1`` the beats of ``samples`` in the
    window, ``matched`` those of them with a beat of ``other`` within ``tol_s``, and ``n2`` = matched
    + the beats of ``other`` in the window with no partner: a matched pair counts where the beat of
    ``samples`` lies, so a constant offset between the detectors' fiducial points does not lower the
    index at the window's edges. 1 where the detectors agree beat for beat; an empty window gives 1.

    >>> import numpy as np
    >>> ours = np.arange(360, 36000, 360)
    >>> other = np.concatenate([ours[:40] + 10, ours[60:] - 5, [18100, 18250]])  # 20 missed, 2 extra
    >>> b = detector_agreement(ours, np.sort(other), 360.0)
    >>> float(b[5]), bool(b[50] < 0.5)
    (1.0, True)
    """
    s = np.sort(np.asarray(samples, dtype=np.int64))
    o = np.sort(np.asarray(other, dtype=np.int64))
    if s.size == 0:
        return np.zeros(0, dtype=np.float32)
    tol, h = max(round(tol_s * fs), 1), max(round(half_s * fs), 1)
    ms, uo = s[_within(s, o, tol)], o[~_within(o, s, tol)]

    def count(v: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.searchsorted(v, s + h, side="right") - np.searchsorted(v, s - h, side="left")

    n1, m = count(s), count(ms)
    den = n1 + count(uo)
    b = np.where(den > 0, m / np.maximum(den, 1), 1.0)
    order = np.argsort(np.argsort(np.asarray(samples, dtype=np.int64), kind="stable"), kind="stable")
    return b[order].astype(np.float32)
