"""Resampling keeps frequency/amplitude, removes what is above the new Nyquist, keeps gaps; masks."""

from __future__ import annotations

import numpy as np
import pytest

from medmm.signals.harmonize import (
    finite_runs,
    flat_mask,
    normalize_units,
    rational_ratio,
    resample,
    saturation_mask,
)
from medmm.signals.quality import window_quality


def _peak(y: np.ndarray, fs: float) -> tuple[float, float]:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    k = int(np.argmax(spec))
    return float(np.fft.rfftfreq(y.size, 1 / fs)[k]), float(spec[k])


@pytest.mark.parametrize(
    ("fs_in", "fs_out"), [(360.0, 250.0), (1000.0, 250.0), (125.0, 250.0), (249.89, 250.0)]
)
def test_sinusoid_keeps_frequency_and_amplitude(fs_in: float, fs_out: float) -> None:
    t = np.arange(int(20 * fs_in)) / fs_in
    x = 1.5 * np.sin(2 * np.pi * 7.0 * t)
    y, actual = resample(x, fs_in, fs_out)
    assert actual == pytest.approx(fs_out, rel=1e-5)
    assert y.size == int(np.ceil(x.size * actual / fs_in))
    f, _ = _peak(y, actual)
    assert f == pytest.approx(7.0, abs=0.1)
    core = y[int(actual) : -int(actual)]  # away from the edges
    assert np.max(np.abs(core)) == pytest.approx(1.5, rel=0.01)
    t_out = np.arange(y.size) / actual
    assert np.allclose(core, 1.5 * np.sin(2 * np.pi * 7.0 * t_out[int(actual) : -int(actual)]), atol=0.02)


def test_component_above_new_nyquist_is_removed_not_aliased() -> None:
    fs_in, fs_out = 1000.0, 250.0
    t = np.arange(int(10 * fs_in)) / fs_in
    wanted = np.sin(2 * np.pi * 10.0 * t)
    x = wanted + np.sin(2 * np.pi * 200.0 * t)  # 200 Hz > 125 Hz: naive decimation aliases it to 50 Hz
    y, fs = resample(x, fs_in, fs_out)
    freqs = np.fft.rfftfreq(y.size, 1 / fs)
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    alias = spec[np.abs(freqs - 50.0) < 1.0].max()
    signal = spec[np.abs(freqs - 10.0) < 1.0].max()
    assert alias < 1e-3 * signal
    naive = x[::4]  # what dropping samples would do: a strong 50 Hz alias
    nspec = np.abs(np.fft.rfft(naive * np.hanning(naive.size)))
    assert nspec[np.abs(freqs - 50.0) < 1.0].max() > 0.3 * signal


def test_gaps_stay_gaps_and_runs_keep_their_offsets() -> None:
    fs_in, fs_out = 125.0, 250.0
    x = np.sin(2 * np.pi * 2.0 * np.arange(1250) / fs_in)
    x[300:500] = np.nan
    y, fs = resample(x, fs_in, fs_out)
    assert finite_runs(y) == [(0, 600), (1000, 2500)]
    t = np.arange(y.size) / fs
    ok = np.isfinite(y)
    ok[:20] = ok[580:1020] = ok[-20:] = False  # leave filter edges aside
    assert np.allclose(y[ok], np.sin(2 * np.pi * 2.0 * t[ok]), atol=0.01)


def test_rational_ratio_and_bad_rate() -> None:
    assert rational_ratio(360, 250) == (25, 36)
    with pytest.raises(ValueError, match="positive"):
        rational_ratio(0, 250)


def test_saturation_and_flat_masks() -> None:
    fs = 100.0
    x = np.sin(2 * np.pi * np.arange(1000) / fs) * 3
    x = np.clip(x, -2.0, 2.0)  # clipped at the ADC rails
    sat = saturation_mask(x, (-2.0, 2.0))
    assert sat.mean() > 0.2 and np.all(np.abs(x[sat]) >= 2.0 - 1e-9)
    assert not saturation_mask(np.sin(np.arange(500) / 10.0), (-5.0, 5.0)).any()
    y = np.r_[np.sin(np.arange(200) / 5.0), np.full(300, 0.7), np.sin(np.arange(200) / 5.0)]
    flat = flat_mask(y, fs, min_seconds=1.0)
    assert flat[200:500].all() and flat.sum() <= 302
    assert not flat_mask(y, fs, min_seconds=5.0).any()


def test_units_and_quality_index() -> None:
    x, u = normalize_units(np.array([1500.0]), "uV", "ecg")
    assert u == "mV" and x[0] == pytest.approx(1.5)
    fs = 250.0
    t = np.arange(2500) / fs
    clean = np.sin(2 * np.pi * 1.3 * t) + 0.3 * np.sin(2 * np.pi * 8 * t)
    rng = np.random.default_rng(0)
    noisy = clean + 3 * rng.standard_normal(t.size)
    q_clean = window_quality(clean, fs, "ecg", missing=0, flat=0, saturated=0)
    q_noisy = window_quality(noisy, fs, "ecg", missing=0, flat=0, saturated=0)
    assert q_clean.sqi > 0.95 > q_noisy.sqi + 0.3
    assert q_noisy.noise > 0.3 and q_noisy.wander < 0.05
    drifting = clean + 4 * np.sin(2 * np.pi * 0.1 * t)  # baseline wander below 0.5 Hz
    q_drift = window_quality(drifting, fs, "ecg", missing=0, flat=0, saturated=0)
    assert q_drift.wander > 0.5 and q_drift.noise < 0.05 and q_drift.sqi < 0.5
    assert window_quality(clean, fs, "ecg", missing=0.5, flat=0, saturated=0).sqi < 0.55
    assert window_quality(np.zeros(2500), fs, "ecg", missing=0, flat=1.0, saturated=0).sqi == 0.0
