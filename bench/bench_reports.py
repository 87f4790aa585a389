"""Reports/s of ``medmm reports parse`` with 1 and 2 Dask workers vs plain ``nlp.pipe`` in one process.

Input: the IU chest X-ray dev reports (``text/iu_xray/indiana_reports_dev.csv`` from the shared data,
2,575 rows, 2,559 with text) **repeated with fresh ids** (``uid-0``, ``uid-1`` ...) to 10,300 rows
(10,236 reports with text; ``quick``: 1,200 rows), so that fixed costs are spread over enough work.

Baseline: ``nlp.pipe(texts, batch_size=256)`` (docs consumed, nothing else) of the very same pipeline
object (lexicon EntityRuler, AbbreviationDetector, assertion; built by ``get_pipeline``, as in the
workers) in this process, right after ``gc.collect(); gc.freeze()``: the local cluster this process
holds in the worker phases is then not scanned by the GC during ``nlp.pipe`` (the best plain
``nlp.pipe``; the workers freeze everything alive when they build their pipeline).

1. **Steady state** (3 repeats, quick 2; medians): three phases, ``medmm parse in-process``
   (``workers=0``, the same work without Dask, no cluster alive), then ``medmm parse, 1 worker`` and
   ``2 workers`` each on its own local cluster made as ``parse --workers N`` makes it
   (``reports.preload.local_cluster``: Dask settings ``workflows.cluster.LOCAL_QUIET_CONFIG``, glibc's
   malloc, workers forked from a server that built the pipeline), started before its repeats
   (start-up and the check that the workers hold the pipeline timed apart) and closed after them.
   In every repeat ``nlp.pipe`` runs right before the medmm method and the ratio is taken against that
   run. Timed: the ``parse`` phase of
   ``parse_reports`` (tasks incl. row extraction and writing the resumable parts, into a fresh run
   directory each repeat). CPU: ``nlp.pipe``: this process; medmm: the workers' CPU plus this
   process's (client + local scheduler) during the phase; ``cpu_efficiency`` = baseline CPU / medmm
   CPU; ``projected_ratio_idle_cores`` = min(workers, cores) x efficiency (a projection).
   Timeline (1 and 2 workers): from Dask's task stream, the time the workers did not run a task in
   the phase, split into submit + last result, start stagger, hand-offs and end imbalance
   (:func:`_timeline`), printed per repeat.
2. **End to end** (once per method, quick: skipped): wall clock of two fresh processes over the same
   CSV: ``python -c`` that imports medmm, reads the reports (``read_reports``: the same cleaned texts),
   builds the pipeline and runs ``nlp.pipe``; vs the ``medmm reports parse --workers 2`` command
   (interpreter start, imports, cluster start, pipeline loading in the workers, read, parse, merging
   the parts and writing the four tables, cluster shut-down).

The machine may be shared: ``uptime`` is recorded before and after every repeat, and each repeat
prints the *other load* during its ``nlp.pipe`` and its medmm run: the share of the cores that processes
other than the benchmark's used meanwhile (``/proc/stat``'s busy time minus the CPU of this process
and the workers; column ``others_share``, medians). Ratios of repeats with a large share (say > 10%)
were slowed by other load; on an idle machine it stays at a few %.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

import pandas as pd

from medmm.datasets import shared_data_dir

COLS = ["indication", "comparison", "findings", "impression"]
ROWS_FULL, ROWS_QUICK = 10_300, 1_200
BASELINE_SCRIPT = """
import sys, time, warnings
warnings.simplefilter("ignore")
from medmm.reports.io.inputs import read_reports
from medmm.reports.nlp import PipelineSpec, get_pipeline
reports = read_reports(sys.argv[1], id_column="uid", text_columns=sys.argv[2].split(",")).reports
texts = [r.text for r in reports]
nlp = get_pipeline(PipelineSpec())
n = 0
for doc in nlp.pipe(texts, batch_size=256):
    n += 1
print(n)
"""


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


def _machine_cpu_s() -> float | None:
    """CPU seconds every process of this machine has used so far (``/proc/stat``: user, nice, system,
    irq, softirq), or ``None`` where there is no ``/proc/stat``."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


def _others(machine0: float | None, ours_cpu_s: float, wall_s: float) -> float | None:
    """Share of the cores (0-1) that other processes used during a measurement of ``wall_s`` seconds
    in which this benchmark's processes used ``ours_cpu_s`` CPU seconds (the machine's CPU seconds
    since ``machine0`` minus ours): a run with a large share was slowed by other load."""
    machine1 = _machine_cpu_s()
    if machine0 is None or machine1 is None or wall_s <= 0:
        return None
    return max(0.0, machine1 - machine0 - ours_cpu_s) / (wall_s * (os.cpu_count() or 1))


def _parse(path: Path, run_dir: Path, workers: int, scheduler: str | None, n: int) -> dict[str, Any]:
    from medmm.reports.pipeline import parse_reports
    from medmm.runinfo import read_run_json

    shutil.rmtree(run_dir, ignore_errors=True)  # a run directory left from before would resume
    t0, cpu0 = time.perf_counter(), time.process_time()
    key = run_dir.parent / "bench-site.key"  # the bench's own key: never the user's site key
    if not key.exists():
        key.write_text(os.urandom(32).hex() + "\n")
    machine0 = _machine_cpu_s()
    parse_reports(
        path,
        run_dir,
        id_column="uid",
        text_columns=COLS,
        workers=None if scheduler else workers,  # an existing cluster brings its own workers
        scheduler=scheduler,
        key_file=key,
    )
    total = time.perf_counter() - t0
    timings = read_run_json(run_dir)["stages"]["reports"]["timings"]
    shutil.rmtree(run_dir, ignore_errors=True)
    # other load during the whole call (the phase is most of it); ours: this process and the workers
    ours = (time.process_time() - cpu0) + (timings["parse_cpu_s"] if scheduler else 0.0)
    return {
        "others_share": _others(machine0, ours, time.perf_counter() - t0),
        "parse_s": timings["parse"],
        "parse_rps": n / timings["parse"],
        "end_to_end_s": total,
        "cpu_s": timings["parse_cpu_s"] + timings.get("parse_driver_cpu_s", 0.0),
        "workers_cpu_s": timings["parse_cpu_s"],
        "driver_cpu_s": timings.get("parse_driver_cpu_s", 0.0),
        "write_s": timings["write"],
    }


def _timeline(stream: list[dict[str, Any]], parse_s: float) -> dict[str, Any]:
    """Where the workers were not running a task during the ``parse`` phase, from Dask's task stream
    (``compute`` start/stop of every task, per worker; the workers' clocks are this machine's).

    Per worker, the phase (``parse_s``) is its busy time plus: *submit + last result* (phase start to
    the first task's start anywhere, and the last task's end anywhere to the phase end: the graph's way
    to the workers and the last result's way back), *start stagger* (its first start after the first
    start anywhere), *hand-offs* (between its tasks) and *end imbalance* (its last stop before the
    last stop anywhere). Sums over the workers, in ms, and idle as % of workers x ``parse_s``. The
    total is exact (phase wall minus the tasks' own durations); the split carries a few ms of jitter
    (each worker shifts its stamps by its estimate of the scheduler's clock offset, refreshed at every
    heartbeat, so two tasks in a row can even seem to overlap: negative hand-offs).

    >>> task = {"worker": "a", "startstops": [{"action": "compute", "start": 0.0, "stop": 1.0}]}
    >>> t = _timeline([task], 1.01)
    >>> t["idle_ms"], t["submit_last_result_ms"], t["tasks_per_worker"]
    (10.0, 10.0, [1])
    """
    per: dict[str, list[tuple[float, float]]] = {}
    for task in stream:
        for ss in task.get("startstops", []):
            if ss["action"] == "compute":
                per.setdefault(str(task["worker"]), []).append((ss["start"], ss["stop"]))
    if not per:
        return {}
    first = min(a for v in per.values() for a, _ in v)
    last = max(b for v in per.values() for _, b in v)
    outside = max(0.0, parse_s - (last - first))
    lead = tail = gaps = busy = 0.0
    for v in per.values():
        v.sort()
        mine = sum(b - a for a, b in v)
        busy += mine
        lead += v[0][0] - first
        tail += last - max(b for _, b in v)
        gaps += (max(b for _, b in v) - v[0][0]) - mine
    n = len(per)
    idle = n * parse_s - busy
    return {
        "tasks_per_worker": sorted(len(v) for v in per.values()),
        "idle_ms": round(1e3 * idle, 1),
        "idle_pct": round(100 * idle / (n * parse_s), 2) if parse_s else None,
        "submit_last_result_ms": round(1e3 * n * outside, 1),
        "start_stagger_ms": round(1e3 * lead, 1),
        "hand_offs_ms": round(1e3 * gaps, 1),
        "end_imbalance_ms": round(1e3 * tail, 1),
    }


def _end_to_end(path: Path, out_dir: Path) -> dict[str, Any]:
    """Wall seconds of two fresh processes: baseline script vs ``medmm reports parse --workers 2``."""
    medmm = shutil.which("medmm") or str(Path(sys.executable).parent / "medmm")
    run_dir = out_dir / "run_e2e"
    shutil.rmtree(run_dir, ignore_errors=True)
    options = [
        "--out",
        str(run_dir),
        "--workers",
        "2",
        "--id-column",
        "uid",
        "--text-columns",
        ",".join(COLS),
    ]
    cmds = {
        "nlp.pipe script": [sys.executable, "-c", BASELINE_SCRIPT, str(path), ",".join(COLS)],
        "medmm reports parse --workers 2": [medmm, "reports", "parse", str(path), *options],
    }
    out: dict[str, Any] = {"uptime_before": _uptime()}
    for name, cmd in cmds.items():
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        out[name] = time.perf_counter() - t0
    out["uptime_after"] = _uptime()
    out["ratio"] = out["nlp.pipe script"] / out["medmm reports parse --workers 2"]
    shutil.rmtree(run_dir, ignore_errors=True)
    return out


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Measure and print the tables; returns the JSON summary."""
    from distributed import get_task_stream

    from medmm.reports.io.inputs import read_reports
    from medmm.reports.nlp import PipelineSpec, get_pipeline
    from medmm.reports.preload import local_cluster
    from medmm.reports.tasks import warm

    out_dir.mkdir(parents=True, exist_ok=True)
    repeats = 2 if quick else 3
    path = _input(out_dir, ROWS_QUICK if quick else ROWS_FULL)
    texts = [r.text for r in read_reports(path, id_column="uid", text_columns=COLS).reports]
    n = len(texts)
    spec = PipelineSpec()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nlp = get_pipeline(spec)

    def pipe() -> dict[str, Any]:
        # the best plain nlp.pipe: everything alive in this process (a local cluster's scheduler,
        # nannies and client included) leaves the GC's generations first, as in the workers, where
        # the pipeline is built (and gc.freeze()d) once the worker runs
        gc.collect()
        gc.freeze()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            machine0 = _machine_cpu_s()
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in nlp.pipe(texts, batch_size=256):
                pass
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        others = _others(machine0, cpu, wall)
        return {
            "parse_s": wall,
            "parse_rps": n / wall,
            "end_to_end_s": wall,
            "cpu_s": cpu,
            "others_share": others,
        }

    # phases: no cluster (in-process parse), then one local cluster per worker count, started before
    # its repeats (start-up timed apart) and closed after them, so an idle cluster never adds to the
    # CPU of this process; in every repeat nlp.pipe is measured right before the medmm method
    startup: dict[int, dict[str, float]] = {}
    reps: list[dict[str, Any]] = [{"repeat": k} for k in range(repeats)]
    for w in (0, 1, 2):
        method = "in-process" if w == 0 else f"{w} worker(s)"
        with ExitStack() as stack:
            address = None
            if w:
                # the local cluster `parse --workers w` starts (same function and Dask settings),
                # started once for the phase; parse_reports gets its address
                t0 = time.perf_counter()
                client = stack.enter_context(local_cluster(w, spec))
                t1 = time.perf_counter()
                client.run(warm, spec)
                startup[w] = {"cluster_start_s": t1 - t0, "warm_workers_s": time.perf_counter() - t1}
                address = client.scheduler.address
            for k, rep in enumerate(reps):
                before = _uptime()
                rep[f"nlp.pipe ({method})"] = pipe()
                with get_task_stream(client=client) if w else nullcontext() as stream:
                    rep[method] = _parse(path, out_dir / f"run_r{k}_w{w}", w, address, n)
                if stream is not None:  # where the workers were not running a task in the phase
                    rep[method]["timeline"] = _timeline(stream.data, rep[method]["parse_s"])
                rep[f"uptime {method}"] = [before, _uptime()]
                shares = [rep[f"nlp.pipe ({method})"]["others_share"], rep[method]["others_share"]]
                other = "/".join("?" if v is None else f"{100 * v:.0f}%" for v in shares)
                print(f"{method}, repeat {k}: {before}; other load (nlp.pipe/{method}): {other}", flush=True)
    e2e = None if quick else _end_to_end(path, out_dir)

    cores = os.cpu_count() or 1
    methods = ["nlp.pipe", "in-process", "1 worker(s)", "2 worker(s)"]
    rows = []
    for m in methods:
        # nlp.pipe: all its runs; a medmm method: ratios against the nlp.pipe run just before it
        base = [r[f"nlp.pipe ({x})"] for r in reps for x in methods[1:]] if m == "nlp.pipe" else None
        vals = base if base is not None else [r[m] for r in reps]
        pairs = [(r[f"nlp.pipe ({m})"], r[m]) for r in reps] if base is None else [(v, v) for v in vals]
        ratios = [v["parse_rps"] / b["parse_rps"] for b, v in pairs]
        eff = [b["cpu_s"] / v["cpu_s"] for b, v in pairs if v["cpu_s"]]
        workers = int(m[0]) if m[0].isdigit() else 0
        row: dict[str, Any] = {"method": m, "workers": workers}
        for key in (
            "parse_s",
            "parse_rps",
            "cpu_s",
            "workers_cpu_s",
            "driver_cpu_s",
            "write_s",
            "others_share",
        ):
            got = [v[key] for v in vals if v.get(key) is not None]
            row[key] = statistics.median(got) if got else None
        row["ratio_vs_pipe"] = statistics.median(ratios)
        row["ratio_vs_pipe_runs"] = ratios
        row["cpu_efficiency"] = statistics.median(eff) if eff else None
        row["projected_ratio_idle_cores"] = min(max(1, workers), cores) * (row["cpu_efficiency"] or 0.0)
        row.update(startup.get(workers, {}))
        rows.append(row)
    table = pd.DataFrame(rows).drop(columns=["ratio_vs_pipe_runs"])
    print(f"reports: {n}; CPUs: {cores}; repeats: {repeats} (medians)")
    for r in reps:
        for m in methods[1:]:
            print(
                f"  {m}, repeat {r['repeat']}: before [{r[f'uptime {m}'][0]}] after [{r[f'uptime {m}'][1]}]"
            )
    with pd.option_context("display.width", 250):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("workers not running a task during the parse phase (Dask task stream; ms summed over workers):")
    for r in reps:
        for m in methods[2:]:
            t = r[m].get("timeline") or {}
            if t:
                print(
                    f"  {m}, repeat {r['repeat']}: idle {t['idle_ms']:.0f} ms ({t['idle_pct']:.1f}% of "
                    f"workers x parse) = submit + last result {t['submit_last_result_ms']:.0f}, start "
                    f"stagger {t['start_stagger_ms']:.0f}, hand-offs {t['hand_offs_ms']:.0f}, end "
                    f"imbalance {t['end_imbalance_ms']:.0f}; tasks per worker {t['tasks_per_worker']}"
                )
    if e2e is not None:
        print(f"end to end (wall s, fresh processes; before [{e2e['uptime_before']}]):")
        for name in ("nlp.pipe script", "medmm reports parse --workers 2"):
            print(f"  {name}: {e2e[name]:.2f} s ({n / e2e[name]:.0f} reports/s)")
        print(f"  ratio: {e2e['ratio']:.2f}")
    by = {r["method"]: r for r in rows}
    return {
        "reports": n,
        "cpus": cores,
        "repeats": reps,
        "startup": startup,
        "rows": rows,
        "end_to_end": e2e,
        "ratio_2_workers_vs_pipe": by["2 worker(s)"]["ratio_vs_pipe"],
        "ratio_2_workers_vs_in_process_parse": by["2 worker(s)"]["parse_rps"] / by["in-process"]["parse_rps"],
        "ratio_2_vs_1_worker": by["2 worker(s)"]["parse_rps"] / by["1 worker(s)"]["parse_rps"],
        "projected_ratio_2_workers_idle_cores": by["2 worker(s)"]["projected_ratio_idle_cores"],
    }
