"""`python -m bench models` (the one-command GPU check): its measuring code runs here on the CPU, and its
GPU-only summary (speed-up over the CPU, AMP vs float32) is checked on rows shaped like a GPU run's."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.bench_models import COLUMNS, _make_run, _measure, add_ratios


def test_measure_on_the_cpu(tmp_path: Path) -> None:
    run = _make_run(tmp_path, 24)
    row = _measure(run, "late", torch.device("cpu"), True, 4, 1)
    assert row["precision"] == "float32"  # AMP is on by default but the CPU policy is float32
    assert row["records"] == 24
    for key in ("train_records_per_s", "infer_batched_records_per_s", "infer_one_by_one_records_per_s"):
        assert row[key] > 0
    assert row["batched_vs_one_by_one"] > 0 and row["train_records_per_cpu_s"] > 0
    assert "train_gpu_peak_mb" not in row
    assert set(row) - {"records", "train_records_per_cpu_s"} <= set(COLUMNS)


def test_gpu_rows_get_ratios_to_the_cpu_and_to_float32() -> None:
    rows = [
        {"fusion": f, "device": d, "precision": p, "train_records_per_s": v}
        for f in ("late", "attention")
        for d, p, v in (("cpu", "float32", 10.0), ("cuda", "bfloat16", 300.0), ("cuda", "float32", 200.0))
    ]
    lines = add_ratios(rows)
    assert len(lines) == 4
    assert lines[0] == "late on cuda (bfloat16): training 30.0x the CPU records/s, AMP vs float32 1.50x"
    assert lines[1] == "late on cuda (float32): training 20.0x the CPU records/s"
    assert rows[1]["train_vs_cpu"] == 30.0 and rows[1]["train_amp_vs_float32"] == 1.5
    assert "train_vs_cpu" not in rows[0]
    assert add_ratios([r for r in rows if r["device"] == "cpu"]) == []  # CPU-only machine: nothing to add
