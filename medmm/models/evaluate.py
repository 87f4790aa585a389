"""``medmm evaluate``: rebuild a checkpoint's model (:func:`load_model`) and measure it on a run's
records (:func:`evaluate_checkpoint`), writing ``metrics.json`` and ``metrics.png``.

Metrics are per record: the slices of a record (``image_input.slice: all``) are combined with the
checkpoint's ``slice_aggregation`` before the metrics, so the bootstrap resamples records. The
label-free imaging anomaly score stored in the checkpoint is evaluated against the labels too
(``embedding_anomaly``). Both names are re-exported by :mod:`medmm.models.runner`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from medmm.devices import resolve_device
from medmm.errors import ConfigError, InputError
from medmm.models.build import build_model
from medmm.models.checkpoint import load_checkpoint
from medmm.models.config import TrainConfig
from medmm.models.data import MultimodalDataset
from medmm.models.embedding_anomaly import anomaly_report, load_embedding_anomaly
from medmm.models.metrics import evaluate_predictions, json_safe, undefined_metric_notes
from medmm.models.model import MultimodalModel
from medmm.models.run_inputs import (
    data_version,
    load_records,
    open_checkpoint_inputs,
    read_run_table,
)
from medmm.models.train import aggregate_by_record, make_loader, predict_loader
from medmm.tables import atomic_write_json

__all__ = ["evaluate_checkpoint", "load_model"]


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
    stores = open_checkpoint_inputs(config, meta, run_dir, records, checkpoint)
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
