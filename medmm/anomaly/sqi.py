"""Beat-level kurtosis signal-quality index (kSQI), relative to the record's own beats.

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
(:func:`medmm.anomaly.gates.quality_weight`) multiplies a beat's score by at most this share: a beat
in a noisy stretch needs proportionally stronger evidence.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> sig = rng.normal(0, 0.01, 72000); sig[::360] += 1.0
>>> sig[36000:37800] += rng.normal(0, 0.5, 1800)  # a 5-s noise burst
>>> k = kurtosis_rel(sig, 360.0, np.arange(360, 71640, 360))
>>> bool(abs(np.median(k) - 1.0) < 1e-6 and k[102] < 0.1)
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["KSQI_HALF_WINDOW_S", "kurtosis_rel", "window_kurtosis"]

#: Half-width of the kSQI window around each beat (5 s in all: a few beats, short enough to localise
#: a burst; Li et al. 2008 use 10-s segments for whole-segment quality).
KSQI_HALF_WINDOW_S = 2.5


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
