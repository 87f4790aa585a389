"""Only the 2-worker ``parse`` phase of ``bench/bench_reports.py``, repeated: A/B runs of task planning.

``python -m bench.reports_phase [--repeats N] [--workers W] [--rows R]`` starts one local cluster as
``parse --workers W`` does (``reports.preload.local_cluster``), then runs ``parse_reports`` on the bench's
input (the IU dev reports repeated with fresh ids, 10,236 reports with text) N times into a fresh run
directory, and prints one line per repeat: the ``parse`` phase's wall, the workers' idle time from Dask's
task stream (``bench_reports._timeline``: submit + last result, start stagger, hand-offs, end imbalance)
and, per worker, its tasks (reports), busy seconds, with ``uptime``.
No ``nlp.pipe`` baseline (that is ``python -m bench reports``): this measures only where the workers wait.

To compare two versions of the code, run this script alternately with ``PYTHONPATH`` set to copies of
the tree (the workers are forked from a server that imports the same ``medmm``: ``medmm`` printed first).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

from bench.bench_reports import COLS, ROWS_FULL, _input, _parse, _timeline, _uptime


def _per_worker(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per worker (in order of first start): its tasks' durations, busy s and last stop."""
    per: dict[str, list[tuple[float, float, str]]] = {}
    for task in stream:
        for ss in task.get("startstops", []):
            if ss["action"] == "compute":
                per.setdefault(str(task["worker"]), []).append((ss["start"], ss["stop"], str(task["key"])))
    out = []
    for w, v in sorted(per.items(), key=lambda kv: min(a for a, _, _ in kv[1])):
        v.sort()
        busy = sum(b - a for a, b, _ in v)
        out.append(
            {
                "worker": w,
                "tasks": len(v),
                "busy_s": round(busy, 4),
                "last_stop": max(b for _, b, _ in v),
                "durations_ms": [round(1e3 * (b - a), 1) for a, b, _ in v],
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports_phase", description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows", type=int, default=ROWS_FULL)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "reports_phase"
    )
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per repeat here")
    args = parser.parse_args(argv)

    from distributed import get_task_stream

    import medmm
    from medmm.reports.io.inputs import read_reports
    from medmm.reports.nlp import PipelineSpec
    from medmm.reports.preload import local_cluster
    from medmm.reports.tasks import warm

    args.out.mkdir(parents=True, exist_ok=True)
    print(f"medmm: {Path(medmm.__file__).parent}", flush=True)
    path = _input(args.out, args.rows)
    n = len(read_reports(path, id_column="uid", text_columns=COLS).reports)
    spec = PipelineSpec()
    walls, idles = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with local_cluster(args.workers, spec) as client:
            client.run(warm, spec)
            where = client.run(lambda: __import__("medmm").__file__)
            print(f"workers' medmm: {sorted(set(where.values()))}", flush=True)
            for k in range(args.repeats):
                before = _uptime()
                with get_task_stream(client=client) as stream:
                    got = _parse(path, args.out / "run", args.workers, client.scheduler.address, n)
                t = _timeline(stream.data, got["parse_s"])
                workers = _per_worker(stream.data)
                last = max(w["last_stop"] for w in workers)
                walls.append(got["parse_s"])
                idles.append(t["idle_ms"])
                load = before.split("load average:")[-1].strip()
                print(
                    f"repeat {k}: parse {got['parse_s']:.3f} s, workers CPU {got['workers_cpu_s']:.3f} s, "
                    f"driver {got['driver_cpu_s']:.3f} s; idle {t['idle_ms']:.0f} ms = submit + last result "
                    f"{t['submit_last_result_ms']:.0f}, stagger {t['start_stagger_ms']:.0f}, hand-offs "
                    f"{t['hand_offs_ms']:.0f}, end imbalance {t['end_imbalance_ms']:.0f}; per worker: "
                    + "; ".join(
                        f"{w['tasks']} tasks {w['durations_ms']} ms, busy {w['busy_s']:.3f} s, "
                        f"ends {1e3 * (last - w['last_stop']):.0f} ms early"
                        for w in workers
                    )
                    + f"; load {load}",
                    flush=True,
                )
                if args.json:
                    with args.json.open("a") as f:
                        f.write(
                            json.dumps({"repeat": k, "load": load, **got, "timeline": t, "workers": workers})
                        )
                        f.write("\n")
                time.sleep(0.2)
    shutil.rmtree(args.out / "run", ignore_errors=True)
    print(
        f"median of {args.repeats}: parse {statistics.median(walls):.3f} s, idle "
        f"{statistics.median(idles):.0f} ms ({n} reports, {args.workers} workers)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
