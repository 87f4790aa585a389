"""Reports/s of ``medmm reports parse`` with 1 and 2 Dask workers vs plain ``nlp.pipe`` in one process.

Input: the IU chest X-ray dev reports (``text/iu_xray/indiana_reports_dev.csv`` from the shared data),
repeated with fresh ids to reach the size (``quick``: 600 reports, else 10,300). The baseline is
``list(nlp.pipe(texts))`` of the very same pipeline (lexicon EntityRuler, AbbreviationDetector,
assertion) in this process. medmm's throughput is measured over its ``parse`` phase (tasks on warm
workers, incl. extraction of rows and sending them back); cluster start, pipeline loading on workers,
reading and writing tables are reported separately, and end-to-end reports/s is given too.
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
        t0 = time.perf_counter()
        docs = list(nlp.pipe(texts, batch_size=200))
        base_s = time.perf_counter() - t0
    base_rps = len(docs) / base_s
    rows: list[dict[str, Any]] = [
        {
            "method": "nlp.pipe (1 process, baseline)",
            "workers": 0,
            "parse_s": base_s,
            "parse_rps": base_rps,
            "end_to_end_s": base_s,
            "end_to_end_rps": base_rps,
            "ratio_vs_pipe": 1.0,
        }
    ]
    for workers in (1, 2):
        run_dir = out_dir / f"run_w{workers}"
        t0 = time.perf_counter()
        parse_reports(path, run_dir, id_column="uid", text_columns=cols, workers=workers, batch_size=200)
        total = time.perf_counter() - t0
        timings = read_run_json(run_dir)["stages"]["reports"]["timings"]
        rps = len(texts) / timings["parse"]
        rows.append(
            {
                "method": f"medmm reports parse, {workers} worker(s)",
                "workers": workers,
                "parse_s": timings["parse"],
                "parse_rps": rps,
                "end_to_end_s": total,
                "end_to_end_rps": len(texts) / total,
                "ratio_vs_pipe": rps / base_rps,
                "cluster_start_s": timings.get("cluster_start"),
                "warm_workers_s": timings.get("warm_workers"),
            }
        )
    table = pd.DataFrame(rows)
    print(f"reports: {len(texts)}; CPUs: {os.cpu_count()}; load avg: {os.getloadavg()[0]:.1f}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return {
        "reports": len(texts),
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "rows": rows,
        "ratio_2_workers_vs_pipe": rows[2]["ratio_vs_pipe"],
        "ratio_2_vs_1_worker": rows[2]["parse_rps"] / rows[1]["parse_rps"],
    }
