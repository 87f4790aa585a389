"""R-peak detection on MIT-BIH (360 Hz): medmm ``detect_rpeaks`` vs. ``wfdb.processing.xqrs_detect``.

Both detectors see the same whole records; detections are matched beat by beat to every ``.atr`` beat
annotation with a 150 ms window (:func:`medmm.signals.beats.match_reference`, EC57 style). Nothing is
excluded at the record edges, for either detector. Times are wall-clock seconds of the detector call
alone (the record is read once beforehand); ``--quick`` uses the first 5 minutes of three records.

Rows: the 9 records of ``signals/mitdb_subset`` (lead 0; ``ALL`` pools them) and, outside the pool,
record 100 of ``signals/wfdb_sample_data`` on its second lead (V5; its lead 0 is the subset's 100).
Columns ``Vmiss``: reference ``V`` beats (PVCs) no detection matches. The ``no iso`` columns are medmm
with its isolated-beat rule switched off (``rpeaks._ISO_SNR = inf``: the detector before that rule), to
show what the rule adds.

``python -m bench rpeaks``
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from medmm.datasets import shared_data_dir
from medmm.signals.beats import detect_rpeaks, match_reference, rpeaks

RECORDS = ["100", "102", "104", "105", "108", "114", "116", "121", "123"]
QUICK_RECORDS = ["100", "105", "108"]
EXTRA = [("wfdb_sample_data/100", 1, "100/V5")]  # (path under signals/, lead, row name), not pooled
TOL_S = 0.15
BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
NAMES = ("medmm", "noiso", "xqrs")


def _row(name: str, res: Any, seconds: float, v_missed: int) -> dict[str, Any]:
    return {
        f"{name}_tp": res.tp,
        f"{name}_fp": res.fp,
        f"{name}_fn": res.fn,
        f"{name}_se": res.sensitivity,
        f"{name}_ppv": res.positive_predictivity,
        f"{name}_s": seconds,
        f"{name}_v_missed": v_missed,
    }


def _evaluate(path: str, lead: int, name: str, sampto: int | None) -> dict[str, Any]:
    import wfdb
    from wfdb import processing

    rd = wfdb.rdrecord(path, channels=[lead], sampto=sampto)
    sig, fs = rd.p_signal[:, 0], float(rd.fs)
    ann = wfdb.rdann(path, "atr", sampto=sampto)
    keep = np.isin(ann.symbol, sorted(BEAT_SYMBOLS))
    ref, is_v = np.asarray(ann.sample)[keep], np.asarray(ann.symbol)[keep] == "V"
    row: dict[str, Any] = {"record": name, "n_ref": int(ref.size), "n_v": int(is_v.sum())}
    row["minutes"] = sig.size / fs / 60
    detectors = {
        "medmm": lambda: detect_rpeaks(sig, fs),
        "noiso": lambda: _without_isolated_rule(sig, fs),
        "xqrs": lambda: processing.xqrs_detect(sig, fs, verbose=False),
    }
    for key, detect in detectors.items():
        t0 = time.perf_counter()
        peaks = detect()
        seconds = time.perf_counter() - t0
        res = match_reference(peaks, ref, fs, TOL_S)
        matched = np.zeros(ref.size, dtype=bool)
        matched[res.pairs[:, 1]] = True
        row |= _row(key, res, seconds, int((is_v & ~matched).sum()))
    return row


def _without_isolated_rule(sig: np.ndarray, fs: float) -> np.ndarray:
    with mock.patch.object(rpeaks, "_ISO_SNR", math.inf):
        return detect_rpeaks(sig, fs)


def _print(rows: list[dict[str, Any]]) -> None:
    head = f"{'record':>6} {'beats':>6} {'V':>4} | {'medmm Se':>8} {'+P':>7} {'FP':>4} {'FN':>4} {'Vmiss':>5}"
    head += f" {'s':>6} | {'no iso Se':>9} {'+P':>7} {'FP':>4} {'FN':>4} {'Vmiss':>5} |"
    head += f" {'XQRS Se':>8} {'+P':>7} {'FP':>4} {'FN':>4} {'Vmiss':>5} {'s':>6}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['record']:>6} {r['n_ref']:>6} {r['n_v']:>4} | {100 * r['medmm_se']:8.2f}"
            f" {100 * r['medmm_ppv']:7.2f} {r['medmm_fp']:4d} {r['medmm_fn']:4d} {r['medmm_v_missed']:5d}"
            f" {r['medmm_s']:6.3f} | {100 * r['noiso_se']:9.2f} {100 * r['noiso_ppv']:7.2f}"
            f" {r['noiso_fp']:4d} {r['noiso_fn']:4d} {r['noiso_v_missed']:5d} |"
            f" {100 * r['xqrs_se']:8.2f} {100 * r['xqrs_ppv']:7.2f} {r['xqrs_fp']:4d} {r['xqrs_fn']:4d}"
            f" {r['xqrs_v_missed']:5d} {r['xqrs_s']:6.3f}"
        )


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Evaluate both detectors on the MIT-BIH records; print a table; return the summary."""
    import wfdb

    logging.getLogger("wfdb").setLevel(logging.WARNING)
    root = shared_data_dir()
    if root is None or not (root / "signals/mitdb_subset").is_dir():
        raise FileNotFoundError("signals/mitdb_subset not found: set MEDMM_DATA to the shared data folder")
    folder = root / "signals/mitdb_subset"
    records = QUICK_RECORDS if quick else RECORDS
    sampto = 360 * 300 if quick else None
    rows = [_evaluate(str(folder / rec), 0, rec, sampto) for rec in records]

    total: dict[str, Any] = {"record": "ALL"}
    total |= {k: sum(r[k] for r in rows) for k in ("n_ref", "n_v")}
    for name in NAMES:
        tp, fp, fn = (sum(r[f"{name}_{k}"] for r in rows) for k in ("tp", "fp", "fn"))
        total |= {
            f"{name}_tp": tp,
            f"{name}_fp": fp,
            f"{name}_fn": fn,
            f"{name}_se": tp / (tp + fn),
            f"{name}_ppv": tp / (tp + fp),
            f"{name}_s": sum(r[f"{name}_s"] for r in rows),
            f"{name}_v_missed": sum(r[f"{name}_v_missed"] for r in rows),
        }
    extra = []
    if not quick:
        for rel, lead, name in EXTRA:
            if (root / "signals" / f"{rel}.hea").exists():
                extra.append(_evaluate(str(root / "signals" / rel), lead, name, None))
    speedup = total["xqrs_s"] / total["medmm_s"]

    _print([*rows, total, *extra])
    print(f"speed: medmm {speedup:.1f}x faster than XQRS (detector time only, {len(rows)} pooled records)")
    if extra:
        print(f"not pooled in ALL: {', '.join(r['record'] for r in extra)} (wfdb sample data, second lead)")

    summary = {
        "baseline": "wfdb.processing.xqrs_detect",
        "ablation": "noiso = medmm with the isolated-beat rule off",
        "tolerance_s": TOL_S,
        "quick": quick,
        "records": rows,
        "overall": total,
        "extra_records": extra,
        "speedup_vs_xqrs": speedup,
        "wfdb_version": wfdb.__version__,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "per_record.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return summary


if __name__ == "__main__":
    import sys

    run(Path(__file__).resolve().parent / "results" / "rpeaks", "--quick" in sys.argv)
