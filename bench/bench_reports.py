"""Reports/s of ``medmm reports parse`` with 1 and 2 Dask workers vs plain ``nlp.pipe`` in one process.

Input: the IU chest X-ray dev reports (``text/iu_xray/indiana_reports_dev.csv`` from the shared data),
repeated with fresh ids to reach the size (``quick``: 600 reports, else 5,150 (5,118 with text)).

Baseline: ``nlp.pipe(texts)`` (consumed, nothing else) of the very same pipeline (lexicon
EntityRuler, AbbreviationDetector, assertion) in this process. Compared with it, each repeat:

* ``medmm parse in-process`` (``workers=0``: the same work as a worker, without Dask);
* ``medmm parse, 1 / 2 workers``: on a local Dask cluster started once per worker count *before* the
  repeats (its start and the pipeline loading in each worker are timed apart as start-up), then
  ``parse_reports(scheduler=...)`` into a fresh run directory each repeat (a re-used one would resume).
  Throughput is over the ``parse`` phase (tasks on warm workers, incl. row extraction, sending results
  back and writing the resumable parts); end-to-end seconds are reported too.

The machine may be shared: methods are interleaved within each repeat, the load average is read
before and after every repeat, the ratio vs ``nlp.pipe`` is computed *within* each repeat and the
median over repeats is reported (``rows`` hold medians; ``repeats`` everything). CPU seconds
(baseline: this process; medmm: the workers' own CPU in the parse phase) give ``cpu_efficiency`` =
baseline CPU / medmm CPU, and ``projected_ratio_idle_cores`` = workers x efficiency, the ratio to
expect with idle cores (a projection, labelled as such).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from medmm.datasets import shared_data_dir

COLS = ["indication", "comparison", "findings", "impression"]


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


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _parse(path: Path, run_dir: Path, workers: int, scheduler: str | None, n: int) -> dict[str, Any]:
    from medmm.reports.pipeline import parse_reports
    from medmm.runinfo import read_run_json

    shutil.rmtree(run_dir, ignore_errors=True)  # a run directory left from before would resume
    t0 = time.perf_counter()
    parse_reports(path, run_dir, id_column="uid", text_columns=COLS, workers=workers, scheduler=scheduler)
    total = time.perf_counter() - t0
    timings = read_run_json(run_dir)["stages"]["reports"]["timings"]
    return {
        "parse_s": timings["parse"],
        "parse_rps": n / timings["parse"],
        "end_to_end_s": total,
        "cpu_s": timings["parse_cpu_s"],
    }


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Measure and print the table; returns the JSON summary."""
    from distributed import Client, LocalCluster

    from medmm.reports.io.inputs import read_reports
    from medmm.reports.nlp import PipelineSpec, get_pipeline
    from medmm.reports.pipeline import _warm

    out_dir.mkdir(parents=True, exist_ok=True)
    n_in = 600 if quick else 5_150
    repeats = 2 if quick else 3
    path = _input(out_dir, n_in)
    texts = [r.text for r in read_reports(path, id_column="uid", text_columns=COLS).reports]
    n = len(texts)
    spec = PipelineSpec()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nlp = get_pipeline(spec)

    def pipe() -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in nlp.pipe(texts, batch_size=250):
                pass
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"parse_s": wall, "parse_rps": n / wall, "end_to_end_s": wall, "cpu_s": cpu}

    clusters: dict[int, tuple[Any, Any]] = {}
    startup: dict[int, dict[str, float]] = {}
    reps: list[dict[str, Any]] = []
    try:
        for w in (1, 2):  # start-up, timed apart from the steady state
            t0 = time.perf_counter()
            cluster = LocalCluster(n_workers=w, threads_per_worker=1, dashboard_address=":0", silence_logs=40)
            client = Client(cluster)
            t1 = time.perf_counter()
            client.run(_warm, spec)
            startup[w] = {"cluster_start_s": t1 - t0, "warm_workers_s": time.perf_counter() - t1}
            clusters[w] = (cluster, client)
        for k in range(repeats):
            rep: dict[str, Any] = {"repeat": k, "uptime_before": _uptime()}
            rep["nlp.pipe"] = pipe()
            rep["in-process"] = _parse(path, out_dir / f"run_r{k}_w0", 0, None, n)
            for w, (_, client) in clusters.items():
                rep[f"{w} worker(s)"] = _parse(
                    path, out_dir / f"run_r{k}_w{w}", w, client.scheduler.address, n
                )
            rep["uptime_after"] = _uptime()
            reps.append(rep)
            print(f"repeat {k}: {rep['uptime_before']}")
    finally:
        for cluster, client in clusters.values():
            client.close()
            cluster.close()

    methods = ["nlp.pipe", "in-process", "1 worker(s)", "2 worker(s)"]
    rows = []
    for m in methods:
        vals = [r[m] for r in reps]
        ratios = [r[m]["parse_rps"] / r["nlp.pipe"]["parse_rps"] for r in reps]
        eff = [r["nlp.pipe"]["cpu_s"] / r[m]["cpu_s"] for r in reps if r[m]["cpu_s"]]
        workers = int(m[0]) if m[0].isdigit() else 0
        row: dict[str, Any] = {"method": m, "workers": workers}
        for key in ("parse_s", "parse_rps", "end_to_end_s", "cpu_s"):
            row[key] = statistics.median(v[key] for v in vals)
        row["ratio_vs_pipe"] = statistics.median(ratios)
        row["ratio_vs_pipe_runs"] = ratios
        row["cpu_efficiency"] = statistics.median(eff) if eff else None
        row["projected_ratio_idle_cores"] = max(1, workers) * (row["cpu_efficiency"] or 0.0)
        row.update(startup.get(workers, {}))
        rows.append(row)
    table = pd.DataFrame(rows).drop(columns=["ratio_vs_pipe_runs"])
    print(f"reports: {n}; CPUs: {os.cpu_count()}; repeats: {repeats} (medians)")
    for r in reps:
        print(f"  repeat {r['repeat']}: before [{r['uptime_before']}] after [{r['uptime_after']}]")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    by = {r["method"]: r for r in rows}
    return {
        "reports": n,
        "cpus": os.cpu_count(),
        "repeats": reps,
        "startup": startup,
        "rows": rows,
        "ratio_2_workers_vs_pipe": by["2 worker(s)"]["ratio_vs_pipe"],
        "ratio_2_workers_vs_in_process_parse": statistics.median(
            r["2 worker(s)"]["parse_rps"] / r["in-process"]["parse_rps"] for r in reps
        ),
        "ratio_2_vs_1_worker": statistics.median(
            r["2 worker(s)"]["parse_rps"] / r["1 worker(s)"]["parse_rps"] for r in reps
        ),
        "projected_ratio_2_workers_idle_cores": by["2 worker(s)"]["projected_ratio_idle_cores"],
    }
