"""Wiring of ``medmm train``: config -> records + stores -> patient splits ->
:func:`~medmm.models.train.fit` -> checkpoint (config + data version) + splits + metrics + plots.

Outputs in ``out_dir``: ``model.pt`` (or ``fold<k>/model.pt``), ``splits.parquet`` (record, patient,
split, fold), ``metrics.json`` (test metrics with bootstrap CIs, history, best epoch and
``selected_by``: ``val_loss``, or ``last_epoch`` when the validation loss is undefined - ``null`` in the
history - see :func:`medmm.models.validation.validation_loss`), ``history.png`` and ``metrics.png``.

Metrics are per record: with ``image_input.slice: all`` a record is several samples (one per slice);
their probabilities are combined (``slice_aggregation``: ``mean`` by default, or ``max``) before the
metrics, so the bootstrap resamples records, not slices. The checkpoint records the aggregation and
``evaluate`` uses it unless told otherwise.

``medmm evaluate`` (:func:`evaluate_checkpoint`, :func:`load_model`) lives in
:mod:`medmm.models.evaluate`, and reading and checking a run's tables (:func:`load_records`,
:func:`read_run_table`, :func:`check_labels`, :func:`check_inputs_match`, :func:`report_vocabulary`,
:func:`data_version`) in :mod:`medmm.models.run_inputs`; all are importable from here too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medmm.devices import resolve_device
from medmm.errors import ConfigError, InputError
from medmm.models.build import build_model, input_shapes
from medmm.models.checkpoint import save_checkpoint
from medmm.models.config import TrainConfig
from medmm.models.data import MultimodalDataset, kfold_by_patient, split_by_patient
from medmm.models.embedding_anomaly import DEFAULT_FALSE_ALARM_RATE, anomaly_report, fit_on_split
from medmm.models.evaluate import evaluate_checkpoint, load_model
from medmm.models.metrics import evaluate_predictions, json_safe, undefined_metric_notes
from medmm.models.report_inputs import report_input_meta, with_report_inputs
from medmm.models.run_inputs import _record_columns as _record_columns  # medmm.predict imports it here
from medmm.models.run_inputs import (
    check_inputs_match,
    check_labels,
    data_version,
    load_records,
    read_run_table,
    report_vocabulary,
)
from medmm.models.train import (
    Predictions,
    aggregate_by_record,
    fit,
    make_loader,
    predict_loader,
    seed_everything,
)
from medmm.models.volumes import open_sources, source_kinds
from medmm.tables import atomic_write_json, write_table

__all__ = [
    "check_inputs_match",
    "check_labels",
    "data_version",
    "evaluate_checkpoint",
    "load_model",
    "load_records",
    "read_run_table",
    "report_vocabulary",
    "train_from_config",
]

log = logging.getLogger(__name__)


def _split(config: TrainConfig, records: pd.DataFrame) -> list[pd.DataFrame]:
    tc = config.train
    pids = records["patient_id"].tolist()
    if tc.folds > 1:
        frames = []
        for k, (train_idx, test_idx) in enumerate(kfold_by_patient(pids, tc.folds, tc.seed)):
            split = np.full(len(records), "train", dtype=object)
            split[test_idx] = "test"
            inner = split_by_patient(
                [pids[i] for i in train_idx], (1 - tc.val_fraction, tc.val_fraction, 0.0), tc.seed
            )
            split[train_idx] = inner
            frames.append(
                pd.DataFrame(
                    {"record_id": records["record_id"], "patient_id": pids, "split": split, "fold": k}
                )
            )
        return frames
    train_frac = 1 - tc.val_fraction - tc.test_fraction
    split = split_by_patient(pids, (train_frac, tc.val_fraction, tc.test_fraction), tc.seed)
    return [pd.DataFrame({"record_id": records["record_id"], "patient_id": pids, "split": split, "fold": 0})]


def _empty_split_notes(
    config: TrainConfig, part: dict[str, pd.DataFrame], fold: int, n_folds: int, n_patients: int
) -> list[str]:
    """Warnings for a train / val / test split left empty by too few patients (training still runs)."""
    where = f"fold {fold}: " if n_folds > 1 else ""
    size = f"the records have {n_patients} patient(s)"
    if part["train"].empty:
        raise ConfigError(
            f"{where}the train split is empty ({size}). Fix: use a run with more patients, lower "
            "train.val_fraction / train.test_fraction, or check splits_file"
        )
    out = []
    if part["val"].empty and (config.train.val_fraction > 0 or config.splits_file is not None):
        out.append(
            f"{where}the val split is empty ({size}): no validation loss, so no early stopping and the last "
            "epoch is kept"
        )
    if part["test"].empty and (config.train.test_fraction > 0 or n_folds > 1 or config.splits_file):
        out.append(
            f"{where}the test split is empty ({size}): no test metrics. Fix: more patients, or "
            "`medmm evaluate --split all` on another run"
        )
    return out


def train_from_config(
    config: TrainConfig,
    splits: pd.DataFrame | None = None,
    slice_aggregation: str = "mean",
    *,
    device: str | torch.device | None = None,
    anomaly_rate: float = DEFAULT_FALSE_ALARM_RATE,
) -> dict[str, Any]:
    """Train (one split or k folds) and write checkpoint(s), splits, metrics and plots.

    After each fold's training, the label-free imaging anomaly score
    (:mod:`medmm.models.embedding_anomaly`) is fitted on that fold's training records and its threshold
    calibrated on its validation records for the false-alarm rate ``anomaly_rate``; both go into the
    checkpoint, and its test AUROC against the labels into ``metrics.json`` (``folds[].embedding_anomaly``).

    ``splits`` (``record_id``, ``split``, ``fold``) overrides the config's seeded split, so several
    models can be compared on exactly the same rows. ``slice_aggregation`` (``mean`` | ``max``) combines
    the slices of a record (``image_input.slice: all``) before the test metrics; it is stored in the
    checkpoint. ``device`` overrides ``train.device`` (:func:`medmm.devices.resolve_device`; checked
    before any data is read). Returns the metrics summary (``device``: where it trained). Refused
    (:class:`~medmm.errors.ConfigError`) while a ``medmm run`` rewrites ``run_dir``.
    """
    from medmm.models.plots import plot_history, plot_metrics
    from medmm.workflows.lock import refuse_while_running

    refuse_while_running(config.run_dir)  # a nightly `medmm run` rewriting it: its tables mix two nights
    if device is None:
        dev = resolve_device(config.train.device, source="train.device")
    else:
        dev = resolve_device(device, source="device")
    out_dir = config.output_dir()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(str(out_dir), "out_dir (--out) is a file", "pass a folder for model.pt and metrics")
    out_dir.mkdir(parents=True, exist_ok=True)
    mods = list(config.modalities)
    records = load_records(config.run_dir, mods)
    where = str(Path(config.run_dir) / "records.parquet")
    if records.empty:
        raise InputError(
            where,
            f"no record has any of the model's modalities {mods}",
            "align the stage outputs of those modalities first (`medmm align RUN_DIR`), or configure "
            "`modalities` that this run has",
        )
    absent = [m for m in mods if not records[f"has_{m}"].to_numpy(bool).any()]
    if absent:
        raise ConfigError(
            f"modalities {absent} of the training config are in none of the {len(records)} records of "
            f"{where}. Fix: remove them from `modalities` (a model can only learn what the records have), "
            "or align their stage outputs into the run first"
        )
    check_labels(records, config.label_names(), f"{where} with {'/'.join(mods)}")
    stores = open_sources(config, config.run_dir, mods, records)
    stores = with_report_inputs(config, config.run_dir, stores, records)
    version = data_version(records, stores)
    shapes = input_shapes(stores)
    labels = config.label_names()
    if splits is None and config.splits_file is not None:
        if not Path(config.splits_file).exists():
            raise InputError(
                str(config.splits_file), "splits file not found", "fix `splits_file` in the config"
            )
        splits = read_run_table(
            config.splits_file,
            ("record_id", "split"),
            "fix `splits_file` in the config (columns record_id, split and optionally fold)",
        )
        if "fold" not in splits.columns:
            splits = splits.assign(fold=0)
        splits = splits[splits["record_id"].isin(records["record_id"])]
        if splits.empty:
            raise InputError(
                str(config.splits_file),
                f"none of its record_id values is a record of {where}",
                "use the splits file made for this run (or leave `splits_file` out for a seeded split)",
            )
    folds = _split(config, records) if splits is None else [g for _, g in splits.groupby("fold")]
    write_table(pd.concat(folds, ignore_index=True), out_dir / "splits.parquet")
    summary: dict[str, Any] = {
        "config": config.model_dump(mode="json"),
        "data_version": version,
        "device": str(dev),
        "folds": [],
    }
    notes: list[str] = []
    n_patients = records["patient_id"].nunique()
    all_pred: list[Predictions] = []
    for k, split in enumerate(folds):
        by_id = split.set_index("record_id")["split"]
        part = {s: records[records["record_id"].map(by_id) == s] for s in ("train", "val", "test")}
        notes.extend(_empty_split_notes(config, part, k, len(folds), n_patients))
        seed_everything(config.train.seed + k)
        model = build_model(config, shapes)
        res = fit(
            model,
            config,
            MultimodalDataset(part["train"], stores, labels, augment=True),
            MultimodalDataset(part["val"], stores, labels) if len(part["val"]) else None,
            device=dev,
            warn=False,  # returned in the summary's notes instead (`medmm train` prints them)
        )
        notes.extend(f"fold {k}: {n}" if len(folds) > 1 else n for n in res.notes)
        fold_dir = out_dir if len(folds) == 1 else out_dir / f"fold{k}"
        meta = {
            "config": config.model_dump(mode="json"),
            "data_version": version,
            "input_shapes": shapes,
            "label_names": labels,
            "modalities": mods,
            "input_sources": source_kinds(stores),
            "best_epoch": res.best_epoch,
            "selected_by": res.selected_by,
            "fold": k,
            "task_weights": res.task_weights,
            "slice_aggregation": slice_aggregation,
            "report_vocabulary": report_vocabulary(config.run_dir) if "report" in mods else None,
            "report_inputs": report_input_meta(config, stores),
        }
        anomaly, why = fit_on_split(
            res.model,
            part["train"],
            part["val"],
            stores,
            batch_size=config.train.batch_size,
            device=dev,
            aggregation=slice_aggregation,
            rate=anomaly_rate,
            seed=config.train.seed + k,
        )
        meta["embedding_anomaly"] = anomaly.summary() if anomaly is not None else {"note": why}
        if anomaly is not None and (weak := anomaly.calibration_note()):  # the rate is not promised
            notes.append(f"fold {k}: {weak}" if len(folds) > 1 else weak)
        extra = {"embedding_anomaly": anomaly.to_state()} if anomaly is not None else None
        save_checkpoint(fold_dir / "model.pt", res.model.state_dict(), meta, extra)
        fold_info: dict[str, Any] = {
            "fold": k,
            "best_epoch": res.best_epoch,
            "selected_by": res.selected_by,
            "history": res.history,
            "n": {s: len(v) for s, v in part.items()},
            "embedding_anomaly": meta["embedding_anomaly"],  # the fit, or why there is none
        }
        if len(part["test"]):
            test_set = MultimodalDataset(part["test"], stores, labels)
            pred = aggregate_by_record(
                predict_loader(res.model, make_loader(test_set, config.train.batch_size, False, 0, dev), dev),
                slice_aggregation,
            )
            all_pred.append(pred)
            fold_info["test"] = evaluate_predictions(
                pred.labels, pred.probs, labels, config.train.n_boot, config.train.seed
            )
            if anomaly is not None:  # labels only to evaluate the label-free score
                fold_info["embedding_anomaly"] = anomaly_report(  # fit + test metrics
                    anomaly,
                    res.model,
                    part["test"],
                    stores,
                    labels,
                    batch_size=config.train.batch_size,
                    device=dev,
                    n_boot=config.train.n_boot,
                    seed=config.train.seed,
                )
        summary["folds"].append(fold_info)
        plot_history(res.history, fold_dir / "history.png")
    if all_pred:
        y = np.concatenate([p.labels for p in all_pred])
        prob = np.concatenate([p.probs for p in all_pred])
        summary["test"] = evaluate_predictions(y, prob, labels, config.train.n_boot, config.train.seed)
        notes.extend(undefined_metric_notes(y, labels, "the test set", summary["test"]))
        plot_metrics(
            summary["test"], out_dir / "metrics.png", title=f"{config.fusion}: test metrics (95% CI)"
        )
    summary["notes"] = notes  # `medmm train` prints them as warnings
    atomic_write_json(out_dir / "metrics.json", json_safe(summary))
    return summary
