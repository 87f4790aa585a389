"""A small synthetic ECG (Gaussian P, QRS and T waves at known beat times) for tests and examples.

Not a physiological model: it gives a signal with exactly known R-peak samples, adjustable rate, QRS
width, polarity, baseline wander and noise, so detectors and features can be checked against truth.

>>> ecg, beats = simulate_ecg(360.0, duration_s=5.0, hr_bpm=60.0, seed=1)
>>> ecg.shape, beats[:2].tolist()
((1800,), [216, 576])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["simulate_ecg"]


def simulate_ecg(
    fs: float,
    duration_s: float = 30.0,
    hr_bpm: float = 70.0,
    *,
    seed: int = 0,
    noise: float = 0.02,
    wander: float = 0.3,
    qrs_sigma_s: float = 0.012,
    invert: bool = False,
    rr_jitter: float = 0.05,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Simulate one ECG lead in mV with known beat positions.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    duration_s : float
        Length in seconds; beats start 0.6 s in and stop 0.6 s before the end.
    hr_bpm : float
        Mean heart rate; each RR interval varies uniformly by ``+-rr_jitter``.
    seed : int
        Seed of the RR jitter and the noise.
    noise : float
        Standard deviation of white noise (mV).
    wander : float
        Amplitude of a 0.15 Hz baseline wander (mV).
    qrs_sigma_s : float
        Width (standard deviation, s) of the R wave; about ``6 * qrs_sigma_s`` is the QRS duration.
    invert : bool
        Flip the polarity of every wave (an inverted lead).
    rr_jitter : float
        Relative RR variation.

    Returns
    -------
    ecg : numpy.ndarray
        The signal, shape ``(round(duration_s * fs),)``.
    beats : numpy.ndarray
        Sample index of each R peak.

    Examples
    --------
    >>> ecg, beats = simulate_ecg(250.0, duration_s=10.0, hr_bpm=75.0, invert=True)
    >>> int(np.argmin(ecg[beats[0] - 10 : beats[0] + 10])) == 10
    True
    """
    rng = np.random.default_rng(seed)
    n = round(duration_s * fs)
    t = np.arange(n) / fs
    rr = 60.0 / hr_bpm
    times = []
    b = 0.6
    while b < duration_s - 0.6:
        times.append(b)
        b += rr * (1 + rng.uniform(-rr_jitter, rr_jitter))
    beats = np.round(np.asarray(times) * fs).astype(np.int64)
    ecg = np.zeros(n)
    for s in beats:
        bt = s / fs
        lo, hi = max(0, s - int(0.4 * fs)), min(n, s + int(0.6 * fs))
        tt = t[lo:hi] - bt
        ecg[lo:hi] += (
            0.15 * np.exp(-0.5 * ((tt + 0.18) / 0.025) ** 2)  # P
            + np.exp(-0.5 * (tt / qrs_sigma_s) ** 2)  # R
            - 0.2 * np.exp(-0.5 * ((tt - 2.5 * qrs_sigma_s) / 0.01) ** 2)  # S
            + 0.3 * np.exp(-0.5 * ((tt - 0.3) / 0.05) ** 2)  # T
        )
    if invert:
        ecg = -ecg
    ecg += wander * np.sin(2 * np.pi * 0.15 * t) + noise * rng.normal(size=n)
    return ecg, beats
