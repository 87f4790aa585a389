"""Wiring of ``medmm train`` / ``medmm evaluate``: config -> records + stores -> patient splits ->
:func:`~medmm.models.train.fit` -> checkpoint (config + data version) + splits + metrics + plots.

Outputs in ``out_dir``: ``model.pt`` (or ``fold<k>/model.pt``), ``splits.parquet`` (record, patient,
split, fold), ``metrics.json`` (test metrics with bootstrap CIs, history, best epoch and
``selected_by``: ``val_loss``, or ``last_epoch`` when the validation loss is undefined - ``null`` in the
history - see :func:`medmm.models.validation.validation_loss`), ``history.png`` and ``metrics.png``.

Metrics are per record: with ``image_input.slice: all`` a record is several samples (one per slice);
their probabilities are combined (``slice_aggregation``: ``mean`` by default, or ``max``) before the
metrics, so the bootstrap resamples records, not slices. The checkpoint records the aggregation and
``evaluate`` uses it unless told otherwise.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medmm.align.records import MODALITIES
from medmm.devices import resolve_device
from medmm.errors import ConfigError, InputError
from medmm.models.build import build_model, input_shapes
from medmm.models.checkpoint import load_checkpoint, save_checkpoint
from medmm.models.config import TrainConfig
from medmm.models.data import MultimodalDataset, kfold_by_patient, label_matrix, split_by_patient
from medmm.models.embedding_anomaly import (
    DEFAULT_FALSE_ALARM_RATE,
    anomaly_report,
    fit_on_split,
    load_embedding_anomaly,
)
from medmm.models.metrics import evaluate_predictions, json_safe, undefined_metric_notes
from medmm.models.model import MultimodalModel
from medmm.models.report_inputs import report_input_meta, with_report_inputs
from medmm.models.train import (
    Predictions,
    aggregate_by_record,
    fit,
    make_loader,
    predict_loader,
    seed_everything,
)
from medmm.models.volumes import open_sources, source_kinds
from medmm.tables import atomic_write_json, read_table, write_table

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


def _record_columns() -> tuple[str, ...]:
    """Columns of ``records.parquet`` the models read."""
    per_modality = [c for m in MODALITIES for c in (f"has_{m}", f"{m}_id")]
    return ("record_id", "patient_id", "labels", *per_modality)


def read_run_table(path: Path, columns: tuple[str, ...], fix: str) -> pd.DataFrame:
    """Read a parquet table the models need; an unreadable file or missing columns is an ``InputError``.

    >>> read_run_table(Path("/nonexistent.parquet"), ("record_id",), "run `medmm align`")
    Traceback (most recent call last):
    ...
    medmm.errors.InputError: /nonexistent.parquet: not found. Fix: run `medmm align`
    """
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "not found", fix)
    try:
        frame = read_table(path)
    except Exception as exc:
        raise InputError(str(path), f"not a readable parquet table ({type(exc).__name__})", fix) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(str(path), f"lacks the column(s) {missing}", fix)
    return frame


def load_records(run_dir: Path, modalities: list[str] | None = None) -> pd.DataFrame:
    """``RUN_DIR/records.parquet`` restricted to records having at least one of ``modalities``."""
    path = Path(run_dir) / "records.parquet"
    if not path.exists():
        raise InputError(str(path), "no records table", "run `medmm align RUN_DIR` first")
    records = read_run_table(path, _record_columns(), "re-run `medmm align RUN_DIR` to write it again")
    mods = modalities or list(MODALITIES)
    keep = np.zeros(len(records), bool)
    for m in mods:
        keep |= records[f"has_{m}"].to_numpy(bool)
    return records[keep].reset_index(drop=True)


def check_labels(
    records: pd.DataFrame,
    label_names: list[str],
    where: str,
    source: str = "the training config's tasks",
    fix: str = "correct tasks[].labels",
) -> None:
    """Refuse to train on labels the records do not carry (instead of NaN metrics and a model of nothing).

    ``records`` are the rows the model would see (those with one of its modalities), ``where`` names
    their table in the message, ``source`` where the labels came from and ``fix`` the first fix offered.
    A label in no record's ``labels`` JSON, or with no known 0/1 value in any of them, is a
    :class:`~medmm.errors.ConfigError` listing the labels that are there.

    >>> rows = pd.DataFrame({"record_id": ["r1", "r2"], "labels": ['{"pvc": 1}', '{"pvc": 0}']})
    >>> check_labels(rows, ["pvc"], "records.parquet")
    >>> try:
    ...     check_labels(rows, ["pneumonia"], "records.parquet")
    ... except ConfigError as exc:
    ...     print(str(exc)[:60])
    label(s) ['pneumonia'] of the training config's tasks are in
    """
    import json

    present: set[str] = set()
    for rid, text in zip(records["record_id"].tolist(), records["labels"].tolist(), strict=True):
        values = json.loads(text or "{}")
        present.update(values)
        bad = {n: values[n] for n in label_names if values.get(n) not in (0, 1, None)}
        if bad:
            raise ConfigError(
                f"record {rid} of {where} has label values {bad}; labels must be 0, 1 or null. Fix: "
                "re-run `medmm align`, or correct the labels JSON of the records table"
            )
    there = sorted(present)
    missing = [n for n in label_names if n not in present]
    if missing:
        raise ConfigError(
            f"label(s) {missing} of {source} are in none of the {len(records)} records "
            f"of {where} (labels there: {there}). Fix: {fix}, or re-run `medmm align` "
            "with --label-finding / --pvc-label for them"
        )
    y = label_matrix(records, label_names)
    unknown = [n for j, n in enumerate(label_names) if np.isnan(y[:, j]).all()]
    if unknown:
        raise ConfigError(
            f"label(s) {unknown} of {source} have no known 0/1 value in the {len(records)} records of "
            f"{where} (all null). Fix: {fix}, or use a modality whose records carry them"
        )


def report_vocabulary(run_dir: Path) -> list[str] | None:
    """The finding vocabulary ``medmm align`` wrote for the report inputs (``None`` if there is none)."""
    import json

    path = Path(run_dir) / "inputs" / "report" / "vocabulary.json"
    return list(json.loads(path.read_text())) if path.exists() else None


def check_inputs_match(meta: dict[str, Any], stores: dict[str, Any], run_dir: Path, checkpoint: Path) -> None:
    """Refuse inputs the checkpoint's encoders cannot read as they were trained (instead of a torch
    shape error, or silently wrong scores when only the order of the report vocabulary differs).

    Compares each opened modality's item shape and feature count with ``meta["input_shapes"]`` and, when
    the checkpoint recorded it, the report finding vocabulary with ``RUN_DIR/inputs/report``'s.
    """
    for m, store in stores.items():
        if getattr(store, "kind", "") == "absent" or m not in meta["input_shapes"]:
            continue
        want = meta["input_shapes"][m]
        have = {"shape": list(store.item_shape), "n_features": store.n_features}
        if have != want:
            raise InputError(
                str(Path(run_dir) / "inputs" / m),
                f"{m} items have shape {have['shape']} with {have['n_features']} extra features, but the "
                f"model {checkpoint} was trained on shape {want['shape']} with {want['n_features']}",
                "align this run with the training run's settings (e.g. the same --image-size; the report "
                "vector is as long as the run's finding vocabulary), or train a model on this run",
            )
    trained = meta.get("report_vocabulary")
    here = report_vocabulary(run_dir) if "report" in stores else None
    report_open = "report" in stores and getattr(stores["report"], "kind", "") != "absent"
    if report_open and trained is not None and here is not None and trained != here:
        extra, lost = sorted(set(here) - set(trained)), sorted(set(trained) - set(here))
        raise InputError(
            str(Path(run_dir) / "inputs" / "report" / "vocabulary.json"),
            f"the report finding vocabulary differs from the one {checkpoint} was trained on (only here: "
            f"{extra}, only there: {lost}, or another order), so report vectors would be misread",
            "score with a model trained on this run (`medmm align` builds the vocabulary from the run's "
            "findings), or drop the report modality when training",
        )


def data_version(records: pd.DataFrame, stores: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of the records table content and of each modality's input arrays."""
    rows = pd.util.hash_pandas_object(records, index=False).to_numpy().tobytes()
    out = {"records_sha256": hashlib.sha256(rows).hexdigest()}
    out.update({f"{m}_inputs_sha256": s.digest() for m, s in stores.items()})
    return out


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


def load_model(
    checkpoint: Path, device: torch.device | None = None, data: Mapping[str, Any] | None = None
) -> tuple[MultimodalModel, TrainConfig, dict[str, Any]]:
    """Rebuild the model of a checkpoint (loaded with ``weights_only=True``) in eval mode on ``device``.

    The tensors are read onto the CPU whatever device they were saved from (a checkpoint written on a
    GPU machine loads on a CPU-only one), then the model is moved to ``device`` (default: the CPU).
    ``data``: the checkpoint already loaded by :func:`~medmm.models.checkpoint.load_checkpoint` (then
    the file is not read again).
    """
    from pydantic import ValidationError

    if data is None:
        data = load_checkpoint(checkpoint)
    meta = data["meta"]
    fix = "re-run `medmm train` (the checkpoint was edited, or written by another medmm version)"
    missing = [k for k in ("config", "input_shapes", "label_names", "modalities") if k not in meta]
    if missing:
        raise InputError(str(checkpoint), f"checkpoint metadata lacks {missing}", fix)
    try:
        config = TrainConfig.model_validate(meta["config"])
        model = build_model(config, meta["input_shapes"])
        model.load_state_dict(data["state_dict"])
    except (ValidationError, ConfigError, RuntimeError, KeyError, TypeError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = " ".join(lines[:2])[:240] or type(exc).__name__
        raise InputError(
            str(checkpoint), f"weights do not match the model its metadata describes ({first})", fix
        ) from None
    model.eval()
    if device is not None:
        model.to(device)
    return model, config, meta


def evaluate_checkpoint(
    checkpoint: Path,
    run_dir: Path,
    out_dir: Path,
    split: str = "test",
    drop: tuple[str, ...] = (),
    slice_aggregation: str | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Metrics (with CIs) of a checkpoint on ``run_dir``'s records; writes ``metrics.json`` + PNG.

    ``split`` selects rows by the ``splits.parquet`` next to the checkpoint (``all`` = every record).
    Metrics are per record: the slices of a record (``image_input.slice: all``) are combined first with
    ``slice_aggregation`` (default: the checkpoint's, else ``mean``), so ``n`` counts records and
    ``n_samples`` the samples scored. ``device``: where the model runs (``auto`` by default,
    :func:`medmm.devices.resolve_device`).
    """
    from medmm.models.plots import plot_metrics

    dev = resolve_device(device, source="device")

    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise InputError(str(out_dir), "--out is a file", "pass a folder for metrics.json and metrics.png")
    if split not in ("train", "val", "test", "all"):
        raise ConfigError(
            f"split {split!r} is not a split of this checkpoint. Fix: pass --split train, val or test "
            "(the checkpoint's own splits) or all"
        )
    data = load_checkpoint(checkpoint)  # read once: the model and the anomaly statistics
    model, config, meta = load_model(checkpoint, dev, data)
    mods = meta["modalities"]
    unknown = [d for d in drop if d not in mods]
    if unknown:
        raise ConfigError(f"--drop {unknown}: not a modality of this model. Fix: drop one of {mods}")
    if set(drop) >= set(mods):
        raise ConfigError(
            f"--drop {list(drop)} hides every modality of this model ({mods}). Fix: keep at least one"
        )
    records = load_records(run_dir, [m for m in mods if m not in drop])
    where = f"{Path(run_dir) / 'records.parquet'} (records with {'/'.join(m for m in mods if m not in drop)})"
    if split != "all":
        splits_path = Path(checkpoint).parent / "splits.parquet"
        if not splits_path.exists():
            splits_path = Path(checkpoint).parent.parent / "splits.parquet"
        if not splits_path.exists():
            raise InputError(
                str(Path(checkpoint).parent / "splits.parquet"),
                "no splits table next to the checkpoint",
                "keep the splits.parquet `medmm train` wrote next to model.pt, or use --split all",
            )
        sp = read_run_table(
            splits_path, ("record_id", "split", "fold"), "re-run `medmm train`, or use --split all"
        )
        sp = sp[(sp["split"] == split) & (sp["fold"] == meta.get("fold", 0))]
        records = records[records["record_id"].isin(sp["record_id"])]
        where = f"the {split} split of {splits_path} in {where}"
    if records.empty:
        raise InputError(
            where,
            "no record to evaluate",
            "evaluate the run the model was trained on, choose another --split (or all), or drop fewer "
            "modalities",
        )
    kind = meta.get("input_sources", {}).get("image", "arrays")  # older checkpoints: arrays
    stores = open_sources(config, run_dir, mods, records, kind, absent_ok=True)
    stores = with_report_inputs(config, run_dir, stores, records, meta)
    check_inputs_match(meta, stores, run_dir, checkpoint)
    ds = MultimodalDataset(records, stores, meta["label_names"], drop=drop)
    how = slice_aggregation or meta.get("slice_aggregation", "mean")
    loader = make_loader(ds, config.train.batch_size, False, 0, dev)
    pred = aggregate_by_record(predict_loader(model, loader, dev), how)
    metrics = evaluate_predictions(pred.labels, pred.probs, meta["label_names"], config.train.n_boot)
    notes = undefined_metric_notes(pred.labels, meta["label_names"], f"the {split} set", metrics)
    result = {
        "checkpoint": str(checkpoint),
        "split": split,
        "dropped": list(drop),
        "n": len(pred.record_ids),
        "n_samples": len(ds),
        "slice_aggregation": how,
        "device": str(dev),
        "data_version": data_version(records, stores),
        "metrics": metrics,
        "notes": notes,
        "embedding_anomaly": _anomaly_section(checkpoint, data, model, config, records, stores, drop, dev),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", json_safe(result))
    plot_metrics(metrics, out_dir / "metrics.png", title=f"{config.fusion} on {split}")
    return result


def _anomaly_section(
    checkpoint: Path,
    data: Mapping[str, Any],
    model: MultimodalModel,
    config: TrainConfig,
    records: pd.DataFrame,
    stores: dict[str, Any],
    drop: tuple[str, ...],
    dev: torch.device,
) -> dict[str, Any]:
    """``metrics.json``'s ``embedding_anomaly``: the label-free score's AUROC against the labels (with
    CIs), or a note saying why there is none (an older checkpoint, a model without an image, --drop)."""
    anomaly, why = load_embedding_anomaly(checkpoint, data)
    if anomaly is None:
        return {"note": why}
    if "image" in drop:
        return {"note": "--drop image hides what the imaging anomaly score reads: not evaluated"}
    return anomaly_report(
        anomaly,
        model,
        records,
        stores,
        data["meta"]["label_names"],
        batch_size=config.train.batch_size,
        device=dev,
        n_boot=config.train.n_boot,
    )
