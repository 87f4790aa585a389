"""Why beats of good signal get quality weight 0 (PhysioNet sample record s25047, a MIMIC multi-segment
record with gaps and per-segment ADC gains), and what does *not* cause it.

Finding (docs/anomaly-windows.md, docs/anomaly.md Limits): the weight is 0 there because of the v0.6
kurtosis SQI (``kurtosis_rel`` = 0: the 5-s window around the beat is not leptokurtic, kurtosis <= 3),
not because of the gaps, the gain changes between segments, a flat lead or clipping. Kurtosis is
scale-free and the weight-0 condition ``k <= 3`` does not depend on the record's median, so neither a
segment's gain nor the record's gaps can produce it; a clean stretch of wide, rounded complexes can.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medmm.anomaly.features import beat_inputs
from medmm.anomaly.model import ScoreConfig
from medmm.anomaly.score import quality_weight

FS = 125.0


def _weights(quality: np.ndarray) -> np.ndarray:
    c = ScoreConfig()
    return quality_weight(
        quality, c.noise_ratio, c.min_qrs_ratio, c.max_saturated, noise_z=c.noise_z, kurtosis_sqi=True
    )


def _beats(seconds: float, rr: float = 0.8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    peaks = np.cumsum(rr * (1 + 0.02 * rng.normal(size=int(seconds / rr) + 2)))
    peaks = peaks[(peaks > 1.0) & (peaks < seconds - 1.0)]
    return peaks, rng.normal(0, 0.01, int(seconds * FS))


def _narrow(t: np.ndarray, peaks: np.ndarray, x: np.ndarray) -> np.ndarray:
    for p in peaks:
        g = lambda c, w, p=p: np.exp(-0.5 * ((t - p - c) / w) ** 2)  # noqa: E731
        x = x + g(0.0, 0.012) + 0.15 * g(-0.16, 0.02) + 0.25 * g(0.25, 0.05)
    return x


def _quantise(mv: np.ndarray, gain: float) -> np.ndarray:
    """An 8-bit WFDB segment (format 80) at ``gain`` adc/mV, read back in mV."""
    return np.clip(np.round(mv * gain), -128, 127) / gain


def test_gaps_and_segment_gain_changes_keep_clean_beats_readable() -> None:
    """A multi-segment record: a leading gap, segments at 86, 22 and 49 adc/mV (8-bit), a 30-s gap
    between them. Every beat of clean signal keeps a positive weight, and the beats away from a gap
    are weighted as clean beats (kurtosis_rel near 1, weight 1)."""
    seconds = 600.0
    peaks, noise = _beats(seconds)
    t = np.arange(noise.size) / FS
    mv = _narrow(t, peaks, noise)
    gains = np.where(t < 200, 86.0, np.where(t < 400, 22.0, 49.0))
    x = np.concatenate([_quantise(mv[gains == g], g) for g in (86.0, 22.0, 49.0)])
    gap = (t < 20) | ((t >= 300) & (t < 330))
    x[gap] = np.nan
    keep = ~gap[np.round(peaks * FS).astype(int)]
    samples = np.round(peaks[keep] * FS).astype(np.int64)
    q = np.asarray(beat_inputs(x, FS, samples).quality)
    w = _weights(q)
    assert (w > 0).all(), np.flatnonzero(w == 0)
    at = samples / FS
    far = (np.abs(at - 20) > 3) & (np.abs(at - 300) > 3) & (np.abs(at - 330) > 3)
    assert np.median(q[far, 3]) == pytest.approx(1.0, abs=0.05)
    assert (q[far, 3] > 0.5).all() and (q[:, 2] == 0).all()
    assert (w[far] > 0.9).mean() > 0.95


def test_a_clean_stretch_of_wide_rounded_complexes_reads_as_noise_only() -> None:
    """The mechanism behind s25047's weight-0 windows (a limit of the kurtosis SQI, documented):
    a noise-free minute of wide, rounded complexes in a record of narrow ones has a window kurtosis
    below 3, so ``kurtosis_rel`` = 0 and the weight is 0 - while the noise ratio, the QRS amplitude
    and the clipping test all call those beats clean."""
    peaks, noise = _beats(600.0, seed=1)
    t = np.arange(noise.size) / FS
    wide = (peaks >= 300) & (peaks < 360)
    x = _narrow(t, peaks[~wide], noise)
    for p in peaks[wide]:  # a sawtooth-like wide complex: 120 ms wide QRS, broad T of opposite sign
        x = x - 0.9 * np.exp(-0.5 * ((t - p) / 0.06) ** 2) + 0.5 * np.exp(-0.5 * ((t - p - 0.3) / 0.1) ** 2)
    samples = np.round(peaks * FS).astype(np.int64)
    q = np.asarray(beat_inputs(x, FS, samples).quality)
    inner = (peaks >= 305) & (peaks < 355)
    assert (q[inner, 3] == 0).all()  # kurtosis SQI: "noise only"
    assert (q[inner, 0] < 1.5).all() and (q[inner, 1] >= 0.3).all() and (q[inner, 2] == 0).all()
    assert (_weights(q)[inner] == 0).all()
    assert (_weights(q)[peaks < 290] > 0.9).all()


@pytest.mark.shared_data
def test_s25047_weight_zero_beats_are_the_kurtosis_sqi_not_gaps_gain_or_clipping(shared_data: Path) -> None:
    """Lead II at 2570-2580 and 2590-2600 s (segment 3234460_0016, 989-3566 s: one gain, no gap): a
    clean regular wide-complex stretch (lead V clean at the same time), signals-stage window quality
    0.99, status ``unreadable``. Every beat there weighs 0 because its 5-s window kurtosis is <= 3
    (``kurtosis_rel`` = 0); no sample is missing within 5 s, nothing is clipped, the noise ratio is at
    the record's usual level."""
    from medmm.anomaly.runs import read_lead
    from medmm.signals.ecg import detect_chunked

    root = shared_data / "signals" / "wfdb_sample_data"
    record = "multi-segment/s25047/s25047-2704-05-04-10-44"
    if not (root / f"{record}.hea").is_file():
        pytest.skip("s25047 not in the shared data")
    x, fs = read_lead(root, record, "wfdb", "", "II")
    assert np.isnan(x).any()  # the record has gaps ...
    lo, hi = round(2565 * fs), round(2605 * fs)
    assert not np.isnan(x[lo:hi]).any()  # ... but none near this stretch
    samples = detect_chunked(np.nan_to_num(x), fs)
    q = np.asarray(beat_inputs(x, fs, samples).quality)
    at = samples / fs
    inner = ((at >= 2570) & (at < 2580)) | ((at >= 2590) & (at < 2600))  # the two unreadable windows
    assert inner.sum() >= 25
    assert (q[inner, 3] == 0).all() and (_weights(q)[inner] == 0).all()
    around = (at >= 2565) & (at < 2600)
    assert (q[around, 3] < 0.05).all()  # the whole 35-s stretch reads as (almost) noise only
    assert (q[inner, 2] == 0).all() and np.median(q[inner, 0]) < 1.2
    assert (q[inner, 1] >= 0.3).mean() > 0.9
    assert (q[:, 3] > 0).mean() > 0.8  # most of the record is not read as noise
