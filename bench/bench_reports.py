"""Reports/s of ``medmm reports parse`` with 1 and 2 Dask workers vs plain ``nlp.pipe`` in one process.

Input: the IU chest X-ray dev reports (``text/iu_xray/indiana_reports_dev.csv`` from the shared data),
repeated with fresh ids to reach the size (``quick``: 600 reports, else 10,300). The baseline is
``nlp.pipe(texts)`` (consumed, nothing else) of the very same pipeline (lexicon EntityRuler,
AbbreviationDetector, assertion) in this process. medmm's throughput is measured over its ``parse``
phase (tasks on warm workers, incl. extraction of rows and sending them back); cluster start, pipeline
loading on workers,
reading and writing tables are reported separately, and end-to-end reports/s is given too. The
baseline runs before and after the Dask runs and the faster run counts (the machine may be shared).
CPU seconds are measured too (this process for the baseline, the workers' own CPU time in the parse
phase for medmm): ``cpu_efficiency`` = baseline CPU / medmm CPU for the same reports, and
``projected_ratio_idle_cores`` = workers x efficiency, the speedup to expect with that many idle cores
(labelled as a projection; the measured wall-clock ratio is ``ratio_vs_pipe``).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from medmm.datasets import shared_data_dir


def _input(out_dir: Path, n: int) -> Path:
    root = shared_data_dir()
    if root is None:
        raise RuntimeError("shared data not found (set MEDMM_DATA): the benchmark uses the IU reports")
    src = pd.read_csv(root / "text" / "iu_xray" / "indiana_reports_dev.csv", dtype=str, keep_default_na=False)
    reps = -(-n // len(src))
    frame = pd.concat([src.assign(uid=src["uid"] + f"-{k}") for k in range(reps)], ignore_index=True).head(n)
    path = out_dir / f"iu_x{n}.csv"
    frame.to_csv(path, index=False)
    return path


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Measure and print the table; returns the JSON summary."""
    from medmm.reports.io.inputs import read_reports
    from medmm.reports.nlp import PipelineSpec, get_pipeline
    from medmm.reports.pipeline import parse_reports
    from medmm.runinfo import read_run_json

    out_dir.mkdir(parents=True, exist_ok=True)
    n = 600 if quick else 10_300
    path = _input(out_dir, n)
    cols = ["indication", "comparison", "findings", "impression"]
    texts = [r.text for r in read_reports(path, id_column="uid", text_columns=cols).reports]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nlp = get_pipeline(PipelineSpec())

    def pipe_seconds() -> tuple[float, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in nlp.pipe(texts, batch_size=200):
                pass
            return time.perf_counter() - t0, time.process_time() - c0

    base_runs = [pipe_seconds()]
    rows: list[dict[str, Any]] = []
    for workers in (0, 1, 2):  # 0 = the same parse in this process, no Dask (same work as the workers)
        run_dir = out_dir / f"run_w{workers}"
        t0 = time.perf_counter()
        parse_reports(path, run_dir, id_column="uid", text_columns=cols, workers=workers, batch_size=200)
        total = time.perf_counter() - t0
        timings = read_run_json(run_dir)["stages"]["reports"]["timings"]
        rows.append(
            {
                "method": f"medmm reports parse, {workers} worker(s)"
                if workers
                else "medmm parse in-process",
                "workers": workers,
                "parse_s": timings["parse"],
                "parse_rps": len(texts) / timings["parse"],
                "end_to_end_s": total,
                "end_to_end_rps": len(texts) / total,
                "cpu_s": timings["parse_cpu_s"],
                "cluster_start_s": timings.get("cluster_start"),
                "warm_workers_s": timings.get("warm_workers"),
            }
        )
    base_runs.append(pipe_seconds())  # again after the Dask runs: the machine may be shared, keep the faster
    base_s = min(wall for wall, _ in base_runs)
    base_cpu = min(cpu for _, cpu in base_runs)
    base_rps = len(texts) / base_s
    rows.insert(
        0,
        {
            "method": "nlp.pipe (1 process, baseline)",
            "workers": 0,
            "parse_s": base_s,
            "parse_rps": base_rps,
            "end_to_end_s": base_s,
            "end_to_end_rps": base_rps,
            "cpu_s": base_cpu,
        },
    )
    for row in rows:
        row["ratio_vs_pipe"] = row["parse_rps"] / base_rps
        # CPU efficiency vs the baseline (1.0 = no overhead); with `workers` idle cores the expected
        # speedup is about workers x efficiency, whatever the load on a shared machine
        row["cpu_efficiency"] = base_cpu / row["cpu_s"] if row.get("cpu_s") else None
        row["projected_ratio_idle_cores"] = max(1, row["workers"]) * (row["cpu_efficiency"] or 0.0)
    table = pd.DataFrame(rows)
    print(f"reports: {len(texts)}; CPUs: {os.cpu_count()}; load avg (1 min): {os.getloadavg()[0]:.1f}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return {
        "reports": len(texts),
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "baseline_runs_s": base_runs,
        "rows": rows,
        "ratio_2_workers_vs_pipe": rows[3]["ratio_vs_pipe"],
        "ratio_2_workers_vs_in_process_parse": rows[3]["parse_rps"] / rows[1]["parse_rps"],
        "ratio_2_vs_1_worker": rows[3]["parse_rps"] / rows[2]["parse_rps"],
        "projected_ratio_2_workers_idle_cores": rows[3]["projected_ratio_idle_cores"],
    }
