"""ECG anomaly model on PVC-rich records: a semi-synthetic stress test (``python -m bench ecg_stress``).

Question: does the label-free beat model (which scores each beat relative to its own record) still find
PVCs when a record has 10 / 25 / 33 / 40 / 50 % ventricular beats (40 %: bigeminy broken by occasional
normal pairs), as the PVC-rich MIT-BIH records outside
``mitdb_subset`` do (208, 233, 200, 119, 106, 203)? The records are **constructed** from the real beats of
one source record at a time (:mod:`bench.ecg_stress`: 105, 108, 114, 116; each PVC used at most 3
times) and written as WFDB, then go through the real pipeline:

1. ``medmm signals ingest`` of the 9 real records and of the stress records (R peaks by the signals
   detector; the written ``.atr`` is carried for evaluation only);
2. ``medmm anomaly train`` on the 9 real records (labels ignored; 5 networks), base seeds 0 / 5 / 10;
3. ``medmm anomaly score`` of the stress records with each model;
4. detected beats matched to the written reference within 150 ms (``medmm.anomaly.evaluate``): Se,
   +P at the model's own ``flag`` and AUROC, per burden (pooled over the source records) and per
   record, beside the RR-ratio baseline (``rr_next / rr_prev`` as a per-record robust z > 4, as in
   ``medmm anomaly evaluate``).

The training records include the source records of the stress beats (the brief's protocol: the model
a user would train on this archive); the networks never see a label. ``--quick``: sources 108 and 116,
burdens 10 % and 50 %, base seed 0, 2 networks, 2 epochs (a smoke run, not a measurement).
``MEDMM_BENCH_RECOVER_SMALL_BEATS=1``: both ingests with ``--recover-small-beats`` (the signals stage's
opt-in detector rule, docs/signals.md "Session 9: tall ectopic beats"), as a user who turns it on for
the whole archive would run them; results go to ``ecg_stress_recover/`` beside the default's.
CPU seconds are measured per step (``resource.getrusage`` of the child processes).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEEDS = (0, 5, 10)


def _cli(args: list[str], env: dict[str, str]) -> float:
    """Run ``python -m medmm ARGS``; return its CPU seconds (user + sys)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-m", "medmm", *args], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"medmm {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _metrics(anomalies: pd.DataFrame, stress_dir: Path, fs: float = 360.0) -> pd.DataFrame:
    """Per stress record: labels of the detected beats, model score/flag and the RR-ratio baseline."""
    from medmm.anomaly.evaluate import label_beats, read_reference
    from medmm.anomaly.features import rr_context
    from medmm.anomaly.threshold import BASELINE_Z, robust_z

    parts = []
    for record, rows in anomalies.groupby("record", sort=True):
        rows = rows.sort_values("sample", kind="stable")
        samples = rows["sample"].to_numpy(np.int64)
        y, counts = label_beats(samples, *read_reference(stress_dir, str(record)), fs=fs)
        base = robust_z(rr_context(samples, fs)[:, 2].astype(np.float64), 0.01)
        parts.append(
            pd.DataFrame(
                {
                    "record": str(record),
                    "y": y,
                    "score": rows["score"].to_numpy(np.float64),
                    "flag": rows["flag"].to_numpy(bool),
                    "base_score": base,
                    "base_flag": base > BASELINE_Z,
                    "pos_missed": counts["pos_missed"],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _rows(beats: pd.DataFrame, by: str) -> list[dict[str, Any]]:
    from medmm.anomaly.evaluate import binary_metrics

    out = []
    for key, g in beats.groupby(by, sort=True):
        missed = int(g.groupby("record")["pos_missed"].first().sum())
        y = g["y"].to_numpy(bool)
        for method, sc, fl in (("model", "score", "flag"), ("rr_ratio", "base_score", "base_flag")):
            m = binary_metrics(y, g[sc].to_numpy(np.float64), g[fl].to_numpy(bool), missed)
            out.append(
                {by: key, "method": method} | {k: m[k] for k in ("se", "ppv", "auroc", "tp", "fp", "fn")}
            )
    return out


def recover_small_beats() -> bool:
    """Whether this run ingests with the detector's opt-in small-beat rule
    (environment ``MEDMM_BENCH_RECOVER_SMALL_BEATS`` set to anything but ``0``)."""
    return os.environ.get("MEDMM_BENCH_RECOVER_SMALL_BEATS", "") not in ("", "0")


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Build the stress set, run ingest -> train (real 9) -> score (stress), print per-burden tables."""
    from bench.ecg_stress import BURDENS, SOURCE_RECORDS, write_stress_set
    from medmm.datasets import shared_data_dir

    root = shared_data_dir()
    if root is None:
        raise RuntimeError("shared data not found: set MEDMM_DATA")
    real = root / "signals" / "mitdb_subset"
    out_dir = Path(out_dir)
    if recover_small_beats():
        out_dir = out_dir.with_name(out_dir.name + "_recover")
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in [out_dir / n for n in ("stress", "stress_provenance", "sig_real", "sig_stress")] + [
        *out_dir.glob("model_s*"),
        *out_dir.glob("score_s*"),
    ]:  # what an earlier run wrote (a quick run after a full one must not score the full set's records)
        shutil.rmtree(old, ignore_errors=True)
    key = out_dir / "site.key"  # a throwaway site key: the bench never touches the user's
    if not key.is_file():
        key.write_text(os.urandom(32).hex() + "\n")
        key.chmod(0o600)
    env = dict(os.environ, MEDMM_KEY_FILE=str(key))
    detector = ["--recover-small-beats"] if recover_small_beats() else []
    sources = ("108", "116") if quick else SOURCE_RECORDS
    burdens = (BURDENS[0], BURDENS[-1]) if quick else BURDENS
    seeds = SEEDS[:1] if quick else SEEDS
    extra = ["--ensemble", "2", "--epochs", "2"] if quick else []
    stress = out_dir / "stress"
    t0 = time.perf_counter()
    built = write_stress_set(real, stress, sources, burdens, seed=0)
    print(built.to_string(index=False))
    built.to_csv(out_dir / "stress_records.csv", index=False)
    cpu: dict[str, float] = {"build_wall_s": round(time.perf_counter() - t0, 2)}
    cpu["ingest_real"] = _cli(
        ["signals", "ingest", str(real), "--out", str(out_dir / "sig_real"), "-w", "0", *detector], env
    )
    cpu["ingest_stress"] = _cli(
        ["signals", "ingest", str(stress), "--out", str(out_dir / "sig_stress"), "-w", "0", *detector], env
    )
    per_burden, per_record = [], []
    burden_of = dict(zip(built["record"], built["target_burden"], strict=True))
    for seed in seeds:
        model = out_dir / f"model_s{seed}"
        cpu[f"train_s{seed}"] = _cli(
            [
                "anomaly",
                "train",
                str(out_dir / "sig_real"),
                "--out",
                str(model),
                "--seed",
                str(seed),
                "--device",
                "cpu",
                *extra,
            ],
            env,
        )
        scored = out_dir / f"score_s{seed}"
        cpu[f"score_s{seed}"] = _cli(
            [
                "anomaly",
                "score",
                str(out_dir / "sig_stress"),
                "--model",
                str(model),
                "--out",
                str(scored),
                "--device",
                "cpu",
            ],
            env,
        )
        beats = _metrics(pd.read_parquet(scored / "anomalies.parquet"), stress)
        beats["burden"] = beats["record"].map(burden_of)
        per_burden += [r | {"seed": seed} for r in _rows(beats, "burden")]
        per_record += [r | {"seed": seed} for r in _rows(beats, "record")]
    tb, tr = pd.DataFrame(per_burden), pd.DataFrame(per_record)
    tb.to_csv(out_dir / "per_burden.csv", index=False)
    tr.to_csv(out_dir / "per_record.csv", index=False)
    pd.set_option("display.width", 200)
    print(tb.round(4).to_string(index=False))
    print(tr[tr["method"] == "model"].round(4).to_string(index=False))
    load = os.getloadavg()
    print(f"CPU seconds per step: {cpu}; load average {load[0]:.1f}")
    model_rows = tb[tb["method"] == "model"]
    return {
        "recover_small_beats": bool(detector),
        "stress_records": built.to_dict(orient="records"),
        "per_burden": tb.round(4).to_dict(orient="records"),
        "min_se_ppv_by_burden_mean_over_seeds": {
            str(b): round(float(np.fmin(g["se"], g["ppv"]).mean()), 4)
            for b, g in model_rows.groupby("burden")
        },
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "load_average": round(load[0], 2),
    }
