"""Models benchmark: training and inference throughput (records/s) and peak memory, CPU (and GPU when
present); batched inference vs one-by-one inference (the baseline) as a ratio, measured in the same run.

Inputs are random arrays with the constructed cohort's shapes (image 1x64x64, 20-finding report vector,
720-sample ECG window + 5 beat features), so the numbers measure the models, not data loading from disk.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from medmm.align.records import RecordRow
from medmm.models.build import build_model, input_shapes
from medmm.models.config import TrainConfig
from medmm.models.data import MultimodalDataset
from medmm.models.store import open_stores, write_store
from medmm.models.train import fit, make_loader, predict_loader
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


def _measure(run: Path, fusion: str, device: str, n_infer_single: int) -> dict[str, Any]:
    import pandas as pd

    cfg = TrainConfig.model_validate(
        {
            "run_dir": str(run),
            "fusion": fusion,
            "modalities": {"image": {}, "report": {}, "signal": {}},
            "tasks": [{"name": "diagnosis", "labels": ["abnormal"]}],
            "train": {"epochs": 1, "batch_size": 32, "progress": False, "device": device, "patience": 1},
        }
    )
    records = pd.read_parquet(run / "records.parquet")
    stores = open_stores(run, ["image", "report", "signal"])
    ds = MultimodalDataset(records, stores, ["abnormal"])
    model = build_model(cfg, input_shapes(stores))
    warm = MultimodalDataset(records.iloc[:16], stores, ["abnormal"])  # first-call costs out of the timings
    predict_loader(model.to(device), make_loader(warm, 8, False, 0))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with _PeakRSS() as mem_train:
        t = time.perf_counter()
        res = fit(model, cfg, ds, None)
        train_s = time.perf_counter() - t
    model = res.model.eval()
    with _PeakRSS() as mem_inf:
        t = time.perf_counter()
        predict_loader(model, make_loader(ds, 64, False, 0))
        batched_s = time.perf_counter() - t
    single = MultimodalDataset(records.iloc[:n_infer_single], stores, ["abnormal"])
    t = time.perf_counter()
    predict_loader(model, make_loader(single, 1, False, 0))
    single_s = time.perf_counter() - t
    batched_rps = len(ds) / batched_s
    single_rps = n_infer_single / single_s
    out = {
        "fusion": fusion,
        "device": device,
        "records": len(ds),
        "train_records_per_s": len(ds) / train_s,
        "train_peak_rss_mb": mem_train.peak_mb,
        "infer_batched_records_per_s": batched_rps,
        "infer_one_by_one_records_per_s": single_rps,
        "batched_vs_one_by_one": batched_rps / single_rps,
        "infer_peak_rss_mb": mem_inf.peak_mb,
    }
    if device == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run(out_dir: Path, quick: bool) -> dict:
    """Benchmark late fusion (baseline strategy) and attention fusion on CPU (+ GPU when available)."""
    n = 128 if quick else 1024
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = _make_run(Path(tmp), n)
        for device in devices:
            for fusion in ("late", "attention"):
                results.append(_measure(run_dir, fusion, device, min(n, 64 if quick else 256)))
    cols = [
        "fusion",
        "device",
        "train_records_per_s",
        "infer_batched_records_per_s",
        "infer_one_by_one_records_per_s",
        "batched_vs_one_by_one",
        "train_peak_rss_mb",
        "infer_peak_rss_mb",
    ]
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(f"{r[c]:.1f}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    return {"records": n, "torch_threads": torch.get_num_threads(), "results": results}
