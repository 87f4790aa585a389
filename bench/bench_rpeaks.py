"""R-peak detection on MIT-BIH (lead 0, 360 Hz): medmm ``detect_rpeaks`` vs. ``wfdb.processing.xqrs_detect``.

Both detectors see the same whole records; detections are matched beat by beat to every ``.atr`` beat
annotation with a 150 ms window (:func:`medmm.signals.beats.match_reference`, EC57 style). Nothing is
excluded at the record edges, for either detector. Times are wall-clock seconds of the detector call
alone (the record is read once beforehand); ``--quick`` uses the first 5 minutes of three records.

``python -m bench rpeaks``
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from medmm.datasets import shared_data_dir
from medmm.signals.beats import detect_rpeaks, match_reference

RECORDS = ["100", "102", "104", "105", "108", "114", "116", "121", "123"]
QUICK_RECORDS = ["100", "105", "108"]
TOL_S = 0.15


def _row(name: str, res: Any, seconds: float) -> dict[str, Any]:
    return {
        f"{name}_tp": res.tp,
        f"{name}_fp": res.fp,
        f"{name}_fn": res.fn,
        f"{name}_se": res.sensitivity,
        f"{name}_ppv": res.positive_predictivity,
        f"{name}_s": seconds,
    }


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Evaluate both detectors on the MIT-BIH subset; print a table; return the summary."""
    import wfdb
    from wfdb import processing

    logging.getLogger("wfdb").setLevel(logging.WARNING)
    root = shared_data_dir()
    if root is None or not (root / "signals/mitdb_subset").is_dir():
        raise FileNotFoundError("signals/mitdb_subset not found: set MEDMM_DATA to the shared data folder")
    folder = root / "signals/mitdb_subset"
    records = QUICK_RECORDS if quick else RECORDS
    sampto = 360 * 300 if quick else None
    rows = []
    for rec in records:
        path = str(folder / rec)
        rd = wfdb.rdrecord(path, channels=[0], sampto=sampto)
        sig, fs = rd.p_signal[:, 0], float(rd.fs)
        ref = wfdb.rdann(path, "atr", sampto=sampto).sample
        t0 = time.perf_counter()
        ours = detect_rpeaks(sig, fs)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        xq = processing.xqrs_detect(sig, fs, verbose=False)
        t_xq = time.perf_counter() - t0
        row = {"record": rec, "n_ref": int(ref.size), "minutes": sig.size / fs / 60}
        row |= _row("medmm", match_reference(ours, ref, fs, TOL_S), t_ours)
        row |= _row("xqrs", match_reference(xq, ref, fs, TOL_S), t_xq)
        rows.append(row)

    total: dict[str, Any] = {"record": "ALL", "n_ref": sum(r["n_ref"] for r in rows)}
    for name in ("medmm", "xqrs"):
        tp, fp, fn = (sum(r[f"{name}_{k}"] for r in rows) for k in ("tp", "fp", "fn"))
        total |= {
            f"{name}_tp": tp,
            f"{name}_fp": fp,
            f"{name}_fn": fn,
            f"{name}_se": tp / (tp + fn),
            f"{name}_ppv": tp / (tp + fp),
            f"{name}_s": sum(r[f"{name}_s"] for r in rows),
        }
    speedup = total["xqrs_s"] / total["medmm_s"]

    head = f"{'record':>6} {'beats':>6} | {'medmm Se':>8} {'+P':>7} {'FP':>4} {'FN':>4} {'s':>6} |"
    head += f" {'XQRS Se':>8} {'+P':>7} {'FP':>4} {'FN':>4} {'s':>6}"
    print(head)
    print("-" * len(head))
    for r in [*rows, total]:
        print(
            f"{r['record']:>6} {r['n_ref']:>6} | {100 * r['medmm_se']:8.2f} {100 * r['medmm_ppv']:7.2f}"
            f" {r['medmm_fp']:4d} {r['medmm_fn']:4d} {r['medmm_s']:6.3f} |"
            f" {100 * r['xqrs_se']:8.2f} {100 * r['xqrs_ppv']:7.2f} {r['xqrs_fp']:4d} {r['xqrs_fn']:4d}"
            f" {r['xqrs_s']:6.3f}"
        )
    print(f"speed: medmm {speedup:.1f}x faster than XQRS (detector time only, same records)")

    summary = {
        "baseline": "wfdb.processing.xqrs_detect",
        "tolerance_s": TOL_S,
        "quick": quick,
        "records": rows,
        "overall": total,
        "speedup_vs_xqrs": speedup,
        "wfdb_version": wfdb.__version__,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "per_record.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return summary


if __name__ == "__main__":
    import sys

    run(Path(__file__).resolve().parent / "results" / "rpeaks", "--quick" in sys.argv)
