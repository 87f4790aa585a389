"""R-peak detector, isolated-beat rule: sub-threshold QRS complexes far from both neighbouring beats.

Interpolated PVCs (wide, low-slope QRS between two normal beats, no compensatory pause) have a fraction
of a normal beat's 5-20 Hz slope energy and do not open a gap long enough for search-back; the rule
reports them. The rule is switched off here by setting its isolation ratio to infinity.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

from medmm.signals.beats import detect_rpeaks, match_reference, rpeaks, simulate_ecg

FS = 360.0
MITDB = "signals/mitdb_subset"
# the three interpolated PVCs of MIT-BIH 123 (.atr samples, symbol V) the walk alone never reports
PVC_123 = (152471, 545876, 600047)


def _without_rule() -> AbstractContextManager[Any]:
    return mock.patch.object(rpeaks, "_ISO_SNR", np.inf)


def _with_waves(
    seed: int, offset_s: float, sigma_s: float, amp: float, every: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """50 bpm synthetic ECG plus a Gaussian wave ``offset_s`` after every ``every``-th beat."""
    ecg, beats = simulate_ecg(FS, duration_s=60.0, hr_bpm=50.0, seed=seed, noise=0.01, rr_jitter=0.02)
    t = np.arange(ecg.size) / FS
    extra = []
    for b in beats[5:-3:every]:
        c = b / FS + offset_s
        ecg += amp * np.exp(-0.5 * ((t - c) / sigma_s) ** 2)
        extra.append(round(c * FS))
    return ecg, beats, np.asarray(extra, dtype=np.int64)


@pytest.mark.parametrize("seed", [0, 1])
def test_interpolated_pvcs_are_found_only_by_the_rule(seed: int) -> None:
    # wide (sigma 35 ms, QRS ~ 200 ms) inverted complex 0.52 s after a normal beat, 0.68 s before the next
    ecg, beats, pvcs = _with_waves(seed, offset_s=0.52, sigma_s=0.035, amp=-1.2, every=6)
    truth = np.sort(np.concatenate([beats, pvcs]))
    with _without_rule():
        off = match_reference(detect_rpeaks(ecg, FS), truth, FS)
    on = match_reference(detect_rpeaks(ecg, FS), truth, FS)
    assert (off.fp, off.fn) == (0, pvcs.size)  # the walk alone misses every PVC
    assert (on.tp, on.fp, on.fn) == (truth.size, 0, 0)


def test_tall_late_t_waves_are_not_isolated_beats() -> None:
    # T waves taller than the R wave, 0.42 s after it (beyond the 360 ms T-wave window): above half the
    # threshold, but broad - only the isolation ratio keeps them out (41 false beats without it)
    ecg, beats, _ = _with_waves(2, offset_s=0.42, sigma_s=0.04, amp=1.5, every=1)
    res = match_reference(detect_rpeaks(ecg, FS), beats, FS)
    assert (res.fp, res.fn) == (0, 0)
    with mock.patch.object(rpeaks, "_ISO_SNR", 0.0):
        assert match_reference(detect_rpeaks(ecg, FS), beats, FS).fp > 20


def _load(shared_data: Path, record: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wfdb = pytest.importorskip("wfdb")
    path = shared_data / MITDB / record
    if not path.with_suffix(".hea").exists():
        pytest.skip(f"{path}.hea not in the shared data")
    sig = wfdb.rdrecord(str(path), channels=[0]).p_signal[:, 0]
    ann = wfdb.rdann(str(path), "atr")
    return sig, np.asarray(ann.sample), np.asarray(ann.symbol)


@pytest.mark.shared_data
def test_mitdb_123_interpolated_pvcs(shared_data: Path) -> None:
    sig, ref, sym = _load(shared_data, "123")
    assert all(sym[ref == s][0] == "V" for s in PVC_123)
    peaks = detect_rpeaks(sig, FS)
    for s in PVC_123:
        assert np.abs(peaks - s).min() <= 0.15 * FS, s
    res = match_reference(peaks, ref, FS, tol_s=0.15)
    assert (res.fp, res.fn) == (0, 0)
    with _without_rule():
        before = detect_rpeaks(sig, FS)
    assert all(np.abs(before - s).min() > 0.15 * FS for s in PVC_123)
    assert np.setdiff1d(peaks, before).size == len(PVC_123)  # nothing else changed


@pytest.mark.shared_data
def test_mitdb_all_records_gain_beats_and_no_false_detections(shared_data: Path) -> None:
    # bench/bench_rpeaks.py numbers: walk alone TP 18657 / FP 30 / FN 39, with the rule 18663 / 30 / 33
    on = np.zeros(3, dtype=np.int64)
    off = np.zeros(3, dtype=np.int64)
    for rec in ("100", "102", "104", "105", "108", "114", "116", "121", "123"):
        sig, ref, _ = _load(shared_data, rec)
        r = match_reference(detect_rpeaks(sig, FS), ref, FS, tol_s=0.15)
        on += (r.tp, r.fp, r.fn)
        with _without_rule():
            r = match_reference(detect_rpeaks(sig, FS), ref, FS, tol_s=0.15)
        off += (r.tp, r.fp, r.fn)
    assert on[1] <= off[1]  # no false detection added
    assert on[0] >= off[0] + 6 and on[2] <= 33
