"""Inference over a run's records with a trained checkpoint -> ``predictions.parquet``.

Each record is scored with whatever of the model's modalities it has (absent ones are masked); a record
with none of them is skipped and counted. Scores are sigmoid probabilities; the model's SHA-256 and the
fusion's per-modality weights travel with every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medmm.align.records import MODALITIES
from medmm.models.checkpoint import file_sha256
from medmm.models.data import MultimodalDataset
from medmm.models.runner import load_model
from medmm.models.train import make_loader, predict_loader
from medmm.models.volumes import open_sources
from medmm.predict.records import PredictionRow
from medmm.runinfo import Timer, update_run_json
from medmm.tables import read_table, write_table

__all__ = ["predict_run"]


def predict_run(
    checkpoint: Path, run_dir: Path, out: Path | None = None, batch_size: int = 64
) -> dict[str, Any]:
    """Score every usable record of ``run_dir``; writes ``predictions.parquet`` (or ``out``).

    Returns counts (``records``, ``skipped_no_modality``, ``rows``).
    """
    from medmm.errors import InputError

    timer = Timer()
    run_dir = Path(run_dir)
    with timer("load"):
        model, config, meta = load_model(checkpoint)
        sha = file_sha256(checkpoint)
        path = run_dir / "records.parquet"
        if not path.exists():
            raise InputError(str(path), "no records table", "run `medmm align RUN_DIR` first")
        records = read_table(path)
        mods: list[str] = meta["modalities"]
        has = records[[f"has_{m}" for m in mods]].to_numpy(bool)
        usable = records[has.any(axis=1)]
        kind = meta.get("input_sources", {}).get("image", "arrays")  # older checkpoints: arrays
        stores = open_sources(config, run_dir, mods, usable, kind)
    with timer("predict"):
        ds = MultimodalDataset(usable, stores, meta["label_names"])
        pred = predict_loader(model, make_loader(ds, batch_size, False, 0))
    rows = []
    labels = [(t.name, lab) for t in model.tasks for lab in t.labels]
    mask = ds.mask
    for i, rid in enumerate(pred.record_ids):
        present = [m for j, m in enumerate(mods) if mask[i, j]]
        w = {
            f"weight_{m}": (float(pred.weights[i, j]) if pred.weights is not None and mask[i, j] else None)
            for j, m in enumerate(mods)
        }
        for k, (task, lab) in enumerate(labels):
            rows.append(
                PredictionRow(
                    record_id=rid,
                    task=task,
                    label=lab,
                    score=float(np.clip(pred.probs[i, k], 0, 1)),
                    model_sha256=sha,
                    modalities="+".join(present),
                    **w,
                )
            )
    target = out or run_dir / "predictions.parquet"
    write_table(rows, target, PredictionRow)
    counts = {"records": len(usable), "skipped_no_modality": len(records) - len(usable), "rows": len(rows)}
    update_run_json(
        run_dir,
        "predict",
        options={
            "checkpoint": str(checkpoint),
            "model_sha256": sha,
            "modalities": [m for m in MODALITIES if m in mods],
        },
        counts=counts,
        timings=timer.total(),
    )
    return counts
