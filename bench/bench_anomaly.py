"""Anomaly model: training time (one network vs the default ensemble) and scoring throughput, batched vs
one beat at a time (the baseline).

Data: MIT-BIH records of ``signals/mitdb_subset`` (R peaks from ``detect_rpeaks``). The ratio compares
the network's embedding throughput in batches of 256 with one call per beat (the baseline, as a naive
streaming scorer would do, timed on a subset); ``score_end_to_end`` adds the per-record statistics.
Training and ensemble scoring are also given as CPU seconds (``time.process_time``), which a loaded
shared host distorts less than wall-clock time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

RECORDS = ("100", "102", "104", "105", "108", "114", "116", "121", "123")


def _inputs(records: tuple[str, ...]) -> Any:
    import wfdb

    from medmm.anomaly.features import beat_inputs, concat_inputs
    from medmm.datasets import shared_data_dir
    from medmm.signals.beats import detect_rpeaks

    root = shared_data_dir()
    if root is None:
        raise RuntimeError("shared data not found: set MEDMM_DATA")
    parts = []
    for i, name in enumerate(records):
        rec = wfdb.rdrecord(str(root / "signals" / "mitdb_subset" / name))
        sig = rec.p_signal[:, 0]
        parts.append(beat_inputs(sig, float(rec.fs), detect_rpeaks(sig, float(rec.fs)), group=i))
    return concat_inputs(parts)


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Measure training time and batched vs one-by-one scoring throughput; print a table."""
    import torch

    from medmm.anomaly.score import embed, score_inputs
    from medmm.anomaly.train import DEFAULT_ENSEMBLE, train_beat_model

    records = RECORDS[:2] if quick else RECORDS
    epochs = 2 if quick else 10
    n_single = 200 if quick else 1000
    t0 = time.perf_counter()
    inputs = _inputs(records)
    t_features = time.perf_counter() - t0

    t0, c0 = time.perf_counter(), time.process_time()
    model = train_beat_model(inputs, seed=0, epochs=epochs, device="cpu")
    t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    k = 2 if quick else DEFAULT_ENSEMBLE
    t0, c0 = time.perf_counter(), time.process_time()
    ens = train_beat_model(inputs, seed=0, epochs=epochs, device="cpu", ensemble=k)
    t_train_ens, c_train_ens = time.perf_counter() - t0, time.process_time() - c0
    c0 = time.process_time()
    score_inputs(ens, inputs, device="cpu")
    c_score_ens = time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    score_inputs(model, inputs, device="cpu")
    t_batched, c_score = time.perf_counter() - t0, time.process_time() - c0
    batched_bps = len(inputs) / t_batched

    sub = inputs.waves[:n_single]
    t0 = time.perf_counter()
    embed(model, sub, batch_size=1, device="cpu")
    t_single = time.perf_counter() - t0
    single_bps = n_single / t_single
    t0 = time.perf_counter()
    embed(model, inputs.waves, batch_size=256, device="cpu")
    embed_bps = len(inputs) / (time.perf_counter() - t0)

    summary: dict[str, Any] = {
        "device": "cpu",
        "torch": torch.__version__,
        "records": len(records),
        "beats": len(inputs),
        "epochs": epochs,
        "features_s": round(t_features, 3),
        "train_s": round(t_train, 3),
        "train_cpu_s": round(c_train, 3),
        "ensemble": k,
        "train_ensemble_s": round(t_train_ens, 3),
        "train_ensemble_cpu_s": round(c_train_ens, 3),
        "score_cpu_s": round(c_score, 3),
        "score_ensemble_cpu_s": round(c_score_ens, 3),
        "train_beats_per_s": round(min(len(inputs), 8000) * epochs / t_train, 1),
        "score_end_to_end_beats_per_s": round(batched_bps, 1),
        "embed_batched_beats_per_s": round(embed_bps, 1),
        "embed_one_by_one_beats_per_s": round(single_bps, 1),
        "batched_vs_one_by_one": round(embed_bps / single_bps, 1),
    }
    print(f"{'measure':32s} value")
    for name, v in summary.items():
        print(f"{name:32s} {v}")
    return summary
