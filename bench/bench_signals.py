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
    base = rows["serial"]["samples_per_s"]
    print(
        f"{'run':24s} {'records':>8s} {'seconds':>8s} {'Msamples/s':>11s} {'vs serial':>9s} {'peak MB':>8s}"
    )
    for name, r in rows.items():
        recs = 3 * len(records) if name.endswith(f"{3 * len(records)}_records") else len(records)
        peak = f"{r['peak_rss_mb']:8.0f}" if "peak_rss_mb" in r else f"{'':8s}"
        print(
            f"{name:24s} {recs:8d} {r['seconds']:8.1f} {r['samples_per_s'] / 1e6:11.2f} "
            f"{r['samples_per_s'] / base:8.2f}x {peak}"
        )
    small, large = mem.values()
    r1, r3 = rows[f"dask_2_{len(records)}_records"], rows[f"dask_2_{3 * len(records)}_records"]
    marginal = (r3["samples"] - r1["samples"]) / max(1e-9, r3["seconds"] - r1["seconds"])
    print(f"peak memory {3 * len(records)} vs {len(records)} records: {large / small:.2f}x")
    print(
        f"dask_2 marginal rate (extra samples / extra seconds, start-up excluded): "
        f"{marginal / 1e6:.2f} Msamples/s = {marginal / base:.2f}x serial"
    )
    return {
        "records": records,
        "rows": rows,
        "peak_memory_ratio_3x_vs_1x": large / small,
        "dask_2_marginal_samples_per_s": marginal,
        "baseline": "serial (whole stage in-process); wfdb_read = reading alone",
    }
