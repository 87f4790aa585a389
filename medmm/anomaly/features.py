"""Label-free beat inputs: per-record normalised morphology windows and RR context.

A premature ventricular beat is unusual *relative to its own record*: its QRS differs from the record's
dominant beat and it comes early with a compensatory pause. The inputs below express exactly that,
independent of patient-specific amplitude and heart rate, so a model trained on other records transfers:

* ``waves[:, 0]`` - the beat window divided by the record's robust amplitude scale,
* ``waves[:, 1]`` - the same window minus the record's median beat (the *residual*),
* ``context``    - ``log(rr_prev / local RR)``, ``log(rr_next / local RR)``, ``log(rr_next / rr_prev)``,
  where the local RR is a running median of the surrounding RR intervals;
* ``quality``    - beat-local signal quality (:func:`beat_quality`): high-frequency noise around the beat
  and QRS amplitude, each relative to the record's median beat;
* ``qrs``        - how much the beat's QRS alone differs from the record's median QRS
  (:func:`qrs_residual`), so "premature with a normal QRS" (an atrial premature beat) can be told from
  "premature with an abnormal QRS" (a PVC);
* ``p_wave``     - the peak-to-peak amplitude of the stretch where the P wave sits
  (:func:`p_wave_amplitude`), relative to the record's median: a ventricular beat has no P wave
  before it, an atrial premature beat has one.

Everything is a pure numpy/scipy function of (signal, sampling rate, R-peak samples); reference
annotation symbols are never an input.

>>> import numpy as np
>>> fs = 360.0
>>> t = np.arange(int(fs * 20)) / fs
>>> sig = np.zeros_like(t)
>>> peaks = (np.arange(1, 20) * fs).astype(int)
>>> sig[peaks] = 1.0
>>> bi = beat_inputs(sig, fs, peaks)
>>> bi.waves.shape, bi.context.shape
((19, 2, 64), (19, 3))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medmm.anomaly.sqi import kurtosis_rel

__all__ = [
    "CLEAN_QUALITY",
    "CONTEXT_COLUMNS",
    "QUALITY_COLUMNS",
    "BeatInputs",
    "WindowSpec",
    "bandpass",
    "beat_inputs",
    "beat_quality",
    "concat_inputs",
    "extract_windows",
    "p_wave_amplitude",
    "qrs_residual",
    "remove_baseline",
    "rr_context",
]

#: Names of the columns of :attr:`BeatInputs.context`.
CONTEXT_COLUMNS: tuple[str, ...] = ("log_rr_prev_rel", "log_rr_next_rel", "log_rr_ratio")
#: Names of the columns of :attr:`BeatInputs.quality`.
QUALITY_COLUMNS: tuple[str, ...] = (
    "noise_ratio",
    "qrs_amplitude_ratio",
    "saturated_fraction",
    "kurtosis_rel",
)
#: Value of each quality column for a clean beat (the default when no quality is given).
CLEAN_QUALITY: tuple[float, ...] = (1.0, 1.0, 0.0, 1.0)


@dataclass(frozen=True)
class WindowSpec:
    """Where a beat window starts/ends around the R peak and how many points it is resampled to.

    The resampled grid (``n_points`` over ``pre_s + post_s`` seconds) does not depend on the record's
    sampling rate, so one model serves 250 Hz and 360 Hz recordings alike. ``baseline_s``: widths of the
    cascaded median filters whose output is subtracted as the baseline before the band-pass
    (:func:`remove_baseline`; ``()`` = none, as in models saved before v0.3).
    """

    pre_s: float = 0.25
    post_s: float = 0.40
    n_points: int = 64
    band_hz: tuple[float, float] = (0.5, 40.0)
    local_rr_beats: int = 9
    baseline_s: tuple[float, ...] = (0.2, 0.6)


@dataclass
class BeatInputs:
    """Model inputs of ``n`` beats: ``waves`` (n, 2, n_points) float32, ``context`` (n, 3) float32.

    ``group`` (n,) int labels the record/channel each beat came from (used for per-record score
    normalisation). ``quality`` (n, 4) float32 holds :data:`QUALITY_COLUMNS` (see
    :func:`beat_quality`); left out, every beat counts as clean (:data:`CLEAN_QUALITY`). ``qrs`` (n,)
    float32 is :func:`qrs_residual`; left out (NaN), the scorer does not use it. ``p_wave`` (n,)
    float32 is :func:`p_wave_amplitude` (v0.5); left out (NaN), the scorer has no P-wave criterion.
    """

    waves: NDArray[np.float32]
    context: NDArray[np.float32]
    group: NDArray[np.int64]
    quality: NDArray[np.float32] | None = None
    qrs: NDArray[np.float32] | None = None
    p_wave: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        if self.quality is None:
            self.quality = _clean(self.waves.shape[0])
        if self.qrs is None:
            self.qrs = np.full(self.waves.shape[0], np.nan, dtype=np.float32)
        if self.p_wave is None:
            self.p_wave = np.full(self.waves.shape[0], np.nan, dtype=np.float32)

    def __len__(self) -> int:
        return int(self.waves.shape[0])


def _clean(n: int) -> NDArray[np.float32]:
    return np.tile(np.asarray(CLEAN_QUALITY, dtype=np.float32), (n, 1))


def bandpass(signal: NDArray[np.floating], fs: float, band_hz: tuple[float, float] = (0.5, 40.0)) -> NDArray:
    """Zero-phase Butterworth band-pass (order 2) removing baseline wander and mains/EMG noise.

    >>> import numpy as np
    >>> y = bandpass(np.ones(2000), 360.0)
    >>> bool(abs(y[1000]) < 1e-3)
    True
    """
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(signal, dtype=np.float64)
    x = np.nan_to_num(x, nan=float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0)
    high = min(band_hz[1], 0.45 * fs)
    sos = butter(2, [band_hz[0], high], btype="bandpass", fs=fs, output="sos")
    if x.size <= 3 * (2 * sos.shape[0] + 1):
        return x - np.median(x)
    return np.asarray(sosfiltfilt(sos, x), dtype=np.float64)


def remove_baseline(
    signal: NDArray[np.floating], fs: float, widths_s: tuple[float, ...] = (0.2, 0.6), rate_hz: float = 50.0
) -> NDArray[np.float64]:
    """Subtract the baseline estimated by cascaded median filters (de Chazal et al. 2004).

    A 200 ms median removes the QRS and P waves, a 600 ms median of that removes the T wave; what is
    left is the baseline (wander, electrode motion steps), which a 0.5 Hz high-pass only partly
    removes. The filters run on a copy decimated to about ``rate_hz`` (the baseline has no fast
    content), and the baseline is interpolated back to the native rate. ``widths_s=()`` returns the
    signal unchanged.

    >>> import numpy as np
    >>> t = np.arange(3600) / 360.0
    >>> wander = 2.0 * t / t[-1]
    >>> sig = wander + (np.arange(3600) % 360 == 180)
    >>> out = remove_baseline(sig, 360.0)
    >>> bool(np.abs(out[np.arange(3600) % 360 != 180]).max() < 0.05), float(out[180].round(2))
    (True, 1.0)
    """
    from scipy.ndimage import median_filter

    x = np.asarray(signal, dtype=np.float64)
    x = np.nan_to_num(x, nan=float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0)
    if not widths_s or x.size < 3:
        return x
    step = max(1, int(fs // rate_hz))
    coarse = x[::step]
    base = coarse
    for width in widths_s:
        size = max(1, round(width * fs / step)) | 1
        base = median_filter(base, size=size, mode="nearest")
    full = np.interp(np.arange(x.size), np.arange(0, x.size, step)[: base.size], base)
    return np.asarray(x - full)


def extract_windows(
    filtered: NDArray[np.floating], fs: float, samples: NDArray[np.integer], spec: WindowSpec = WindowSpec()
) -> NDArray[np.float32]:
    """Beat windows ``[R - pre_s, R + post_s]`` linearly resampled to ``spec.n_points`` points.

    Windows that run past the record's ends are padded with the edge value.

    >>> import numpy as np
    >>> w = extract_windows(np.arange(1000.0), 100.0, np.array([500]), WindowSpec(n_points=5))
    >>> w.astype(float).round(1).tolist()
    [[475.0, 491.2, 507.5, 523.8, 540.0]]
    """
    x = np.asarray(filtered, dtype=np.float64)
    offsets = np.linspace(-spec.pre_s, spec.post_s, spec.n_points) * fs
    pos = np.asarray(samples, dtype=np.float64)[:, None] + offsets[None, :]
    pos = np.clip(pos, 0, max(x.size - 1, 0))
    return np.interp(pos.ravel(), np.arange(x.size), x).reshape(pos.shape).astype(np.float32)


def _running_median(values: NDArray[np.floating], width: int) -> NDArray[np.float64]:
    from scipy.ndimage import median_filter

    return np.asarray(median_filter(np.asarray(values, dtype=np.float64), size=width, mode="nearest"))


def rr_context(samples: NDArray[np.integer], fs: float, local_beats: int = 9) -> NDArray[np.float32]:
    """RR context of every beat relative to the local rhythm (running median of RR intervals).

    Returns (n, 3): ``log(rr_prev/local)``, ``log(rr_next/local)``, ``log(rr_next/rr_prev)``; the first
    beat's missing ``rr_prev`` and the last beat's ``rr_next`` are replaced by the local RR (log 0).

    >>> import numpy as np
    >>> c = rr_context(np.array([0, 100, 200, 260, 400, 500, 600]), 100.0, local_beats=3)
    >>> c[3].astype(float).round(2).tolist()  # early beat then compensatory pause
    [-0.51, 0.34, 0.85]
    """
    s = np.asarray(samples, dtype=np.float64)
    n = s.size
    if n < 2:
        return np.zeros((n, 3), dtype=np.float32)
    rr = np.diff(s) / fs  # rr[i] is between beat i and i+1
    rr = np.maximum(rr, 1e-3)
    local_rr = _running_median(rr, max(1, local_beats))
    prev = np.concatenate([[np.nan], rr])
    nxt = np.concatenate([rr, [np.nan]])
    local = np.concatenate([[local_rr[0]], 0.5 * (local_rr[:-1] + local_rr[1:]), [local_rr[-1]]])
    prev = np.where(np.isnan(prev), local, prev)
    nxt = np.where(np.isnan(nxt), local, nxt)
    out = np.stack([np.log(prev / local), np.log(nxt / local), np.log(nxt / prev)], axis=1)
    return out.astype(np.float32)


def beat_quality(
    filtered: NDArray[np.floating],
    fs: float,
    samples: NDArray[np.integer],
    half_s: float = 0.45,
    qrs_s: float = 0.10,
    raw: NDArray[np.floating] | None = None,
) -> NDArray[np.float32]:
    """Beat-local signal quality of a band-passed lead, relative to the record's typical beat.

    Returns (n, 4):

    * ``noise_ratio`` - median absolute second difference (a high-frequency energy measure) over
      ``R +- half_s`` seconds *outside* every detected QRS (``+- qrs_s`` around each of ``samples``,
      so a neighbouring beat's QRS does not count either), divided by the record's median of the same
      quantity. Muscle noise and motion artefact raise it several-fold; a QRS, normal or ectopic,
      does not enter it.
    * ``qrs_amplitude_ratio`` - peak-to-peak amplitude over ``R +- qrs_s`` divided by the record's
      median: near 0 where the lead is flat (signal drop-out), so there is no QRS to judge.
    * ``saturated_fraction`` - share of the ``R +- half_s`` samples of the unfiltered lead ``raw`` that
      sit at the record's minimum or maximum value in a run of at least 20 ms: the amplifier or
      converter is clipping (the band-passed lead then shows steps that look like beats). 0 without
      ``raw``.
    * ``kurtosis_rel`` (v0.6) - the beat-level kurtosis quality index over ``R +- 2.5 s`` relative to
      the record's median (:func:`medmm.anomaly.sqi.kurtosis_rel`): ~1 for a beat as clean as the
      record's typical one, towards 0 in a noise burst.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> sig = rng.normal(0, 0.01, 36000); sig[::360] += 1.0
    >>> sig[17800:18200] += rng.normal(0, 0.3, 400)  # a noise burst around beat 50
    >>> q = beat_quality(sig, 360.0, np.arange(360, 35640, 360))
    >>> bool(q[49, 0] > 5 and abs(np.median(q[:, 0]) - 1.0) < 0.05)
    True
    """
    x = np.asarray(filtered, dtype=np.float64)
    s = np.asarray(samples, dtype=np.int64)
    if s.size == 0 or x.size < 3:
        return _clean(s.size)
    half, qrs = max(round(half_s * fs), 2), max(round(qrs_s * fs), 1)
    d2 = np.abs(np.diff(x, 2))
    d2 = np.concatenate([[d2[0]], d2, [d2[-1]]])  # d2[i] is centred on sample i
    off = np.arange(-half, half + 1)
    outside = np.abs(off) > qrs
    pos = np.clip(s[:, None] + off[None, :], 0, x.size - 1)
    near_qrs = np.zeros(x.size, dtype=bool)  # every detected beat's QRS, not only this beat's
    for k in range(-qrs, qrs + 1):
        near_qrs[np.clip(s + k, 0, x.size - 1)] = True
    vals = np.where(near_qrs[pos], np.nan, d2[pos])
    vals[:, ~outside] = np.nan
    own_only = np.median(d2[pos[:, outside]], axis=1)
    empty = np.isnan(vals).all(axis=1)
    vals[empty] = 0.0
    noise = np.where(empty, own_only, np.nanmedian(vals, axis=1))
    qpos = pos[:, ~outside]
    ptp = x[qpos].max(axis=1) - x[qpos].min(axis=1)

    def rel(v: NDArray[np.float64]) -> NDArray[np.float64]:
        med = float(np.median(v))
        return v / med if med > 1e-12 else np.ones_like(v)

    sat = np.zeros(s.size)
    if raw is not None and np.asarray(raw).size == x.size:
        rail = _at_rails(np.asarray(raw, dtype=np.float64), max(2, round(0.02 * fs)))
        sat = rail[pos].mean(axis=1)
    ksqi = kurtosis_rel(x, fs, s)
    return np.stack([rel(noise), rel(ptp), sat, ksqi], axis=1).astype(np.float32)


def _at_rails(raw: NDArray[np.float64], min_run: int) -> NDArray[np.bool_]:
    """Samples at the record's extreme values in runs of at least ``min_run`` samples (clipping)."""
    finite = np.isfinite(raw)
    if not finite.any():
        return np.zeros(raw.size, dtype=bool)
    lo, hi = float(np.min(raw[finite])), float(np.max(raw[finite]))
    at = finite & ((raw <= lo) | (raw >= hi))
    if lo == hi:
        return at
    edges = np.flatnonzero(np.diff(np.concatenate([[0], at.astype(np.int8), [0]])))
    out = np.zeros(raw.size, dtype=bool)
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= min_run:
            out[a:b] = True
    return out


def qrs_residual(
    filtered: NDArray[np.floating],
    fs: float,
    samples: NDArray[np.integer],
    qrs_s: tuple[float, float] = (0.08, 0.12),
    shift_s: float = 0.03,
) -> NDArray[np.float32]:
    """RMS difference between each beat's QRS and the record's median QRS, relative to its amplitude.

    The QRS window is ``R - qrs_s[0] ... R + qrs_s[1]`` of the band-passed lead (P and T waves are left
    out), baseline = the beat's median level over -0.3 ... +0.4 s; each beat is shifted by up to
    ``shift_s`` to its best match (R-peak fiducial jitter is not a shape change); the RMS difference is
    divided by the median QRS's peak-to-peak amplitude. Amplitude changes count (a taller, wider QRS is
    abnormal); a normal QRS arriving early (atrial premature beat) scores like any normal beat.

    >>> import numpy as np
    >>> t = np.arange(36000) / 360.0
    >>> peaks = np.arange(360, 35640, 360)
    >>> sig = sum(np.exp(-0.5 * ((t - p / 360.0) / 0.01) ** 2) for p in peaks)
    >>> wide = peaks[50] / 360.0
    >>> sig += 1.5 * np.exp(-0.5 * ((t - wide) / 0.04) ** 2) - np.exp(-0.5 * ((t - wide) / 0.01) ** 2)
    >>> r = qrs_residual(sig, 360.0, peaks)
    >>> int(np.argmax(r)), bool(np.median(r) < 0.01)
    (50, True)
    """
    x = np.asarray(filtered, dtype=np.float64)
    s = np.asarray(samples, dtype=np.int64)
    if s.size == 0 or x.size == 0:
        return np.zeros(s.size, dtype=np.float32)
    shift = max(round(shift_s * fs), 0)
    a, b = round(qrs_s[0] * fs), round(qrs_s[1] * fs)
    off = np.arange(-a - shift, b + shift + 1)
    q = x[np.clip(s[:, None] + off[None, :], 0, x.size - 1)]
    base_off = np.arange(round(-0.3 * fs), round(0.4 * fs) + 1)
    q -= np.median(x[np.clip(s[:, None] + base_off[None, :], 0, x.size - 1)], axis=1, keepdims=True)
    n = q.shape[1]
    template = np.median(q[:, shift : n - shift], axis=0)
    amp = float(np.ptp(template))
    best = np.full(s.size, np.inf)
    for sh in range(-shift, shift + 1):
        seg = q[:, shift + sh : n - shift + sh]
        best = np.minimum(best, np.sqrt(((seg - template[None, :]) ** 2).mean(axis=1)))
    return (best / (amp if amp > 1e-12 else 1.0)).astype(np.float32)


def p_wave_amplitude(
    filtered: NDArray[np.floating],
    fs: float,
    samples: NDArray[np.integer],
    span_s: tuple[float, float] = (0.25, 0.08),
) -> NDArray[np.float32]:
    """Peak-to-peak amplitude of ``R - span_s[0] ... R - span_s[1]`` (where the P wave sits), relative
    to the record's median.

    A beat of sinus or atrial origin has a P wave there; a ventricular beat has none, so in a record
    with visible P waves its value is a small fraction of the record's (record 108: the PVCs whose QRS
    barely differs from its variable normal QRS have no P wave). The stretch of a very early beat can
    hold the previous beat's T wave, which only makes the value larger, i.e. never mimics a missing P.

    >>> import numpy as np
    >>> fs = 360.0
    >>> t = np.arange(int(40 * fs)) / fs
    >>> peaks = (np.arange(1, 39) * fs).astype(int)
    >>> sig = sum(np.exp(-0.5 * ((t - p / fs) / 0.01) ** 2) for p in peaks)
    >>> p_waves = [0.2 * np.exp(-0.5 * ((t - p / fs + 0.16) / 0.02) ** 2) for p in peaks if p != peaks[20]]
    >>> sig = sig + sum(p_waves)
    >>> a = p_wave_amplitude(sig, fs, peaks)
    >>> round(float(a[20]), 2), round(float(np.median(a)), 2)
    (0.0, 1.0)
    """
    x = np.asarray(filtered, dtype=np.float64)
    s = np.asarray(samples, dtype=np.int64)
    if s.size == 0 or x.size == 0:
        return np.ones(s.size, dtype=np.float32)
    off = np.arange(-round(span_s[0] * fs), -round(span_s[1] * fs) + 1)
    seg = x[np.clip(s[:, None] + off[None, :], 0, x.size - 1)]
    ptp = seg.max(axis=1) - seg.min(axis=1)
    med = float(np.median(ptp))
    return (ptp / med if med > 1e-12 else np.ones_like(ptp)).astype(np.float32)


def beat_inputs(
    signal: NDArray[np.floating],
    fs: float,
    samples: NDArray[np.integer],
    spec: WindowSpec = WindowSpec(),
    group: int = 0,
) -> BeatInputs:
    """Model inputs for the beats of one record/channel (see module docstring).

    The record's dominant beat is the point-wise median of all its windows and its scale is the median
    peak-to-peak amplitude of the windows, so a few abnormal beats do not move either.

    >>> import numpy as np
    >>> sig = np.zeros(36000); sig[::360] = 1.0
    >>> bi = beat_inputs(sig, 360.0, np.arange(3600, 32400, 360))
    >>> float(np.abs(bi.waves[:, 1]).max()) < 1e-6  # identical beats: zero residual
    True
    """
    samples = np.asarray(samples, dtype=np.int64)
    order = np.argsort(samples, kind="stable")
    if not np.array_equal(order, np.arange(samples.size)):
        raise ValueError("beat samples must be sorted ascending")
    filtered = bandpass(remove_baseline(signal, fs, tuple(spec.baseline_s)), fs, spec.band_hz)
    win = extract_windows(filtered, fs, samples, spec).astype(np.float64)
    if win.shape[0] == 0:
        waves = np.zeros((0, 2, spec.n_points), dtype=np.float32)
        return BeatInputs(
            waves,
            np.zeros((0, 3), np.float32),
            np.zeros(0, np.int64),
            _clean(0),
            np.zeros(0, np.float32),
            np.zeros(0, np.float32),
        )
    win -= np.median(win, axis=1, keepdims=True)
    template = np.median(win, axis=0)
    scale = float(np.median(win.max(axis=1) - win.min(axis=1)))
    scale = scale if scale > 1e-9 else 1.0
    norm = win / scale
    resid = (win - template[None, :]) / scale
    waves = np.stack([norm, resid], axis=1).astype(np.float32)
    context = rr_context(samples, fs, spec.local_rr_beats)
    quality = beat_quality(filtered, fs, samples, raw=np.asarray(signal, dtype=np.float64))
    qrs = qrs_residual(filtered, fs, samples)
    p_wave = p_wave_amplitude(filtered, fs, samples)
    return BeatInputs(waves, context, np.full(samples.size, group, dtype=np.int64), quality, qrs, p_wave)


def concat_inputs(parts: list[BeatInputs]) -> BeatInputs:
    """Stack the inputs of several records (their ``group`` labels are kept as given).

    >>> import numpy as np
    >>> a = BeatInputs(np.zeros((2, 2, 4), np.float32), np.zeros((2, 3), np.float32), np.zeros(2, np.int64))
    >>> len(concat_inputs([a, a]))
    4
    """
    if not parts:
        return BeatInputs(
            np.zeros((0, 2, 0), np.float32), np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
        )
    return BeatInputs(
        np.concatenate([p.waves for p in parts]),
        np.concatenate([p.context for p in parts]),
        np.concatenate([p.group for p in parts]),
        np.concatenate([np.asarray(p.quality) for p in parts]),
        np.concatenate([np.asarray(p.qrs) for p in parts]),
        np.concatenate([np.asarray(p.p_wave) for p in parts]),
    )
