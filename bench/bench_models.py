"""Models benchmark: training and inference throughput (records/s) and peak memory on the CPU, and on
the GPU with mixed precision when torch sees one; batched inference vs one-by-one inference (the
baseline) as a ratio, measured in the same run.

Inputs are random arrays with the constructed cohort's shapes (image 1x64x64, 60-finding report vector,
720-sample ECG window + 5 beat features), so the numbers measure the models, not data loading from disk.

Each (device, precision, fusion) is warmed up first (one short fit and one prediction on 16 records:
CUDA context, cuDNN/cuBLAS handles, allocator), then timed with ``torch.cuda.synchronize`` before every
clock read on a GPU. Peak memory: process RSS above its start (CPU), ``torch.cuda.max_memory_allocated``
per phase (GPU). On the CPU the ratios are also given in CPU time (user + sys of this process), which a
loaded machine distorts less than wall-clock time. Without CUDA the GPU part is skipped and says so.

One command on a GPU machine: ``python -m bench models`` (about a minute there; ``--quick`` for a smoke
check).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from medmm.align.records import RecordRow
from medmm.devices import autocast_dtype
from medmm.models.build import build_model, input_shapes
from medmm.models.config import TrainConfig
from medmm.models.data import MultimodalDataset
from medmm.models.store import open_stores, write_store
from medmm.models.train import fit, make_loader, predict_loader, seed_everything
from medmm.tables import write_table


class _PeakRSS:
    """Sample the process RSS every 10 ms; ``peak_mb`` is the maximum above the starting RSS."""

    def __enter__(self) -> _PeakRSS:
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self.stop = True
        self.thread.join()

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def _make_run(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ids = [f"{i:05d}" for i in range(n)]
    write_store(root / "inputs" / "image", ids, rng.normal(size=(n, 1, 64, 64)).astype(np.float32))
    write_store(root / "inputs" / "report", ids, (rng.random((n, 60)) < 0.1).astype(np.float32))
    write_store(
        root / "inputs" / "signal",
        ids,
        rng.normal(size=(n, 1, 720)).astype(np.float32),
        rng.normal(size=(n, 5)).astype(np.float32),
    )
    rows = [
        RecordRow(
            record_id=f"rec-{i}",
            patient_id=f"pat-{i}",
            study_id=f"stu-{i}",
            image_id=i,
            report_id=i,
            signal_id=i,
            has_image=True,
            has_report=True,
            has_signal=True,
            labels=json.dumps({"abnormal": int(rng.random() < 0.5)}),
        )
        for i in ids
    ]
    write_table(rows, root / "records.parquet", RecordRow)
    return root


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, fn: Callable[[], Any]) -> tuple[Any, float, float, float | None]:
    """``fn()`` -> (result, wall s, process CPU s, peak GPU MB or None); peak RSS is sampled by the caller."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    _sync(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    gpu_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return out, wall, cpu, gpu_mb


def _precision(dtype: torch.dtype | None) -> str:
    return str(dtype).removeprefix("torch.") if dtype is not None else "float32"


def _measure(
    run: Path, fusion: str, device: torch.device, amp: bool, n_infer_single: int, epochs: int
) -> dict[str, Any]:
    import pandas as pd

    cfg = TrainConfig.model_validate(
        {
            "run_dir": str(run),
            "fusion": fusion,
            "modalities": {"image": {}, "report": {}, "signal": {}},
            "tasks": [{"name": "diagnosis", "labels": ["abnormal"]}],
            "train": {"epochs": epochs, "batch_size": 32, "progress": False, "patience": epochs, "amp": amp},
        }
    )
    dtype = autocast_dtype(device) if amp else None  # what fit uses (train.amp) on this device
    records = pd.read_parquet(run / "records.parquet")
    stores = open_stores(run, ["image", "report", "signal"])
    ds = MultimodalDataset(records, stores, ["abnormal"])
    warm = MultimodalDataset(records.iloc[:16], stores, ["abnormal"])  # first-call costs out of the timings
    seed_everything(0)
    warm_cfg = TrainConfig.model_validate(
        {**cfg.model_dump(), "train": {**cfg.train.model_dump(), "epochs": 1}}
    )
    warm_model = fit(build_model(cfg, input_shapes(stores)), warm_cfg, warm, None, device=device).model
    predict_loader(warm_model, make_loader(warm, 8, False, 0, device), device)
    del warm_model
    seed_everything(0)
    model = build_model(cfg, input_shapes(stores))
    with _PeakRSS() as mem_train:
        res, train_s, train_cpu, train_gpu = _timed(device, lambda: fit(model, cfg, ds, None, device=device))
    model = res.model.eval()
    with _PeakRSS() as mem_inf:
        _, batched_s, batched_cpu, infer_gpu = _timed(
            device, lambda: predict_loader(model, make_loader(ds, 64, False, 0, device), device)
        )
    single = MultimodalDataset(records.iloc[:n_infer_single], stores, ["abnormal"])
    _, single_s, single_cpu, _ = _timed(
        device, lambda: predict_loader(model, make_loader(single, 1, False, 0, device), device)
    )
    n_train = len(ds) * len(res.history)
    out: dict[str, Any] = {
        "fusion": fusion,
        "device": str(device),
        "precision": _precision(dtype),
        "records": len(ds),
        "train_records_per_s": n_train / train_s,
        "infer_batched_records_per_s": len(ds) / batched_s,
        "infer_one_by_one_records_per_s": n_infer_single / single_s,
        "batched_vs_one_by_one": (len(ds) / batched_s) / (n_infer_single / single_s),
        "train_peak_rss_mb": mem_train.peak_mb,
        "infer_peak_rss_mb": mem_inf.peak_mb,
    }
    if device.type == "cpu":  # CPU-time rates: robust to other processes on the machine
        out["train_records_per_cpu_s"] = n_train / train_cpu
        out["batched_vs_one_by_one_cpu_time"] = (len(ds) / batched_cpu) / (n_infer_single / single_cpu)
    else:
        out["train_gpu_peak_mb"] = train_gpu
        out["infer_gpu_peak_mb"] = infer_gpu
    return out


COLUMNS = [
    "fusion",
    "device",
    "precision",
    "train_records_per_s",
    "infer_batched_records_per_s",
    "infer_one_by_one_records_per_s",
    "batched_vs_one_by_one",
    "batched_vs_one_by_one_cpu_time",
    "train_peak_rss_mb",
    "infer_peak_rss_mb",
    "train_gpu_peak_mb",
    "infer_gpu_peak_mb",
]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def add_ratios(results: list[dict[str, Any]]) -> list[str]:
    """Add ``train_vs_cpu`` (and ``train_amp_vs_float32``) to the GPU rows; returns one line per GPU row.

    >>> runs = (("cpu", "float32", 10.0), ("cuda", "bfloat16", 400.0), ("cuda", "float32", 200.0))
    >>> rows = [{"fusion": "late", "device": d, "precision": p, "train_records_per_s": v} for d, p, v in runs]
    >>> add_ratios(rows)[0]
    'late on cuda (bfloat16): training 40.0x the CPU records/s, AMP vs float32 2.00x'
    """
    lines = []
    for fusion in dict.fromkeys(r["fusion"] for r in results):
        rows = {(r["device"], r["precision"]): r for r in results if r["fusion"] == fusion}
        cpu_row = rows.get(("cpu", "float32"))
        for (dev, prec), r in rows.items():
            if dev == "cpu" or cpu_row is None:
                continue
            r["train_vs_cpu"] = r["train_records_per_s"] / cpu_row["train_records_per_s"]
            fp32 = rows.get((dev, "float32"))
            extra = ""
            if fp32 is not None and prec != "float32":
                r["train_amp_vs_float32"] = r["train_records_per_s"] / fp32["train_records_per_s"]
                extra = f", AMP vs float32 {r['train_amp_vs_float32']:.2f}x"
            lines.append(
                f"{fusion} on {dev} ({prec}): training {r['train_vs_cpu']:.1f}x the CPU records/s{extra}"
            )
    return lines


def run(out_dir: Path, quick: bool) -> dict:
    """Benchmark late fusion (baseline strategy) and attention fusion on the CPU, and on the GPU (with
    the default mixed precision, and in float32 for comparison) when CUDA is available."""
    n = 128 if quick else 1024
    n_single = 32 if quick else 128
    plans: list[tuple[torch.device, bool]] = [(torch.device("cpu"), True)]  # CPU: AMP on = float32 by policy
    gpu: dict[str, Any]
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        plans += [(cuda, True), (cuda, False)]
        gpu = {
            "name": torch.cuda.get_device_name(cuda),
            "capability": list(torch.cuda.get_device_capability(cuda)),
            "amp_dtype": _precision(autocast_dtype(cuda)),
            "torch_cuda": torch.version.cuda,
        }
    else:
        gpu = {
            "skipped": "torch.cuda.is_available() is False (no NVIDIA GPU or driver, or a CPU-only torch); "
            "run `python -m bench models` on a GPU machine for the CUDA + AMP numbers"
        }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = _make_run(Path(tmp), n)
        for device, amp in plans:
            for fusion in ("late", "attention"):
                epochs = 3 if device.type == "cuda" else 1  # a GPU epoch is too short to time alone
                results.append(_measure(run_dir, fusion, device, amp, min(n, n_single), epochs))
    cols = [c for c in COLUMNS if any(c in r for r in results)]
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(_cell(r.get(c)) for c in cols))
    for line in add_ratios(results):
        print(line)
    if "skipped" in gpu:
        print(f"GPU part skipped: {gpu['skipped']}")
    return {
        "records": n,
        "one_by_one_records": min(n, n_single),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "gpu": gpu,
        "results": results,
    }
