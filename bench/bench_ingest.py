"""Throughput and memory of ``medmm ingest`` against ``dcm2niix`` on the same DICOM archive.

The archive is made by :mod:`bench._archive`: the real uncompressed MR series of ``shared/data``
(dicom2nifti's Siemens, Philips and generic 256x256 series) replicated with fresh UIDs into series of
100 slices, N slices in all. Measured in one run, same machine, each tool as a subprocess:

* ``dcm2niix -z i -1 -b y``: gzip level 1 (internal compressor), the level medmm writes ``.nii.gz``
  with (ISA-L level 1), plus its JSON sidecar - the same outputs ``medmm ingest`` writes (compressed
  against compressed);
* ``python -m medmm.ingest ingest --workers 1`` and ``--workers 2`` (the ingest command alone), and
  ``python -m medmm ingest --workers 2`` (the full CLI, as the ``medmm`` console script runs it):
  start-up of the command and of the local Dask cluster included, as a user sees it. Two rates leave
  the fixed costs out: the *marginal* rate (extra slices of the large archive over the small one,
  divided by the extra wall time) and the *steady-state* rate (slices divided by the time of the
  scan + assemble + convert phases that ``run.json`` records); the rest of the wall time (CLI imports,
  cluster start and shut-down, writing the tables) is reported as ``fixed s``; the fixed cost proper
  (wall and CPU) is the intercept at zero slices of the line through the two smallest sizes;
* the load average of the shared machine before each measurement is recorded next to it;
* CPU seconds (user + system) of each tool's whole process tree (``getrusage`` of the waited-for
  children), and per slice: unlike wall time, this barely moves with the load of a shared machine;
* peak RSS: the sum over the whole process tree (driver, scheduler, nannies, the workers' server and
  the workers), sampled every 50 ms, its PSS (pages shared by processes, such as the modules the
  forked workers inherit from their server, counted once) and the driver process alone (it runs the
  Dask scheduler; sampled every 3 ms, its short peaks included); compared at 1,000 and 5,000 slices
  (and more) it shows whether memory is bounded by the largest series, not the archive. Memory is
  measured in a second run of the same command: the sampler costs ~0.1-0.3 s of CPU per medmm run
  (PSS reads walk the page tables of every process) on the two cores medmm's workers use, while
  dcm2niix, a single process, leaves it a core of its own; the timed runs are not sampled (the
  sampled run's wall time is kept as ``*_sampled_s`` in the JSON).

Ratios are medmm's slices/s over dcm2niix's at the same size, end to end (wall time of each command,
start-up and shut-down included) and in steady state (medmm's scan + assemble + convert phases against
dcm2niix's whole run); the marginal ratio compares the extra wall time between the two largest sizes.
Both tools read the same archive and write gzip level-1 ``.nii.gz`` plus a JSON sidecar per volume.

``python -m bench ingest [--quick]`` (quick: 1,000 and 5,000 slices, ~2 minutes; full: 1,000, 5,000
and 20,000 slices, ~3 GB of temporary archive, ~5 minutes). Wrap it in ``flock /tmp/medmm-bench.lock``
on a shared machine and read the load column: both tools share the same cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._archive import make_archive

SIZES = (1000, 5000, 20000)
#: (result key, module run with ``python -m``, workers). ``medmm.ingest`` is the ingest command alone;
#: ``medmm`` is the full ``medmm`` CLI as the console script runs it (:mod:`medmm._entry`: the
#: workers' server launched first, then typer and every stage's command module) - measured at 2
#: workers to show what the full CLI costs on top.
VARIANTS = (
    ("medmm_w1", "medmm.ingest", 1),
    ("medmm_w2", "medmm.ingest", 2),
    ("medmm_cli_w2", "medmm", 2),
)
QUICK_SIZES = (1000, 5000)


class _TreePeak:
    """Peak of the summed RSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self._interval = interval
        self.peak = 0
        self.root_peak = 0  # the process itself, without its descendants
        self.pss_peak = 0  # proportional set size: pages shared by forked processes counted once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        # the process alone, every 3 ms: its peaks (e.g. writing the tables) last a few tens of ms
        self._root_thread = threading.Thread(target=self._root_loop, daemon=True)
        self._root_thread.start()

    def _root_loop(self) -> None:
        import psutil

        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.root_peak = max(self.root_peak, self._root.memory_info().rss)
            self._stop.wait(0.003)

    def _loop(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = pss = 0
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    rss = p.memory_info().rss
                    total += rss
                    if p is self._root:
                        self.root_peak = max(self.root_peak, rss)
                    pss += getattr(p.memory_full_info(), "pss", rss)
            self.peak = max(self.peak, total)
            self.pss_peak = max(self.pss_peak, pss)
            self._stop.wait(self._interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self._root_thread.join()
        return self.peak


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` (output to ``log``) with nothing else watching it; return (wall s, tree CPU s).

    The CPU time is that of the command and of every descendant it waited for, from
    ``getrusage(RUSAGE_CHILDREN)`` around the run: medmm's forked workers are reaped by their server
    process, which the driver stops and reaps at the end, so their CPU time counts too.
    """
    with log.open("w") as fh:
        cpu0 = _children_cpu()
        start = time.perf_counter()
        code = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
        cpu = _children_cpu() - cpu0
    if code != 0:
        raise RuntimeError(f"{cmd[0]} exited with {code}; see {log}")
    return wall, cpu


def _memory(cmd: list[str], log: Path) -> tuple[int, int, int, float]:
    """Run ``cmd`` again, sampled (:class:`_TreePeak`); return (peak tree RSS, peak own RSS, peak tree
    PSS, wall s of this sampled run).

    A separate run from :func:`_timed`: the sampler costs ~0.1-0.3 s of CPU per medmm run (the tree's
    PSS reads walk every process's page tables), on the 2 cores medmm's workers use, whereas
    dcm2niix, one process, leaves the sampler a core of its own - sampling the timed runs slowed one
    tool and not the other.
    """
    with log.open("w") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        peak = _TreePeak(proc.pid)
        code = proc.wait()
        wall = time.perf_counter() - start
        rss = peak.stop()
    if code != 0:
        raise RuntimeError(f"{cmd[0]} exited with {code}; see {log}")
    return rss, peak.root_peak, peak.pss_peak, wall


def _dcm2niix() -> str:
    exe = Path(sys.executable).with_name("dcm2niix")
    found = str(exe) if exe.exists() else shutil.which("dcm2niix")
    if not found:
        raise FileNotFoundError("dcm2niix not found: pip install dcm2niix (it is in medmm's dev extra)")
    return found


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _steady_s(run: Path) -> float:
    """Seconds of the per-file phases (scan, assemble, convert) of a medmm run, from its run.json."""
    timings = json.loads((run / "run.json").read_text())["stages"]["ingest"]["timings"]
    return float(sum(timings.get(k, 0.0) for k in ("scan", "assemble", "convert")))


def _one_size(n: int, work: Path, key: Path) -> dict[str, Any]:
    archive = make_archive(work / f"archive_{n}", n, seed=n)
    out: dict[str, Any] = {"slices": n}
    d2n_out = work / f"dcm2niix_{n}"
    d2n_out.mkdir()
    cmd = [_dcm2niix(), "-z", "i", "-1", "-b", "y", "-f", "%j", "-o", str(d2n_out), str(archive)]
    out["dcm2niix_load"] = _load()
    out["dcm2niix_s"], out["dcm2niix_cpu_s"] = _timed(cmd, work / f"dcm2niix_{n}.log")
    out["dcm2niix_steady_s"] = out["dcm2niix_s"]  # one process, no start-up worth separating
    out["dcm2niix_volumes"] = len(list(d2n_out.glob("*.nii.gz")))
    shutil.rmtree(d2n_out)
    d2n_out.mkdir()
    mem = _memory(cmd, work / f"dcm2niix_{n}_memory.log")
    out["dcm2niix_rss"], out["dcm2niix_driver_rss"], out["dcm2niix_pss"], out["dcm2niix_sampled_s"] = mem
    for name, module, workers in VARIANTS:
        run = work / f"{name}_{n}"
        cmd = [sys.executable, "-m", module, "ingest", str(archive), "--out", str(run)]
        cmd += ["--workers", str(workers), "--key-file", str(key)]
        out[f"{name}_load"] = _load()
        out[f"{name}_s"], out[f"{name}_cpu_s"] = _timed(cmd, work / f"{name}_{n}.log")
        out[f"{name}_steady_s"] = _steady_s(run)
        import pandas as pd

        manifest = pd.read_parquet(run / "manifest.parquet")
        out[f"{name}_volumes"] = int(manifest["volume_id"].nunique())
        out[f"{name}_ingested"] = int((manifest["status"] == "ingested").sum())
        shutil.rmtree(run)
        mem = _memory(cmd, work / f"{name}_{n}_memory.log")  # a fresh run directory again
        out[f"{name}_rss"], out[f"{name}_driver_rss"], out[f"{name}_pss"], out[f"{name}_sampled_s"] = mem
        shutil.rmtree(run)
    shutil.rmtree(archive)
    shutil.rmtree(d2n_out)
    return out


_TOOLS = (
    ("dcm2niix", "dcm2niix"),
    ("medmm 1 worker", "medmm_w1"),
    ("medmm 2 workers", "medmm_w2"),
    ("medmm CLI 2 w.", "medmm_cli_w2"),
)


def _print_table(rows: list[dict[str, Any]]) -> None:
    mib = 1 << 20
    print(
        f"{'slices':>7} {'tool':<16} {'load':>5} {'wall s':>7} {'slices/s':>9} {'steady s':>9} "
        f"{'steady/s':>9} {'fixed s':>8} {'CPU s':>6} {'CPU ms/sl':>9} {'peak MiB':>9} {'PSS MiB':>8} "
        f"{'driver MiB':>10} {'volumes':>7}"
    )
    for r in rows:
        n = r["slices"]
        for tool, key_ in _TOOLS:
            wall, rss, steady = r[f"{key_}_s"], r[f"{key_}_rss"], r[f"{key_}_steady_s"]
            driver, cpu, pss = r[f"{key_}_driver_rss"], r[f"{key_}_cpu_s"], r[f"{key_}_pss"]
            vols, load = r[f"{key_}_volumes"], r[f"{key_}_load"]
            print(
                f"{n:>7} {tool:<16} {load:>5.1f} {wall:>7.1f} {n / wall:>9.0f} {steady:>9.1f} "
                f"{n / steady:>9.0f} {wall - steady:>8.1f} {cpu:>6.1f} {1e3 * cpu / n:>9.2f} "
                f"{rss / mib:>9.0f} {pss / mib:>8.0f} {driver / mib:>10.0f} {vols:>7}"
            )


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Measure both tools at each archive size; print a table and the ratios; return the numbers."""
    sizes = QUICK_SIZES if quick else SIZES
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="medmm-bench-ingest-") as tmp:
        work = Path(tmp)
        key = work / "site.key"
        key.write_text("5a" * 32 + "\n")
        for n in sizes:
            rows.append(_one_size(n, work, key))
    _print_table(rows)
    mib = 1 << 20
    summary: dict[str, Any] = {"rows": rows, "sizes": list(sizes), "ratios": {}}
    for r in rows:
        n = r["slices"]
        ratios = {
            "end_to_end_w2": r["dcm2niix_s"] / r["medmm_w2_s"],
            "end_to_end_w1": r["dcm2niix_s"] / r["medmm_w1_s"],
            "end_to_end_cli_w2": r["dcm2niix_s"] / r["medmm_cli_w2_s"],
            "steady_w2": r["dcm2niix_steady_s"] / r["medmm_w2_steady_s"],
            "cpu_per_slice_ms_w2": 1e3 * r["medmm_w2_cpu_s"] / n,
            "cpu_per_slice_ms_dcm2niix": 1e3 * r["dcm2niix_cpu_s"] / n,
        }
        summary["ratios"][n] = ratios
        print(
            f"{n:>6} slices: medmm 2 workers / dcm2niix throughput {ratios['end_to_end_w2']:.2f}x end to end "
            f"(1 worker {ratios['end_to_end_w1']:.2f}x, full CLI {ratios['end_to_end_cli_w2']:.2f}x), "
            f"{ratios['steady_w2']:.2f}x steady state; CPU {ratios['cpu_per_slice_ms_w2']:.2f} vs "
            f"{ratios['cpu_per_slice_ms_dcm2niix']:.2f} ms/slice"
        )
    small, large = rows[-2], rows[-1]
    dn = large["slices"] - small["slices"]
    for key_ in ("dcm2niix", "medmm_w1", "medmm_w2", "medmm_cli_w2"):
        summary[f"{key_}_slices_per_s"] = large["slices"] / large[f"{key_}_s"]
        extra = large[f"{key_}_s"] - small[f"{key_}_s"]
        # None when the larger archive did not take longer: the load noise swamped the difference
        summary[f"{key_}_marginal_slices_per_s"] = dn / extra if extra > 0 else None
        summary[f"{key_}_steady_slices_per_s"] = large["slices"] / large[f"{key_}_steady_s"]
    summary["ratio_w2_vs_dcm2niix"] = summary["medmm_w2_slices_per_s"] / summary["dcm2niix_slices_per_s"]
    w2_marginal, d2n_marginal = (
        summary["medmm_w2_marginal_slices_per_s"],
        summary["dcm2niix_marginal_slices_per_s"],
    )
    summary["marginal_ratio_w2_vs_dcm2niix"] = (
        w2_marginal / d2n_marginal if w2_marginal is not None and d2n_marginal is not None else None
    )
    marginal = summary["marginal_ratio_w2_vs_dcm2niix"]
    summary["steady_ratio_w2_vs_dcm2niix"] = (
        summary["medmm_w2_steady_slices_per_s"] / summary["dcm2niix_steady_slices_per_s"]
    )
    summary["peak_rss_w2_mib"] = {r["slices"]: round(r["medmm_w2_rss"] / mib) for r in rows}
    summary["driver_rss_w2_mib"] = {r["slices"]: round(r["medmm_w2_driver_rss"] / mib) for r in rows}
    summary["pss_w2_mib"] = {r["slices"]: round(r["medmm_w2_pss"] / mib) for r in rows}
    summary["fixed"] = _fixed_costs(rows[0], rows[1])
    summary["load_average"] = [r[k] for r in rows for k in r if k.endswith("_load")]
    marginal_text = "n/a (noise)" if marginal is None else f"{marginal:.2f}x"
    print(
        f"marginal ({small['slices']} -> {large['slices']} slices, fixed costs excluded): {marginal_text}; "
        f"peak RSS 2 workers {summary['peak_rss_w2_mib']} MiB (driver alone {summary['driver_rss_w2_mib']} "
        f"MiB, PSS {summary['pss_w2_mib']} MiB); load average during the runs "
        f"{min(summary['load_average']):.1f}-{max(summary['load_average']):.1f}"
    )
    print(
        f"fixed cost (intercept at 0 slices of the line through {rows[0]['slices']} and {rows[1]['slices']} "
        "slices), wall / CPU s: "
        + "; ".join(f"{tool} {w:.2f} / {c:.2f}" for tool, (w, c) in summary["fixed"].items())
    )
    return summary


def _fixed_costs(small: dict[str, Any], large: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Per tool, the wall and CPU seconds that do not scale with the slices: the intercept at zero
    slices of the straight line through two archive sizes (start-up, imports, shut-down)."""
    n0, n1 = small["slices"], large["slices"]
    fixed = {}
    for tool, key_ in _TOOLS:
        pair = []
        for metric in ("s", "cpu_s"):
            y0, y1 = small[f"{key_}_{metric}"], large[f"{key_}_{metric}"]
            pair.append(y0 - n0 * (y1 - y0) / (n1 - n0))
        fixed[tool] = (pair[0], pair[1])
    return fixed
