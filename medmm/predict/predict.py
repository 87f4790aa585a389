"""Inference over a run's records with a trained checkpoint -> ``predictions.parquet``.

Each record is scored with whatever of the model's modalities it has (absent ones are masked); a record
with none of them is skipped and counted. Scores are sigmoid probabilities; the model's SHA-256 and the
fusion's per-modality weights travel with every row.

One row per record and label: with ``image_input.slice: all`` the record's slices are scored one by one
and combined (``slice_aggregation``: the checkpoint's, by default ``mean``; or ``max``); on request the
per-slice scores go to ``<out>_slices.parquet`` (schema ``slice_predictions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medmm.align.records import MODALITIES
from medmm.devices import resolve_device
from medmm.models.checkpoint import file_sha256, load_checkpoint
from medmm.models.data import MultimodalDataset
from medmm.models.embedding_anomaly import IMAGE, EmbeddingAnomaly, load_embedding_anomaly, score_records
from medmm.models.run_inputs import open_checkpoint_inputs
from medmm.models.runner import _record_columns, load_model, read_run_table
from medmm.models.train import aggregate_by_record, make_loader, predict_loader
from medmm.predict.calibration import CHECKPOINT, site_calibrated
from medmm.predict.records import PredictionRow, SlicePredictionRow
from medmm.runinfo import Timer, update_run_json
from medmm.tables import write_table

__all__ = ["predict_run", "slice_table_path"]


def slice_table_path(target: Path) -> Path:
    """Where the per-slice scores of a predictions table go.

    >>> slice_table_path(Path("runs/x/predictions.parquet")).name
    'predictions_slices.parquet'
    """
    return target.with_name(f"{target.stem}_slices.parquet")


def predict_run(
    checkpoint: Path,
    run_dir: Path,
    out: Path | None = None,
    batch_size: int = 64,
    slice_aggregation: str | None = None,
    slice_scores: bool = False,
    device: str | torch.device | None = None,
    anomaly_rate: float | None = None,
    anomaly_calibration: Path | None = None,
) -> dict[str, Any]:
    """Score every usable record of ``run_dir``; writes ``predictions.parquet`` (or ``out``).

    Parameters
    ----------
    checkpoint, run_dir, out, batch_size
        The model, the run to score, the output table (default ``RUN_DIR/predictions.parquet``) and the
        inference batch size.
    slice_aggregation
        ``mean`` or ``max``: how a record's slice scores (``image_input.slice: all``) become its score;
        default the checkpoint's (``mean`` for checkpoints that do not say).
    slice_scores
        Also write the per-slice scores to :func:`slice_table_path` of the output.
    device
        Where the model runs: ``auto`` (default: the GPU when there is one), ``cpu``, ``cuda`` or
        ``cuda:N`` (:func:`medmm.devices.resolve_device`; also the ``device`` option of the ``predict``
        stage of ``medmm run``). The scores do not depend on it beyond float rounding.
    anomaly_rate
        False-alarm rate of the imaging anomaly flag (``embedding_anomaly_flag``): the threshold is
        re-derived from the calibration scores stored in the checkpoint. Default: the checkpoint's
        (:data:`medmm.models.embedding_anomaly.DEFAULT_FALSE_ALARM_RATE` when trained).
    anomaly_calibration
        An aligned run of studies the site declares normal, none of them among the scored records: the
        threshold is calibrated on its images instead (:mod:`medmm.predict.calibration`; the column
        ``embedding_anomaly_calibration`` names the set, ``run.json`` records its size, rate and bound).

    Returns counts (``records``, ``skipped_no_modality``, ``rows``, ``samples``, ``anomaly_scored``,
    ``anomaly_flagged``; ``slice_rows`` when ``slice_scores``), ``notes`` (a list of warnings, e.g.
    a checkpoint without the imaging anomaly statistics) and ``anomaly_calibration`` (``checkpoint``,
    ``site:<hash>`` or ``None``: where the anomaly threshold was calibrated).

    Examples
    --------
    >>> predict_run(Path("model.pt"), Path("runs/x"))  # doctest: +SKIP
    {'records': 8, 'skipped_no_modality': 0, 'rows': 8, 'samples': 26}
    """
    from medmm.errors import ConfigError, InputError

    if anomaly_rate is not None and not 0 < anomaly_rate < 1:  # before any model or data is read
        raise ConfigError(
            f"--anomaly-rate {anomaly_rate}: a false-alarm rate must be between 0 and 1, e.g. 0.05"
        )
    timer = Timer()
    run_dir = Path(run_dir)
    dev = resolve_device(device, source="device")
    if out is not None and Path(out).is_dir():
        raise InputError(
            str(out), "--out is a directory", f"pass a file path, e.g. {Path(out) / 'predictions.parquet'}"
        )
    with timer("load"):
        data = load_checkpoint(checkpoint)  # read once: the model and the anomaly statistics
        model, config, meta = load_model(checkpoint, dev, data)
        sha = file_sha256(checkpoint)
        path = run_dir / "records.parquet"
        if not path.exists():
            raise InputError(str(path), "no records table", "run `medmm align RUN_DIR` first")
        records = read_run_table(path, _record_columns(), "re-run `medmm align RUN_DIR` to write it again")
        mods: list[str] = meta["modalities"]
        has = records[[f"has_{m}" for m in mods]].to_numpy(bool)
        usable = records[has.any(axis=1)]
        if records.empty or usable.empty:
            raise InputError(
                str(path),
                f"none of its {len(records)} record(s) has a modality the model uses ({', '.join(mods)})",
                "score a run whose records have one of them (`medmm align` after the stage that makes "
                "them), or train a model on this run's modalities",
            )
        stores = open_checkpoint_inputs(config, meta, run_dir, usable, checkpoint)
    how = slice_aggregation or meta.get("slice_aggregation", "mean")
    with timer("embedding_anomaly"):  # before the task scores: a refused calibration run costs nothing
        anomaly, note = _anomaly(checkpoint, data, mods, anomaly_rate)
        calibration = CHECKPOINT if anomaly is not None else None
        if anomaly_calibration is not None:
            anomaly, calibration = site_calibrated(
                _needed_for_calibration(anomaly, checkpoint, data, mods),
                Path(anomaly_calibration),
                usable,
                model=model,
                config=config,
                meta=meta,
                checkpoint=checkpoint,
                rate=anomaly_rate,
                batch_size=batch_size,
                device=dev,
            )
            note = anomaly.calibration_note()
    with timer("predict"):
        ds = MultimodalDataset(usable, stores, meta["label_names"])
        per_sample = predict_loader(model, make_loader(ds, batch_size, False, 0, dev), dev)
        pred = aggregate_by_record(per_sample, how)
    with timer("embedding_anomaly"):
        notes = [note] if note else []
        scored: dict[str, tuple[float, bool]] = {}
        if anomaly is not None:
            table = score_records(anomaly, model, usable, stores, batch_size=batch_size, device=dev)
            table = table[np.isfinite(table["score"])]
            scored = {
                r: (float(s), bool(f))
                for r, s, f in table[["record_id", "score", "flag"]].itertuples(index=False)
            }
    rows = []
    labels = [(t.name, lab) for t in model.tasks for lab in t.labels]
    first = {rid: i for i, rid in reversed(list(enumerate(per_sample.record_ids)))}
    for i, rid in enumerate(pred.record_ids):
        s0 = first[rid]  # the record's first sample: its mask, and whether it was scored per slice
        mask = ds.mask[s0]
        sliced = bool(ds.slices[s0] >= 0)
        n_slices = int(pred.n_samples[i]) if sliced and pred.n_samples is not None else None
        present = [m for j, m in enumerate(mods) if mask[j]]
        w = {
            f"weight_{m}": (float(pred.weights[i, j]) if pred.weights is not None and mask[j] else None)
            for j, m in enumerate(mods)
        }
        score, flag = scored.get(rid, (None, None))
        anomaly_cols = {
            "embedding_anomaly_score": score,
            "embedding_anomaly_flag": flag,
            "embedding_anomaly_threshold": anomaly.threshold if score is not None and anomaly else None,
            "embedding_anomaly_calibration": calibration if score is not None else None,
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
                    n_slices=n_slices,
                    slice_aggregation=how if n_slices is not None else None,
                    **w,
                    **anomaly_cols,
                )
            )
    target = Path(out) if out is not None else run_dir / "predictions.parquet"
    write_table(rows, target, PredictionRow)
    counts = {
        "records": len(usable),
        "skipped_no_modality": len(records) - len(usable),
        "rows": len(rows),
        "samples": len(ds),
        "anomaly_scored": len(scored),
        "anomaly_flagged": sum(f for _, f in scored.values()),
    }
    if slice_scores:
        slice_rows = [
            SlicePredictionRow(
                record_id=rid,
                slice=int(ds.slices[i]),
                task=task,
                label=lab,
                score=float(np.clip(per_sample.probs[i, k], 0, 1)),
                model_sha256=sha,
            )
            for i, rid in enumerate(per_sample.record_ids)
            if ds.slices[i] >= 0
            for k, (task, lab) in enumerate(labels)
        ]
        write_table(slice_rows, slice_table_path(target), SlicePredictionRow)
        counts["slice_rows"] = len(slice_rows)
    update_run_json(
        run_dir,
        "predict",
        options={
            "checkpoint": str(checkpoint),
            "model_sha256": sha,
            "modalities": [m for m in MODALITIES if m in mods],
            "slice_aggregation": how,
            "slice_scores": slice_scores,
            "device": str(dev),
            "anomaly_rate": anomaly.rate if anomaly is not None else None,
            "anomaly_calibration": calibration,
        },
        counts=counts,
        timings=timer.total(),
        extra={
            "embedding_anomaly": (
                {**anomaly.summary(), "calibration": calibration} if anomaly is not None else None
            ),
            "notes": notes,
        },
    )
    return {**counts, "notes": notes, "anomaly_calibration": calibration}


def _needed_for_calibration(
    anomaly: EmbeddingAnomaly | None, checkpoint: Path, data: Mapping[str, Any], modalities: list[str]
) -> EmbeddingAnomaly:
    """The checkpoint's score for ``--anomaly-calibration``; without one, an ``InputError`` saying why."""
    from medmm.errors import InputError

    if anomaly is not None:
        return anomaly
    if IMAGE not in modalities:
        problem = "the model has no image modality, so there is no imaging anomaly threshold to calibrate"
    else:
        why = load_embedding_anomaly(checkpoint, data)[1] or "no statistics"
        problem = f"no imaging anomaly statistics to calibrate ({why.split('. Fix:')[0]})"
    raise InputError(
        str(checkpoint),
        problem,
        "leave out --anomaly-calibration, or use a model with an image modality (re-)trained with "
        "`medmm train` of this version",
    )


def _anomaly(
    checkpoint: Path, data: Mapping[str, Any], modalities: list[str], rate: float | None
) -> tuple[EmbeddingAnomaly | None, str | None]:
    """The checkpoint's imaging anomaly score (threshold re-derived for ``rate``, checked by the caller),
    or why there is none; the note also warns when its calibration scores are too few to promise the
    rate (:meth:`~medmm.models.embedding_anomaly.EmbeddingAnomaly.calibration_note`).

    A model without an image modality has no such score and needs no note.
    """
    if IMAGE not in modalities:
        return None, None
    anomaly, why = load_embedding_anomaly(checkpoint, data)
    if anomaly is None:
        return None, f"{why}; the embedding_anomaly_* columns of predictions.parquet are empty"
    anomaly = anomaly if rate is None else anomaly.with_rate(rate)
    return anomaly, anomaly.calibration_note()
