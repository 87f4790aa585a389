"""Throughput and memory of the whole signals stage (``medmm signals ingest``) on MIT-BIH records.

Inputs are the shared ``mitdb_subset`` records (30 min, 360 Hz), replicated by symlink into temporary
folders (never copied into the project). Measured in one run, same machine:

* ``wfdb_read``: ``wfdb.rdrecord`` + ``rdann`` of every record, serially - the floor (reading only);
* ``serial``: the whole stage in this process, one record after another (``workers=0``);
* ``dask_1`` / ``dask_2``: the whole stage on a local Dask cluster with 1 and 2 worker processes
  (cluster start-up included, as a user sees it); the *marginal* 2-worker rate (extra samples of
  the 3N-record run over the N-record run, divided by the extra time) leaves start-up out;
* peak memory (RSS of this process plus all its children, sampled every 50 ms) of the 2-worker
  stage on N and 3N records: it must not grow with the record count (one record per task, arrays
  written by the tasks, only small rows returned).

* ``long_record``: one record task (``process_record``) on a long synthetic 2-lead ECG (3 h at 360 Hz,
  1 h with ``--quick``; ``simulate_ecg`` written with ``wfdb.wrsamp``), read whole vs in 600 s and
  120 s chunks, each in a fresh subprocess after a warm-up: ``tracemalloc`` peak and wall time; the
  chunked peaks must stay far below the whole-record one.

Samples are channel samples at the native rate. ``python -m bench signals [--quick]``.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from medmm.datasets import shared_data_dir
from medmm.pseudonym import Pseudonymizer

RECORDS = ["100", "102", "104", "105", "108", "114", "116", "121", "123"]
QUICK_RECORDS = ["100", "105", "108"]


def _replicate(src: Path, records: list[str], copies: int, dest: Path) -> Path:
    """``dest`` with ``copies`` sub-folders each symlinking the records' files."""
    for c in range(copies):
        sub = dest / f"copy{c}"
        sub.mkdir(parents=True)
        for rec in records:
            for ext in ("hea", "dat", "atr"):
                (sub / f"{rec}.{ext}").symlink_to(src / f"{rec}.{ext}")
    return dest


class _PeakRss:
    """Peak resident memory of this process tree (sum over processes), sampled in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> int:
        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:  # a process that just ended
                continue
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self._interval)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _stage(src: Path, out: Path, workers: int) -> tuple[float, int, int]:
    from medmm.signals.pipeline import run_signals

    with _PeakRss() as mem:
        t0 = time.perf_counter()
        counts = run_signals(src, out, workers=workers, pseudonymizer=Pseudonymizer(b"b" * 32))
        seconds = time.perf_counter() - t0
    return seconds, int(counts["samples"]), mem.peak


def write_long_record(folder: Path, hours: float, fs: float = 360.0) -> str:
    """A 2-lead synthetic ECG record ``long`` of ``hours`` in ``folder``; returns its name."""
    import numpy as np
    import wfdb

    from medmm.signals.beats import simulate_ecg

    ecg, _ = simulate_ecg(fs, hours * 3600, seed=2)
    sig = np.column_stack([ecg, 0.5 * np.roll(ecg, int(fs // 7))])
    wfdb.wrsamp(
        "long", fs=fs, units=["mV", "mV"], sig_name=["II", "V5"], p_signal=sig, fmt=["16", "16"],
        adc_gain=[1000.0, 8000.0], baseline=[0, 0], write_dir=str(folder),
    )  # fmt: skip
    return "long"


def task_peak(root: str, record: str, chunk_s: float, chunked: bool) -> dict[str, float]:
    """Peak traced memory and time of one record task (after a warm-up run in the other mode)."""
    import tracemalloc

    from medmm.signals.discover import discover
    from medmm.signals.process import Settings, process_record

    job = discover(Path(root), only=[f"{record}.hea"])[0][0]
    key = Pseudonymizer(bytes(32))
    with tempfile.TemporaryDirectory() as warm:  # lazy imports are not the record's memory
        process_record(job, root, Settings(chunk_s=chunk_s, chunk_records=not chunked), key, warm)
    with tempfile.TemporaryDirectory() as out:
        tracemalloc.start()
        t0 = time.perf_counter()
        res = process_record(job, root, Settings(chunk_s=chunk_s, chunk_records=chunked), key, out)
        secs = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    n_beats = 0 if res.beats is None else len(res.beats)
    return {"peak_mb": peak / 1e6, "seconds": secs, "beats": float(n_beats)}


def _long_record(tmpd: Path, hours: float) -> dict[str, dict[str, float]]:
    import json
    import subprocess
    import sys

    folder = tmpd / "long"
    folder.mkdir()
    rec = write_long_record(folder, hours)
    out = {}
    for label, chunk_s, chunked in (
        ("whole", 600.0, False),
        ("chunks_600s", 600.0, True),
        ("chunks_120s", 120.0, True),
    ):
        code = (
            "import json, bench.bench_signals as b; "
            f"print(json.dumps(b.task_peak({str(folder)!r}, {rec!r}, {chunk_s}, {chunked})))"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Measure (see module doc), print a table, return the summary."""
    import wfdb

    logging.getLogger("distributed").setLevel(logging.ERROR)
    root = shared_data_dir()
    if root is None or not (root / "signals/mitdb_subset").is_dir():
        raise FileNotFoundError("signals/mitdb_subset not found: set MEDMM_DATA to the shared data folder")
    folder = root / "signals/mitdb_subset"
    records = QUICK_RECORDS if quick else RECORDS
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_signals_") as tmp:
        tmpd = Path(tmp)
        one = _replicate(folder, records, 1, tmpd / "x1")
        three = _replicate(folder, records, 3, tmpd / "x3")
        t0 = time.perf_counter()
        n = 0
        for rec in sorted(one.rglob("*.hea")):
            r = wfdb.rdrecord(str(rec.with_suffix("")))
            wfdb.rdann(str(rec.with_suffix("")), "atr")
            n += r.p_signal.size
        secs = time.perf_counter() - t0
        rows["wfdb_read"] = {"seconds": secs, "samples": n, "samples_per_s": n / secs}
        for name, workers in (("serial", 0), ("dask_1", 1), ("dask_2", 2)):
            secs, n, peak = _stage(one, tmpd / f"run_{name}", workers)
            rows[name] = {
                "seconds": secs,
                "samples": n,
                "samples_per_s": n / secs,
                "peak_rss_mb": peak / 2**20,
            }
        mem: dict[str, float] = {}
        for label, src in ((f"{len(records)}_records", one), (f"{3 * len(records)}_records", three)):
            secs, n, peak = _stage(src, tmpd / f"mem_{label}", 2)
            mem[label] = peak / 2**20
            rows[f"dask_2_{label}"] = {
                "seconds": secs,
                "samples": n,
                "samples_per_s": n / secs,
                "peak_rss_mb": mem[label],
            }
        hours = 1.0 if quick else 3.0
        long = _long_record(tmpd, hours)
    base = rows["serial"]["samples_per_s"]
    print(
        f"{'run':24s} {'records':>8s} {'seconds':>8s} {'Msamples/s':>11s} {'vs serial':>9s} {'peak MB':>8s}"
    )
    for name, r in rows.items():
        recs = 3 * len(records) if name.endswith(f"{3 * len(records)}_records") else len(records)
        peak_col = f"{r['peak_rss_mb']:8.0f}" if "peak_rss_mb" in r else f"{'':8s}"
        print(
            f"{name:24s} {recs:8d} {r['seconds']:8.1f} {r['samples_per_s'] / 1e6:11.2f} "
            f"{r['samples_per_s'] / base:8.2f}x {peak_col}"
        )
    small, large = mem.values()
    r1, r3 = rows[f"dask_2_{len(records)}_records"], rows[f"dask_2_{3 * len(records)}_records"]
    marginal = (r3["samples"] - r1["samples"]) / max(1e-9, r3["seconds"] - r1["seconds"])
    print(f"peak memory {3 * len(records)} vs {len(records)} records: {large / small:.2f}x")
    print(
        f"dask_2 marginal rate (extra samples / extra seconds, start-up excluded): "
        f"{marginal / 1e6:.2f} Msamples/s = {marginal / base:.2f}x serial"
    )
    print(
        f"one record task, {hours:g} h 2-lead record {'':9s} {'peak MB':>8s} {'seconds':>8s} {'vs whole':>8s}"
    )
    for label, r in long.items():
        print(
            f"  {label:40s} {r['peak_mb']:8.1f} {r['seconds']:8.1f} "
            f"{r['peak_mb'] / long['whole']['peak_mb']:7.2f}x"
        )
    return {
        "long_record": {"hours": hours, **long},
        "records": records,
        "rows": rows,
        "peak_memory_ratio_3x_vs_1x": large / small,
        "dask_2_marginal_samples_per_s": marginal,
        "baseline": "serial (whole stage in-process); wfdb_read = reading alone",
    }
