"""Training loop: seeded and deterministic, AMP on GPU with a clean CPU fallback, early stopping,
an LR schedule, modality dropout, and multi-task losses.

:func:`fit` trains one model on given train/val rows; :func:`predict_loader` runs inference (one row
per sample); :func:`aggregate_by_record` turns per-sample outputs into one row per record (a record is
several samples with ``image_input.slice: all``); :mod:`medmm.models.runner` wires these to configs,
splits, checkpoints and k-fold.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from medmm.models.config import TrainConfig
from medmm.models.data import Batch, MultimodalDataset, collate_records
from medmm.models.fusion import modality_dropout
from medmm.models.losses import MultiTaskLoss, masked_bce
from medmm.models.model import MultimodalModel

__all__ = [
    "SLICE_AGGREGATIONS",
    "FitResult",
    "Predictions",
    "aggregate_by_record",
    "fit",
    "make_loader",
    "predict_loader",
    "resolve_device",
    "seed_everything",
]

log = logging.getLogger(__name__)

#: How the samples (slices) of one record are combined: ``mean`` (default) or ``max`` of probabilities.
SLICE_AGGREGATIONS = ("mean", "max")


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; ask torch for deterministic kernels where they exist."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic GEMMs; only read before CUDA initialises
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        log.warning("CUDA requested but not available; training on CPU")
        return torch.device("cpu")
    return torch.device(name)


def make_loader(dataset: MultimodalDataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """A single-process loader with a seeded shuffle."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate_records
    )


@dataclass
class FitResult:
    """The best model (by validation loss), its epoch, per-epoch history and the task weights."""

    model: MultimodalModel
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    task_weights: dict[str, float] = field(default_factory=dict)


@dataclass
class Predictions:
    """Per-row probabilities ``[N, L]``, labels ``[N, L]`` and modality weights ``[N, M]`` (or None).

    A row is a sample (:func:`predict_loader`) or a record (:func:`aggregate_by_record`, which sets
    ``n_samples``, the number of samples combined into each row).
    """

    record_ids: list[str]
    probs: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None
    n_samples: np.ndarray | None = None


def _task_losses(model: MultimodalModel, out: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    losses, start = {}, 0
    for t in model.tasks:
        n = len(t.labels)
        losses[t.name] = masked_bce(out.logits[t.name], labels[:, start : start + n])
        start += n
    return losses


def _forward(model: MultimodalModel, batch: Batch, device: torch.device, amp: bool) -> Any:
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        return model(batch.inputs, batch.index, batch.mask, batch.features)


def _evaluate_loss(model: MultimodalModel, loader: DataLoader, device: torch.device, amp: bool) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            losses = _task_losses(model, _forward(model, batch, device, amp), batch.labels)
            total += float(sum(losses.values())) * len(batch.record_ids)
            n += len(batch.record_ids)
    return total / max(n, 1)


def fit(
    model: MultimodalModel,
    config: TrainConfig,
    train_set: MultimodalDataset,
    val_set: MultimodalDataset | None,
) -> FitResult:
    """Train ``model``; keeps the weights of the epoch with the lowest validation loss.

    Mixed precision (bfloat16 autocast) is used only on CUDA when ``train.amp`` is set.
    """
    tc = config.train
    seed_everything(tc.seed, tc.deterministic)
    device = resolve_device(tc.device)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    amp = tc.amp and device.type == "cuda"
    model.to(device)
    criterion = MultiTaskLoss(
        [t.name for t in config.tasks], config.loss.weighting, {t.name: t.weight for t in config.tasks}
    ).to(device)
    params = list(model.parameters()) + [p for p in criterion.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    sched: Any
    if tc.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=tc.epochs)
    elif tc.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, tc.patience // 2))
    else:
        sched = None
    train_loader = make_loader(train_set, tc.batch_size, True, tc.seed)
    val_loader = (
        make_loader(val_set, tc.batch_size, False, tc.seed) if val_set is not None and len(val_set) else None
    )
    drop_gen = torch.Generator().manual_seed(tc.seed + 1)
    best, best_epoch, best_state, stale = math.inf, 0, copy.deepcopy(model.state_dict()), 0
    history: list[dict[str, float]] = []
    bar = _progress(range(1, tc.epochs + 1), tc.progress)
    for epoch in bar:
        model.train()
        total, n = 0.0, 0
        for batch in train_loader:
            batch = batch.to(device)
            if tc.modality_dropout > 0:
                batch = _drop(batch, model.modalities, tc.modality_dropout, drop_gen)
            opt.zero_grad(set_to_none=True)
            losses = _task_losses(model, _forward(model, batch, device, amp), batch.labels)
            loss = criterion(losses)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch.record_ids)
            n += len(batch.record_ids)
        train_loss = total / max(n, 1)
        val_loss = _evaluate_loss(model, val_loader, device, amp) if val_loader else train_loss
        lr = opt.param_groups[0]["lr"]
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(val_loss)
        elif sched is not None:
            sched.step()
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr})
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
        if val_loss < best - 1e-6:
            best, best_epoch, best_state, stale = val_loss, epoch, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= tc.patience and epoch < tc.epochs:
                log.info("early stopping at epoch %d (best %d)", epoch, best_epoch)
                break
    model.load_state_dict(best_state)
    return FitResult(model, best_epoch, history, criterion.task_weights())


def _drop(batch: Batch, modalities: Sequence[str], p: float, gen: torch.Generator) -> Batch:
    """Apply seeded modality dropout: hide modalities in the mask and remove their items."""
    new_mask = modality_dropout(batch.mask.cpu(), p, gen).to(batch.mask.device)
    inputs, index, features = {}, {}, {}
    for m, x in batch.inputs.items():
        keep = new_mask[batch.index[m], list(modalities).index(m)]
        inputs[m], index[m] = x[keep], batch.index[m][keep]
        if m in batch.features:
            features[m] = batch.features[m][keep]
    return Batch(inputs, index, features, new_mask, batch.labels, batch.record_ids)


def predict_loader(
    model: MultimodalModel, loader: DataLoader, device: torch.device | None = None
) -> Predictions:
    """Probabilities (sigmoid of logits) for every record of ``loader``, in order."""
    device = device or next(model.parameters()).device
    model.eval()
    ids: list[str] = []
    probs, labels, weights = [], [], []
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            out = model(batch.inputs, batch.index, batch.mask, batch.features)
            probs.append(torch.cat([torch.sigmoid(out.logits[t.name].float()) for t in model.tasks], 1).cpu())
            labels.append(batch.labels.cpu())
            if out.weights is not None:
                weights.append(out.weights.float().cpu())
            ids.extend(batch.record_ids)
    return Predictions(
        ids,
        torch.cat(probs).numpy(),
        torch.cat(labels).numpy(),
        torch.cat(weights).numpy() if weights else None,
    )


def aggregate_by_record(pred: Predictions, how: str = "mean") -> Predictions:
    """One row per record, in order of first appearance: the record's samples (the slices of its volume
    with ``image_input.slice: all``) combined.

    Probabilities are the ``mean`` (default) or ``max`` over the record's samples; labels are the
    record's (every sample carries them); modality weights are averaged. Records with one sample keep
    their values, so this is the identity when no record repeats.

    Parameters
    ----------
    pred
        Per-sample predictions from :func:`predict_loader`.
    how
        One of :data:`SLICE_AGGREGATIONS`.

    Examples
    --------
    >>> p = Predictions(["a", "b", "a"], np.array([[0.2], [0.9], [0.6]]), np.array([[1.0], [0.0], [1.0]]),
    ...                 None)
    >>> agg = aggregate_by_record(p)
    >>> agg.record_ids, agg.probs[:, 0].round(2).tolist(), agg.n_samples.tolist()
    (['a', 'b'], [0.4, 0.9], [2, 1])
    >>> aggregate_by_record(p, "max").probs[:, 0].tolist()
    [0.6, 0.9]
    """
    from medmm.errors import ConfigError

    if how not in SLICE_AGGREGATIONS:
        raise ConfigError(f"unknown slice aggregation {how!r}; choose one of {list(SLICE_AGGREGATIONS)}")
    ids = np.asarray(pred.record_ids, dtype=object)
    if len(ids) == 0:
        return Predictions([], pred.probs, pred.labels, pred.weights, np.zeros(0, dtype=np.int64))
    _, first, inverse, counts = np.unique(ids, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(first, kind="stable")  # groups in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[np.ravel(inverse)]
    n = counts[order]

    def mean(x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(order), x.shape[1]), dtype=np.float64)
        np.add.at(out, group, x)
        return (out / n[:, None]).astype(x.dtype)

    if how == "mean":
        probs = mean(pred.probs)
    else:
        probs = np.full((len(order), pred.probs.shape[1]), -np.inf, dtype=pred.probs.dtype)
        np.maximum.at(probs, group, pred.probs)
    return Predictions(
        [str(i) for i in ids[first[order]]],
        probs,
        pred.labels[first[order]],
        mean(pred.weights) if pred.weights is not None else None,
        n.astype(np.int64),
    )


def _progress(it: Sequence[int] | range, enabled: bool) -> Any:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc="epochs", leave=False)
