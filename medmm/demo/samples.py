"""Generated sample inputs for the demo: radiology reports and ECG records with ectopic beats.

Nothing here is patient data: the reports are written for the demo, the ECG is a sum of Gaussian waves
(P, QRS, T) with premature ventricular beats (wide QRS, no P wave, inverted T, compensatory pause) whose
positions are written as WFDB reference annotations (``N`` / ``V``).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> ecg, samples, symbols = synthetic_ecg(360.0, 20.0, seed=0)
>>> len(samples) == len(symbols) and "V" in symbols
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["SAMPLE_REPORTS", "synthetic_ecg", "write_sample_ecg", "write_sample_reports"]

#: (report id, patient id, indication, findings, impression). The patient ids match the demo archive's
#: made-up patient (``DEMO-0001``) so the pseudonyms link reports to volumes.
SAMPLE_REPORTS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "demo-r1",
        "DEMO-0001",
        "Cough and fever.",
        "Heart size is enlarged. There is a 12 mm spiculated nodule in the right upper lobe. "
        "No pleural effusion or pneumothorax.",
        "Cardiomegaly. 1.2 cm right upper lobe nodule, CT recommended.",
    ),
    (
        "demo-r2",
        "DEMO-0002",
        "Chest pain.",
        "The lungs are clear. Heart and mediastinum are within normal limits. No pneumothorax.",
        "No acute cardiopulmonary abnormality.",
    ),
    (
        "demo-r3",
        "DEMO-0003",
        "Shortness of breath, history of CHF.",
        "Moderate bilateral pleural effusions with bibasilar atelectasis. Pulmonary vascular congestion "
        "suggesting mild edema. Possible small left lower lobe consolidation.",
        "Bilateral effusions and mild edema. Cannot exclude pneumonia at the left base.",
    ),
    (
        "demo-r4",
        "DEMO-0004",
        "Fall.",
        "Healed fracture of the left 6th rib. Calcified granuloma in the right lower lobe. "
        "Hyperinflated lungs consistent with emphysema.",
        "No acute fracture. Emphysema.",
    ),
)


def write_sample_reports(path: Path) -> Path:
    """Write :data:`SAMPLE_REPORTS` as a CSV (``report_id, patient_id, indication, findings, impression``)."""
    cols = ["report_id", "patient_id", "indication", "findings", "impression"]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(list(SAMPLE_REPORTS), columns=cols).to_csv(path, index=False)
    return path


def _waves(
    t: NDArray[np.float64], centre: float, waves: list[tuple[float, float, float]]
) -> NDArray[np.float64]:
    out = np.zeros_like(t)
    for offset, amp, sigma in waves:
        out += amp * np.exp(-0.5 * ((t - centre - offset) / sigma) ** 2)
    return out


_NORMAL = [
    (-0.20, 0.12, 0.025),
    (-0.03, -0.10, 0.008),
    (0.0, 1.0, 0.012),
    (0.03, -0.20, 0.008),
    (0.25, 0.30, 0.05),
]
#: PVC spacing (in beats) of the sample records: frequent, none, occasional.
_PVC_EVERY = (7, 0, 23)
_PVC = [(0.0, 1.5, 0.035), (0.08, -0.6, 0.03), (0.32, -0.40, 0.07)]


def synthetic_ecg(
    fs: float, duration_s: float, *, hr_bpm: float = 72.0, pvc_every: int = 9, seed: int = 0
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str]]:
    """One ECG lead (mV), a PVC every ``pvc_every`` beats (0: none); returns signal, beat samples, symbols."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * fs)
    t = np.arange(n) / fs
    rr = 60.0 / hr_bpm
    ecg = 0.05 * np.sin(2 * np.pi * 0.2 * t) + rng.normal(0, 0.015, n)
    times: list[float] = []
    symbols: list[str] = []
    beat_t = 0.8
    k = 0
    while beat_t < duration_s - 1.0:
        k += 1
        is_pvc = pvc_every > 0 and k % pvc_every == 0
        ecg += _waves(t, beat_t, _PVC if is_pvc else _NORMAL)
        times.append(beat_t)
        symbols.append("V" if is_pvc else "N")
        jitter = rng.uniform(-0.03, 0.03) * rr
        next_is_pvc = pvc_every > 0 and (k + 1) % pvc_every == 0
        if next_is_pvc:
            beat_t += 0.6 * rr + jitter  # premature
        elif is_pvc:
            beat_t += 1.4 * rr + jitter  # compensatory pause
        else:
            beat_t += rr + jitter
    samples = np.round(np.asarray(times) * fs).astype(np.int64)
    return ecg, samples, symbols


def write_sample_ecg(
    folder: Path, *, n_records: int = 3, fs: int = 360, duration_s: float = 120.0, seed: int = 0
) -> Path:
    """Write ``n_records`` WFDB records ``demo_ecg_<i>`` (+ ``.atr`` reference beats) in ``folder``."""
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_records):
        ecg, samples, symbols = synthetic_ecg(
            float(fs),
            duration_s,
            hr_bpm=64.0 + 8 * i,
            pvc_every=_PVC_EVERY[i % len(_PVC_EVERY)],
            seed=seed + i,
        )
        name = f"demo_ecg_{i + 1}"
        wfdb.wrsamp(
            name,
            fs=fs,
            units=["mV"],
            sig_name=["MLII"],
            p_signal=ecg.reshape(-1, 1),
            fmt=["16"],
            adc_gain=[200.0],
            baseline=[0],
            write_dir=str(folder),
        )
        wfdb.wrann(name, "atr", samples, symbol=symbols, write_dir=str(folder))
    return folder
