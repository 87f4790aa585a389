"""Training loop: seeded and deterministic, AMP on GPU with a clean CPU fallback, early stopping,
an LR schedule, modality dropout, and multi-task losses.

:func:`fit` trains one model on given train/val rows; :func:`predict_loader` runs inference (one row
per sample); :func:`aggregate_by_record` turns per-sample outputs into one row per record (a record is
several samples with ``image_input.slice: all``); :mod:`medmm.models.runner` wires these to configs,
splits, checkpoints and k-fold.

Devices (:mod:`medmm.devices`): ``train.device`` is resolved by :func:`medmm.devices.resolve_device`
(``auto`` = the GPU when there is one); batches are built on the host (pinned when the device is a GPU),
modality dropout is applied there, and so are the checks that read data (every sample has a modality;
which labels are known), then they are copied with ``non_blocking``; the loss is summed on the device
and read back once per epoch: the step itself reads nothing back from the GPU (except the inf check
of float16's gradient scaler). Mixed precision follows :func:`medmm.devices.autocast_dtype` (bfloat16, or
float16 with a :class:`torch.amp.GradScaler` on GPUs without bfloat16; float32 on the CPU) unless
``fit(..., amp_dtype=...)`` forces a dtype, which also works on the CPU.

Validation loss (:func:`medmm.models.validation.validation_loss`): per task, the mean binary cross-entropy
over every known label of the validation rows (pooled over the whole split, not per batch), combined like
the training loss (the ``tasks[].weight`` sum) from the tasks that have a known validation label, the others
counted at their weighted mean. It is *undefined* (``None``; ``null`` in ``metrics.json``) when no task has
one - no val split, or a val split whose records carry none of the tasks' labels. Then there is nothing to
select on: early stopping is off, ``schedule: plateau`` keeps the learning rate, and the last epoch is kept
(``best_epoch == epochs``); :func:`fit` warns, naming the tasks and the fix, when the val split is there but
unlabelled.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from medmm.devices import (
    autocast_dtype,
    deterministic_kernels,
    needs_grad_scaler,
    pin_memory_for,
    resolve_device,
)
from medmm.models.config import TrainConfig
from medmm.models.data import Batch, MultimodalDataset, collate_records
from medmm.models.fusion import check_mask, modality_dropout
from medmm.models.losses import MultiTaskLoss, known_targets, masked_bce
from medmm.models.model import MultimodalModel
from medmm.models.validation import unlabelled_notes, validation_loss

__all__ = [
    "SLICE_AGGREGATIONS",
    "FitResult",
    "Predictions",
    "aggregate_by_record",
    "fit",
    "make_loader",
    "predict_loader",
    "seed_everything",
]

log = logging.getLogger(__name__)

#: How the samples (slices) of one record are combined: ``mean`` (default) or ``max`` of probabilities.
SLICE_AGGREGATIONS = ("mean", "max")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch's global generators (weight init reads torch's).

    Deterministic kernels are a separate setting, applied only while :func:`fit` trains
    (:func:`medmm.devices.deterministic_kernels`), so nothing global is left switched on.

    >>> seed_everything(0); a = torch.rand(1); seed_everything(0)
    >>> bool(torch.equal(a, torch.rand(1)))
    True
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_loader(
    dataset: MultimodalDataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    device: torch.device | None = None,
) -> DataLoader:
    """A single-process loader of :class:`~medmm.models.data.Batch` es with a seeded shuffle.

    For a GPU ``device`` the loader pins each batch (torch's ``pin_memory=True``, which calls
    :meth:`Batch.pin_memory <medmm.models.data.Batch.pin_memory>`) so that the copy to the GPU can be
    asynchronous; for the CPU (or no device) it does not: pinning needs an accelerator and buys nothing
    there (:func:`medmm.devices.pin_memory_for`).

    >>> make_loader([], 8, False, 0, torch.device("cpu")).pin_memory  # type: ignore[arg-type]
    False
    >>> make_loader([], 8, False, 0, torch.device("cuda")).pin_memory  # type: ignore[arg-type]
    True
    """
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen,
        collate_fn=collate_records,
        pin_memory=device is not None and pin_memory_for(device),
    )


def _to_device(batch: Batch, model: MultimodalModel, device: torch.device) -> Batch:
    """Check the host batch's availability mask, then copy the batch to ``device``.

    The mask is read here, on the host, for free; on a GPU :func:`~medmm.models.fusion.check_mask`
    checks only its shape (reading it there would stall every step). Host -> GPU copies are
    ``non_blocking`` (asynchronous from the pinned batches of :func:`make_loader`).
    """
    check_mask(batch.mask, model.modalities)
    return batch.to(device, non_blocking=device.type == "cuda")


def _known_labels(
    model: MultimodalModel, labels: torch.Tensor, device: torch.device
) -> dict[str, torch.Tensor]:
    """Per task, the flat indices of the known labels of the host ``labels`` (:func:`known_targets`),
    on ``device``: the loss then selects them without reading GPU memory."""
    known, start = {}, 0
    for t in model.tasks:
        n = len(t.labels)
        idx = known_targets(labels[:, start : start + n])
        known[t.name] = idx.to(device, non_blocking=device.type == "cuda")
        start += n
    return known


@dataclass
class FitResult:
    """The kept model, its epoch, per-epoch history, the task weights and warnings.

    ``selected_by`` says how ``best_epoch`` was chosen: ``"val_loss"`` (the lowest validation loss) or
    ``"last_epoch"`` (no validation loss: no val split, or no known validation label; see
    :func:`~medmm.models.validation.validation_loss`). ``notes`` are the warnings about it (empty when all is
    well).
    """

    model: MultimodalModel
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    task_weights: dict[str, float] = field(default_factory=dict)
    selected_by: str = "val_loss"
    notes: list[str] = field(default_factory=list)


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


def _task_losses(
    model: MultimodalModel, out: Any, labels: torch.Tensor, known: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    losses, start = {}, 0
    for t in model.tasks:
        n = len(t.labels)
        losses[t.name] = masked_bce(out.logits[t.name], labels[:, start : start + n], known=known[t.name])
        start += n
    return losses


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``'s type (CUDA or CPU); no autocast when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _forward(model: MultimodalModel, batch: Batch, device: torch.device, dtype: torch.dtype | None) -> Any:
    with _autocast(device, dtype):
        return model(batch.inputs, batch.index, batch.mask, batch.features)


def _evaluate_loss(
    model: MultimodalModel,
    loader: DataLoader,
    device: torch.device,
    dtype: torch.dtype | None,
    weights: dict[str, float] | None = None,
) -> float | None:
    """The :func:`~medmm.models.validation.validation_loss` of ``model`` on ``loader`` (``None``: no
    known label in it)."""
    return validation_loss(_evaluate_task_losses(model, loader, device, dtype)[0], weights)


def _evaluate_task_losses(
    model: MultimodalModel, loader: DataLoader, device: torch.device, dtype: torch.dtype | None
) -> tuple[dict[str, float | None], dict[str, int]]:
    """Per task, the mean BCE over all known labels of ``loader`` (``None``: none known) and their count.

    The sums stay on the device and are read once per pass; the counts come from the host labels.
    """
    model.eval()
    sums = {t.name: torch.zeros((), dtype=torch.float64, device=device) for t in model.tasks}
    counts = dict.fromkeys(sums, 0)
    with torch.no_grad():
        for batch in loader:
            known = _known_labels(model, batch.labels, device)
            batch = _to_device(batch, model, device)
            losses = _task_losses(model, _forward(model, batch, device, dtype), batch.labels, known)
            for name, loss in losses.items():
                n_known = int(known[name].numel())  # the index's length is on the host: no device read
                if n_known:
                    sums[name] += loss.detach().double() * n_known  # mean over the batch's known labels
                    counts[name] += n_known
    values = torch.stack(list(sums.values())).cpu().tolist()  # one device -> host read per pass
    means = {t: (v / counts[t] if counts[t] else None) for t, v in zip(sums, values, strict=True)}
    return means, counts


def fit(
    model: MultimodalModel,
    config: TrainConfig,
    train_set: MultimodalDataset,
    val_set: MultimodalDataset | None,
    *,
    device: torch.device | None = None,
    amp_dtype: torch.dtype | None = None,
    warn: bool = True,
) -> FitResult:
    """Train ``model``; keeps the weights of the epoch with the lowest validation loss.

    Without a validation loss (``val_set`` None or empty, or no known label in it:
    :func:`~medmm.models.validation.validation_loss`) there is nothing to select on, so no early stopping, and
    the last epoch is kept (``selected_by="last_epoch"``), not the first: the training loss measures the fit
    to the training rows, not generalisation, and picking its minimum (or stopping on its minibatch noise)
    would be arbitrary; the configured ``train.epochs`` is the only choice left that the user made.

    Parameters
    ----------
    model, config, train_set, val_set
        The model (moved to the device), its training config and the rows to train / validate on.
    device
        Where to train; default ``config.train.device`` through :func:`medmm.devices.resolve_device`
        (a GPU that is not there is a :class:`~medmm.errors.ConfigError`, not a silent CPU run).
    amp_dtype
        Force autocast to this dtype (``torch.bfloat16`` or ``torch.float16``, on any device, the CPU
        included). Default: ``config.train.amp`` and :func:`medmm.devices.autocast_dtype` - bfloat16 on
        GPUs with it, float16 with a gradient scaler on older GPUs, float32 on the CPU.
    warn
        Log :attr:`FitResult.notes` (a val split without known labels) as warnings. ``train_from_config``
        passes False and returns them in its summary's ``notes`` (which ``medmm train`` prints).

    Training runs under :func:`medmm.devices.deterministic_kernels` (``config.train.deterministic``).

    Examples
    --------
    >>> fit(model, config, train_set, val_set).best_epoch  # doctest: +SKIP
    3
    """
    tc = config.train
    if device is None:
        device = resolve_device(tc.device, source="train.device")
    dtype = amp_dtype if amp_dtype is not None else (autocast_dtype(device) if tc.amp else None)
    with deterministic_kernels(tc.deterministic):
        result = _fit(model, config, train_set, val_set, device, dtype)
    if warn:
        for note in result.notes:
            log.warning(note)
    return result


def _fit(
    model: MultimodalModel,
    config: TrainConfig,
    train_set: MultimodalDataset,
    val_set: MultimodalDataset | None,
    device: torch.device,
    dtype: torch.dtype | None,
) -> FitResult:
    tc = config.train
    seed_everything(tc.seed)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    model.to(device)
    criterion = MultiTaskLoss(
        [t.name for t in config.tasks], config.loss.weighting, {t.name: t.weight for t in config.tasks}
    ).to(device)
    params = list(model.parameters()) + [p for p in criterion.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    # float16 gradients underflow: scale the loss (bfloat16 has float32's range and needs no scaler)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(dtype))
    sched: Any
    if tc.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=tc.epochs)
    elif tc.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, tc.patience // 2))
    else:
        sched = None
    train_loader = make_loader(train_set, tc.batch_size, True, tc.seed, device)
    val_loader = (
        make_loader(val_set, tc.batch_size, False, tc.seed, device)
        if val_set is not None and len(val_set)
        else None
    )
    drop_gen = torch.Generator().manual_seed(tc.seed + 1)
    best_state: dict[str, Any] | None = copy.deepcopy(model.state_dict())
    best, best_epoch, stale = math.inf, 0, 0
    history: list[dict[str, Any]] = []
    notes: list[str] = []
    weights = {t.name: t.weight for t in config.tasks} if config.loss.weighting == "fixed" else None
    bar = _progress(range(1, tc.epochs + 1), tc.progress)
    for epoch in bar:
        model.train()
        total = torch.zeros((), dtype=torch.float64, device=device)
        n = 0
        for batch in train_loader:
            if tc.modality_dropout > 0:  # on the host batch: the CPU generator, no device round trip
                batch = _drop(batch, model.modalities, tc.modality_dropout, drop_gen)
            known = _known_labels(model, batch.labels, device)
            batch = _to_device(batch, model, device)
            opt.zero_grad(set_to_none=True)
            losses = _task_losses(model, _forward(model, batch, device, dtype), batch.labels, known)
            loss = criterion(losses)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += loss.detach().double() * len(batch.record_ids)  # summed on the device: no sync
            n += len(batch.record_ids)
        train_loss = float(total) / max(n, 1)
        per_task: dict[str, float | None] = {}
        if val_loader is not None:
            per_task, counts = _evaluate_task_losses(model, val_loader, device, dtype)
            if epoch == 1:
                notes += unlabelled_notes(model.tasks, counts, len(val_loader.dataset), tc)  # type: ignore[arg-type]
        val_loss = validation_loss(per_task, weights)
        lr = opt.param_groups[0]["lr"]
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if val_loss is not None:  # never step on an undefined loss
                sched.step(val_loss)
        elif sched is not None:
            sched.step()
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "lr": lr,
                "val_task_loss": per_task,
            }
        )
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(train=f"{train_loss:.3f}", val="-" if val_loss is None else f"{val_loss:.3f}")
        if val_loss is None:  # nothing to select on: keep training, keep the last epoch
            if best == math.inf:
                best_epoch, best_state = epoch, None
        elif val_loss < best - 1e-6:
            best, best_epoch, best_state, stale = val_loss, epoch, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= tc.patience and epoch < tc.epochs:
                log.info("early stopping at epoch %d (best %d)", epoch, best_epoch)
                break
    if best_state is not None:  # None: the model is the last epoch's
        model.load_state_dict(best_state)
    selected_by = "last_epoch" if best_state is None else "val_loss"
    return FitResult(model, best_epoch, history, criterion.task_weights(), selected_by, notes)


def _drop(batch: Batch, modalities: Sequence[str], p: float, gen: torch.Generator) -> Batch:
    """Apply seeded modality dropout: hide modalities in the mask and remove their items.

    Runs on the host batch (``gen`` is a CPU generator), before it is copied to the device.
    """
    new_mask = modality_dropout(batch.mask, p, gen)
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
    """Probabilities (sigmoid of logits) for every record of ``loader``, in order.

    ``device`` (default: where the model's parameters are) is where the batches go; the model must be
    there already. Scores are computed in float32 and copied back to the host per batch.
    """
    device = device or next(model.parameters()).device
    model.eval()
    ids: list[str] = []
    probs, labels, weights = [], [], []
    with torch.no_grad():
        for batch in loader:
            batch = _to_device(batch, model, device)
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
