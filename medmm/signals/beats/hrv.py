"""Time-domain heart-rate variability from R peaks, with ectopic-robust RR filtering.

Raw RR intervals include ectopic beats (a premature beat gives one short and one long, compensatory
interval), missed or extra detections, and gaps in the recording; each inflates SDNN and, much more,
RMSSD. Before computing statistics the intervals are filtered into *NN intervals*:

1. **Plausibility:** keep ``0.3 s <= RR <= 2.0 s`` (200 to 30 bpm); longer intervals are usually gaps
   or missed beats.
2. **Local median rule:** keep an interval only when it is within +-20 % of the median of the 11
   plausible intervals centred on it (the rule of Kamath & Fallen / Malik et al. used by most HRV
   tools). This drops the short pre-ectopic and the long compensatory interval around each premature
   beat.
3. **RMSSD** uses only differences of two *consecutive* kept intervals (both neighbours of the same
   beat), so removing an interval never creates a spurious jump.

``mean_hr_bpm`` is ``60 / mean(NN)``, ``sdnn_ms`` the standard deviation (ddof=1) of the NN intervals.
Statistics are NaN when fewer than 2 NN intervals (RMSSD: successive NN differences) remain.

>>> import numpy as np
>>> peaks = np.cumsum(np.r_[0, np.full(30, 360)])  # 1 s intervals at 360 Hz
>>> s = hrv_summary(peaks, 360.0)
>>> s["mean_hr_bpm"], s["sdnn_ms"], s["rmssd_ms"], s["n_beats"]
(60.0, 0.0, 0.0, 31)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["RR_MAX_S", "RR_MIN_S", "hrv_summary", "nn_mask"]

RR_MIN_S = 0.3
RR_MAX_S = 2.0
_LOCAL_N = 11
_LOCAL_TOL = 0.2


def nn_mask(rr_s: NDArray[np.floating]) -> NDArray[np.bool_]:
    """Which RR intervals (seconds) are kept as NN intervals by the rules of the module docstring.

    >>> import numpy as np
    >>> rr = np.array([1.0, 1.0, 1.02, 0.6, 1.4, 1.0, 0.98, 1.0])  # one premature beat
    >>> nn_mask(rr).tolist()
    [True, True, True, False, False, True, True, True]
    """
    rr = np.asarray(rr_s, dtype=np.float64).reshape(-1)
    ok = np.isfinite(rr) & (rr >= RR_MIN_S) & (rr <= RR_MAX_S)
    if not ok.any():
        return ok
    vals = rr[ok]
    h = _LOCAL_N // 2
    pad = np.concatenate([np.full(h, np.nan), vals, np.full(h, np.nan)])
    win = np.lib.stride_tricks.sliding_window_view(pad, _LOCAL_N)
    local = np.nanmedian(win, axis=1)
    keep = np.abs(vals - local) <= _LOCAL_TOL * local
    out = np.zeros(rr.size, dtype=bool)
    out[np.flatnonzero(ok)[keep]] = True
    return out


def hrv_summary(peaks: NDArray[np.integer], fs: float) -> dict[str, float | int]:
    """Mean heart rate, SDNN and RMSSD of a beat sequence, ectopic-robust.

    Parameters
    ----------
    peaks : numpy.ndarray
        Sorted R-peak sample indices.
    fs : float
        Sampling rate in Hz.

    Returns
    -------
    dict
        ``mean_hr_bpm``, ``sdnn_ms``, ``rmssd_ms`` (float, NaN when too few NN intervals), ``n_beats``
        (number of peaks), ``n_rr`` (raw intervals), ``n_nn`` (kept intervals) and ``nn_fraction``.

    Examples
    --------
    >>> import numpy as np
    >>> rr = np.array([0.8, 0.82, 0.8, 0.5, 1.1, 0.8, 0.82, 0.8])  # a premature beat and its pause
    >>> s = hrv_summary(np.round(np.r_[0, np.cumsum(rr)] * 250).astype(int), 250.0)
    >>> s["n_nn"], round(s["rmssd_ms"], 1)
    (6, 20.0)
    """
    if fs <= 0:
        raise ValueError(f"fs must be a positive sampling rate in Hz, got {fs!r}")
    p = np.asarray(peaks, dtype=np.float64).reshape(-1)
    rr = np.diff(p) / fs
    keep = nn_mask(rr)
    nn = rr[keep]
    both = keep[1:] & keep[:-1]  # consecutive kept intervals around one beat
    succ = np.diff(rr)[both]
    nan = float("nan")
    return {
        "mean_hr_bpm": float(60.0 / nn.mean()) if nn.size >= 2 else nan,
        "sdnn_ms": float(nn.std(ddof=1) * 1000.0) if nn.size >= 2 else nan,
        "rmssd_ms": float(np.sqrt(np.mean(succ**2)) * 1000.0) if succ.size >= 1 else nan,
        "n_beats": int(p.size),
        "n_rr": int(rr.size),
        "n_nn": int(nn.size),
        "nn_fraction": float(nn.size / rr.size) if rr.size else nan,
    }
