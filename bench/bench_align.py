"""``medmm align`` cost per study on synthetic run directories of 1k, 10k and 100k studies.

Each run directory holds the minimal stage tables ``align`` reads, with the shapes a hospital batch
has: two studies per patient on the same day (6 h apart), each with one volume (``volumes.parquet``,
8 tiny NIfTI files shared by the rows; loading and resizing them, ~2 ms of CPU per volume, is most of
the time), one report (``manifest_reports`` + ``report_labels``; every 10th without a study id, so it
cannot tell which of the patient's two studies it belongs to and forms a record of its own) and one
ECG record starting 10 minutes after the study (3 tiled 4 s windows, 4 beats each; ``windows`` /
``signals`` / ``beats.parquet``, a 64-row shared window array). ``align_run`` runs with
``--label-finding 'pleural effusion' --pvc-label pvc``.

The number is CPU time (user + system of this process, ``time.process_time``: robust to other load on
the machine) per study, for the whole ``align_run`` and for its steps (``items``, ``join``,
``inputs``), after an uncounted warm-up run of 50 studies (first imports of MONAI and nibabel). The
baseline is the smallest size (1k studies): ``ratio`` = per-study cost at N / per-study cost at 1k; a
linear implementation stays near 1 (a quadratic one grows with N / 1k).

``python -m bench align`` (about 5 minutes of CPU, most of it the 100k run; ``--quick``: 1k and 10k,
under a minute)
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
WINDOWS_PER_STUDY = 3
BEATS_PER_WINDOW = 4
FS = 180.0
WIN_S = 4.0


def make_run(run_dir: Path, n_studies: int, seed: int = 0) -> Path:
    """Write a synthetic run directory with ``n_studies`` studies (see the module docstring).

    >>> import tempfile, pathlib
    >>> run = make_run(pathlib.Path(tempfile.mkdtemp()) / "r", 10)
    >>> sorted(p.name for p in run.glob("*.parquet"))[:3]
    ['beats.parquet', 'manifest_reports.parquet', 'report_labels.parquet']
    """
    import nibabel as nib

    rng = np.random.default_rng(seed)
    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "volumes").mkdir(parents=True)
    (run_dir / "windows").mkdir()
    for k in range(8):
        data = rng.normal(size=(16, 16, 4)).astype(np.float32) + 2
        nib.save(nib.Nifti1Image(data, np.eye(4)), str(run_dir / "volumes" / f"v{k}.nii.gz"))
    n_rows = 64
    win_len = int(FS * WIN_S)
    np.save(run_dir / "windows" / "ecg.npy", rng.normal(size=(n_rows, win_len)).astype(np.float32))

    i = np.arange(n_studies)
    patient = np.char.add("pat-", (i // 2).astype(str))
    study = np.char.add("stu-", i.astype(str))
    base = datetime(2015, 1, 1)
    t0 = [base + timedelta(days=int(k // 2) % 3000, hours=8 + 6 * int(k % 2)) for k in i]
    iso = [t.isoformat() for t in t0]
    epoch = np.array([(t - datetime(1970, 1, 1)).total_seconds() for t in t0])
    img = np.ones(n_studies, bool)
    pd.DataFrame(
        {
            "volume_id": np.char.add("vol-", i[img].astype(str)),
            "path": [f"volumes/v{k % 8}.nii.gz" for k in i[img]],
            "patient_id": patient[img],
            "study_id": study[img],
            "study_time": np.asarray(iso)[img],
        }
    ).to_parquet(run_dir / "volumes.parquet")
    rep_ids = np.char.add("r", i.astype(str))
    pd.DataFrame(
        {
            "path": [f"reports.csv#{k + 1}" for k in i],
            "status": "ingested",
            "report_id": rep_ids,
            "patient_id": patient,
            "study_id": [None if k % 10 == 9 else sid for k, sid in zip(i, study, strict=True)],
        }
    ).to_parquet(run_dir / "manifest_reports.parquet")
    status = np.where(rng.random(n_studies) < 0.3, "present", "absent")
    pd.DataFrame(
        {
            "report_id": np.repeat(rep_ids, 2),
            "finding": np.tile(["pleural effusion", "normal"], n_studies),
            "status": np.column_stack([status, np.where(status == "present", "absent", "present")]).ravel(),
        }
    ).to_parquet(run_dir / "report_labels.parquet")
    records = np.char.add("rec", i.astype(str))
    w = WINDOWS_PER_STUDY
    rec_w = np.repeat(records, w)
    win_k = np.tile(np.arange(w), n_studies)
    start_s = win_k * WIN_S
    pd.DataFrame(
        {
            "record": rec_w,
            "patient_id": np.repeat(patient, w),
            "channel": "MLII",
            "window": win_k,
            "path": "windows/ecg.npy",
            "row": np.arange(n_studies * w) % n_rows,
            "fs": FS,
            "start_sample": (start_s * FS).astype(int),
            "stop_sample": ((start_s + WIN_S) * FS).astype(int),
            "start_s": start_s,
            "start_abs_s": np.repeat(epoch + 600, w) + start_s,
            "anchor": "",
            "quality": 0.9,
        }
    ).to_parquet(run_dir / "windows.parquet")
    pd.DataFrame({"record": records, "channel": "MLII", "kind": "ecg"}).to_parquet(
        run_dir / "signals.parquet"
    )
    nb = w * BEATS_PER_WINDOW
    beat_t = np.tile((np.arange(nb) + 0.5) * WIN_S / BEATS_PER_WINDOW, n_studies)
    sym = np.where(rng.random(n_studies * nb) < 0.02, "V", "N")
    pd.DataFrame(
        {
            "record": np.repeat(records, nb),
            "channel": "MLII",
            "time_s": beat_t,
            "rr_prev_s": WIN_S / BEATS_PER_WINDOW,
            "ref_symbol": sym,
        }
    ).to_parquet(run_dir / "beats.parquet")
    return run_dir


def measure(run_dir: Path) -> dict[str, Any]:
    """CPU seconds of one ``align_run`` over ``run_dir`` (total and per step)."""
    from medmm.align import pipeline
    from medmm.runinfo import Timer

    timers: list[Timer] = []

    def make_timer() -> Timer:  # align_run's timer, counting CPU seconds per step
        timers.append(Timer(clock=time.process_time))
        return timers[-1]

    with mock.patch.object(pipeline, "Timer", make_timer):
        t0 = time.process_time()
        counts = pipeline.align_run(run_dir, 86400.0, ["pleural effusion"], "pvc", 0.5, 16, 2)
        total = time.process_time() - t0
    return {"cpu_s": total, "steps_cpu_s": dict(timers[0].timings), "counts": counts}


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Measure every size; print a table; return the summary (see the module docstring)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    warm = make_run(out_dir / "run_warmup", 50)  # imports (MONAI, nibabel) and caches, not counted
    measure(warm)
    shutil.rmtree(warm)
    rows = []
    for n in QUICK_SIZES if quick else SIZES:
        run_dir = make_run(out_dir / f"run_{n}", n)
        res = measure(run_dir)
        shutil.rmtree(run_dir)
        rows.append({"studies": n, **res, "us_per_study": 1e6 * res["cpu_s"] / n})
    base = rows[0]
    for r in rows:
        r["ratio_vs_1k"] = r["us_per_study"] / base["us_per_study"]
        for step, sec in r["steps_cpu_s"].items():
            r[f"{step}_ratio"] = (sec / r["studies"]) / (base["steps_cpu_s"][step] / base["studies"])
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}; CPU time of align_run; baseline = {base['studies']} studies")
    print(f"{'studies':>8} {'cpu s':>8} {'us/study':>9} {'ratio':>6}  per step (us/study, ratio)")
    for r in rows:
        steps = "  ".join(
            f"{s} {1e6 * v / r['studies']:.0f} ({r[f'{s}_ratio']:.2f}x)" for s, v in r["steps_cpu_s"].items()
        )
        head = f"{r['studies']:>8} {r['cpu_s']:>8.1f} {r['us_per_study']:>9.0f} {r['ratio_vs_1k']:>6.2f}"
        print(f"{head}  {steps}")
    return {
        "baseline": f"per-study CPU time at {base['studies']} studies",
        "load_average": os.getloadavg()[0],
        "rows": rows,
    }
