"""v0.8 template-share SQI on synthetic beats: noise lowers it, a run of identical wide beats does not
(where the kSQI does fall), a single rare-shape beat keeps its window clean, and the scorer's cap."""

from __future__ import annotations

import numpy as np
import pytest

from medmm.anomaly.features import QUALITY_COLUMNS, bandpass, beat_inputs
from medmm.anomaly.model import ScoreConfig
from medmm.anomaly.score import quality_weight
from medmm.anomaly.sqi import kurtosis_rel
from medmm.anomaly.tsqi import beat_template_share, template_share_rel

FS = 360.0


def _ecg(rr: np.ndarray, wide: set[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Beats at cumulative ``rr``; indices in ``wide`` are wide inverted PVC-like beats, the rest narrow
    sinus beats with a T wave; white noise of 0.02 mV."""
    peaks = (np.cumsum(rr) * FS).astype(int)
    t = np.arange(peaks[-1] + int(FS)) / FS
    sig = np.random.default_rng(seed).normal(0, 0.02, t.size)
    for i, p in enumerate(peaks):
        if i in wide:
            sig += -1.6 * np.exp(-0.5 * ((t - p / FS) / 0.035) ** 2)
            sig += 0.4 * np.exp(-0.5 * ((t - p / FS - 0.28) / 0.06) ** 2)
        else:
            sig += np.exp(-0.5 * ((t - p / FS) / 0.012) ** 2)
            sig += 0.25 * np.exp(-0.5 * ((t - p / FS - 0.25) / 0.05) ** 2)
    return sig, peaks


def test_noise_burst_lowers_the_index() -> None:
    rng = np.random.default_rng(1)
    sig, peaks = _ecg(np.full(150, 0.8), set())
    burst = slice(peaks[80] - int(2.0 * FS), peaks[80] + int(2.0 * FS))
    slow = np.convolve(rng.normal(size=burst.stop - burst.start), np.ones(60) / 60, mode="same")
    sig[burst] += 0.35 * slow / slow.std()  # motion-like (slow) noise, SD 0.35 mV
    x = bandpass(sig, FS)
    q = template_share_rel(x, FS, peaks)
    assert np.median(q) == pytest.approx(1.0, abs=1e-6)
    assert q[80] < 0.6 and q[79] < 0.7 and q[81] < 0.7
    assert q[20] > 0.97 and q[140] > 0.97
    share, n_templates = beat_template_share(x, FS, peaks)
    assert n_templates >= 1 and share[80] < share[20] - 0.3


def test_run_of_identical_wide_beats_keeps_full_quality_where_kurtosis_falls() -> None:
    n = 160
    rr = np.full(n, 0.8)
    run = set(range(60, 72))  # a 12-beat run of one wide ectopic shape (idioventricular, not early)
    sig, peaks = _ecg(rr, run)
    x = bandpass(sig, FS)
    q = template_share_rel(x, FS, peaks)
    k = kurtosis_rel(x, FS, peaks)
    assert min(q[i] for i in run) > 0.97  # the run's shape recurs: it has its own template
    assert min(q[i] for i in run) > max(k[i] for i in range(62, 70)) + 0.2  # the kSQI falls there
    share, n_templates = beat_template_share(x, FS, peaks)
    assert n_templates == 2 and share[65] > 0.98


def test_one_rare_beat_without_template_does_not_make_its_window_noisy() -> None:
    rr = np.full(120, 0.8)
    rr[50], rr[51] = 0.5, 1.1
    sig, peaks = _ecg(rr, {50})  # one PVC: fewer than 5 of its shape, so no template of its own
    x = bandpass(sig, FS)
    share, n_templates = beat_template_share(x, FS, peaks)
    assert n_templates == 1 and share[50] < 0.5  # the beat itself is unexplained ...
    q = template_share_rel(x, FS, peaks)
    assert q[50] > 0.97  # ... but the window's median beat is clean


def test_no_recurring_shape_or_too_few_beats_gives_ones() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(size=20000)
    peaks = np.arange(300, 19500, 300)
    assert beat_template_share(noise, FS, peaks)[1] == 0
    assert template_share_rel(noise, FS, peaks).tolist() == [1.0] * peaks.size
    assert template_share_rel(noise, FS, peaks[:3]).tolist() == [1.0] * 3
    assert template_share_rel(noise, FS, peaks[:0]).size == 0


def test_scorer_caps_weight_with_template_index_by_default() -> None:
    cfg = ScoreConfig()
    assert cfg.template_sqi is True and cfg.kurtosis_sqi is False
    assert ScoreConfig.a_priori().template_sqi is True
    rr = np.full(150, 0.8)
    sig, peaks = _ecg(rr, set(range(60, 72)))
    rng = np.random.default_rng(3)
    burst = slice(peaks[120] - int(2.0 * FS), peaks[120] + int(2.0 * FS))
    sig[burst] += rng.normal(0, 0.4, burst.stop - burst.start)
    q = np.asarray(beat_inputs(sig, FS, peaks).quality)
    assert q.shape[1] == len(QUALITY_COLUMNS) == 5 and QUALITY_COLUMNS[4] == "template_share_rel"
    w = quality_weight(q, cfg.noise_ratio, cfg.min_qrs_ratio, template_sqi=True)
    w_k = quality_weight(q, cfg.noise_ratio, cfg.min_qrs_ratio, kurtosis_sqi=True)
    assert min(w[60:72]) > 0.95 and min(w_k[62:70]) < 0.8
    assert w[120] < 0.6
    five = np.array([[1.0, 1.0, 0.0, 1.0, 0.3], [1.0, 1.0, 0.0, 0.04, 1.5]])
    assert quality_weight(five, 2.0, 0.3, template_sqi=True).tolist() == pytest.approx([0.3, 1.0])
    assert quality_weight(five[:, :4], 2.0, 0.3, template_sqi=True).tolist() == [1.0, 1.0]
