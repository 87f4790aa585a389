"""Torch dataset over ``records.parquet``, its collate (carrying the availability mask), and seeded
patient-level splits / k-fold.

Each modality is loaded lazily from its source: a :class:`~medmm.models.store.ArrayStore` (arrays
written by ``medmm align``) or, for images, a :class:`~medmm.models.volumes.VolumeSource` (the ingested
NIfTI through a cached MONAI transform chain). A record's absent modality is *absent* in the batch (no
zero tensor); ``Batch.index[m]`` says which rows have it. With a 2D ``slice: all`` image source every
slice of a record's volume is a sample of its own (same record id, labels and mask).

>>> import numpy as np
>>> split_by_patient(["p1", "p1", "p2", "p3"], (0.34, 0.33, 0.33), seed=0).tolist()
['val', 'val', 'train', 'test']
>>> [len(te) for _, te in kfold_by_patient(["a", "a", "b", "c"], k=3, seed=0)]
[1, 2, 1]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from medmm.errors import ConfigError
from medmm.models.store import ArrayStore

if TYPE_CHECKING:
    from medmm.models.volumes import VolumeSource

__all__ = [
    "Batch",
    "MultimodalDataset",
    "collate_records",
    "kfold_by_patient",
    "label_matrix",
    "split_by_patient",
]


def split_by_patient(
    patient_ids: Sequence[str], fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    """Assign each row ``train``/``val``/``test`` so that all rows of a patient share one split.

    Patients are shuffled with ``seed`` and cut by cumulative ``fractions`` (train, val, test) of the
    patient count; each non-zero split gets at least one patient when there are enough patients.
    """
    if abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions must sum to 1, got {fractions}")
    patients = np.array(sorted(set(patient_ids)))
    rng = np.random.default_rng(seed)
    rng.shuffle(patients)
    n = len(patients)
    n_val = max(1, round(fractions[1] * n)) if fractions[1] > 0 and n >= 3 else 0
    n_test = max(1, round(fractions[2] * n)) if fractions[2] > 0 and n >= 3 else 0
    names = {}
    for i, p in enumerate(patients):
        names[p] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return np.array([names[p] for p in patient_ids])


def kfold_by_patient(patient_ids: Sequence[str], k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train_rows, test_rows) folds; each patient's rows are in exactly one test fold."""
    patients = np.array(sorted(set(patient_ids)))
    if k < 2 or k > len(patients):
        raise ConfigError(
            f"train.folds={k}: k-fold needs 2 <= k <= number of patients ({len(patients)}); set train.folds "
            f"to at most {len(patients)}, or 1 for a single train/val/test split"
        )
    rng = np.random.default_rng(seed)
    rng.shuffle(patients)
    fold_of = {p: i % k for i, p in enumerate(patients)}
    folds = np.array([fold_of[p] for p in patient_ids])
    return [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(k)]


def label_matrix(records: pd.DataFrame, label_names: Sequence[str]) -> np.ndarray:
    """``[N, L]`` float labels from the records' ``labels`` JSON (NaN where unknown)."""
    out = np.full((len(records), len(label_names)), np.nan, dtype=np.float32)
    for i, text in enumerate(records["labels"].tolist()):
        labels = json.loads(text or "{}")
        for j, name in enumerate(label_names):
            value = labels.get(name)
            if value is not None:
                out[i, j] = float(value)
    return out


@dataclass
class Batch:
    """A collated batch: present items per modality, their rows, the ``[B, M]`` mask, labels ``[B, L]``."""

    inputs: dict[str, Tensor]
    index: dict[str, Tensor]
    features: dict[str, Tensor]
    mask: Tensor
    labels: Tensor
    record_ids: list[str] = field(default_factory=list)

    def _map(self, fn: Callable[[Tensor], Tensor]) -> Batch:
        """A batch with ``fn`` applied to every tensor (``record_ids`` shared)."""
        return Batch(
            {k: fn(v) for k, v in self.inputs.items()},
            {k: fn(v) for k, v in self.index.items()},
            {k: fn(v) for k, v in self.features.items()},
            fn(self.mask),
            fn(self.labels),
            self.record_ids,
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch with every tensor on ``device`` (as :meth:`torch.Tensor.to`).

        ``non_blocking=True`` makes a host -> GPU copy asynchronous when the batch is pinned
        (:meth:`pin_memory`); tensors already on ``device`` are not copied.

        >>> item = {"record_id": "r", "inputs": {}, "features": {}, "mask": torch.tensor([True]),
        ...         "labels": torch.zeros(1)}
        >>> collate_records([item]).to("cpu", non_blocking=True).mask.device.type
        'cpu'
        """
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """The batch in pinned (page-locked) host memory, for asynchronous copies to a GPU.

        torch's :class:`~torch.utils.data.DataLoader` calls this for each batch when it is made with
        ``pin_memory=True``. Pinning needs an accelerator: with a CPU-only torch
        :meth:`torch.Tensor.pin_memory` raises, so only pin for a GPU
        (:func:`medmm.devices.pin_memory_for`, as :func:`medmm.models.train.make_loader` does).

        >>> item = {"record_id": "r", "inputs": {}, "features": {}, "mask": torch.tensor([True]),
        ...         "labels": torch.zeros(1)}
        >>> b = collate_records([item])
        >>> pinned = b.pin_memory() if torch.cuda.is_available() else b  # pinning needs a GPU
        >>> type(pinned).__name__
        'Batch'
        """
        return self._map(lambda t: t.pin_memory())


class MultimodalDataset(Dataset[dict[str, object]]):
    """Items of ``records`` with modalities loaded lazily from ``stores``.

    Parameters
    ----------
    records
        Rows of the records table (``record_id``, ``<m>_id``, ``has_<m>``, ``labels``).
    stores
        Modality -> item source (:class:`~medmm.models.store.ArrayStore` or
        :class:`~medmm.models.volumes.VolumeSource`), in mask column order (the model's modalities).
    label_names
        Label columns, in model output order.
    drop
        Modalities to hide (e.g. to test robustness); a record left with none is an error.
    augment
        Apply the image source's random augmentation (``image_input.augment``; training sets only).
    """

    def __init__(
        self,
        records: pd.DataFrame,
        stores: Mapping[str, ArrayStore | VolumeSource],
        label_names: Sequence[str],
        drop: Sequence[str] = (),
        augment: bool = False,
    ) -> None:
        self.augment = augment
        self.records = records.reset_index(drop=True)
        self.stores = dict(stores)
        self.modalities = list(stores)
        labels = label_matrix(self.records, label_names)
        cols = [self.records[f"has_{m}"].to_numpy(bool) & (m not in drop) for m in self.modalities]
        mask = np.stack(cols, axis=1) if cols else np.zeros((len(records), 0), bool)
        empty = np.flatnonzero(~mask.any(axis=1))
        if len(empty):
            ids = self.records["record_id"].iloc[empty[:5]].tolist()
            raise ConfigError(
                f"{len(empty)} record(s) have none of the modalities {self.modalities} after dropping "
                f"{list(drop)} (e.g. {ids}); filter them out or keep a modality they have"
            )
        self.item_ids = {m: self.records[f"{m}_id"].tolist() for m in self.modalities}
        #: sample -> record row, and -> the image slice it shows (-1: the source's own choice)
        self.rows = np.arange(len(self.records))
        self.slices = np.full(len(self.records), -1)
        image = self.stores.get("image")
        if image is not None and getattr(image, "expands_slices", False) and len(self.records):
            j = self.modalities.index("image")
            counts = [
                image.n_slices(str(self.item_ids["image"][i])) if mask[i, j] else 1  # type: ignore[union-attr]
                for i in range(len(self.records))
            ]
            self.rows = np.repeat(np.arange(len(self.records)), counts)
            self.slices = np.concatenate([np.arange(c) if mask[i, j] else [-1] for i, c in enumerate(counts)])
        self.mask = mask[self.rows]
        self.labels = labels[self.rows]
        self.record_ids = self.records["record_id"].astype(str).to_numpy()[self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, object]:
        inputs, features = {}, {}
        row = int(self.rows[i])
        for j, m in enumerate(self.modalities):
            if self.mask[i, j]:
                item = str(self.item_ids[m][row])
                if getattr(self.stores[m], "kind", "") == "volumes":
                    z = int(self.slices[i]) if self.slices[i] >= 0 else None
                    x, f = self.stores[m].get(item, z, augment=self.augment)  # type: ignore[call-arg]
                else:
                    x, f = self.stores[m].get(item)
                inputs[m] = torch.from_numpy(x)
                if f is not None:
                    features[m] = torch.from_numpy(f)
        return {
            "record_id": str(self.record_ids[i]),
            "inputs": inputs,
            "features": features,
            "mask": torch.from_numpy(self.mask[i].copy()),
            "labels": torch.from_numpy(self.labels[i].copy()),
        }


def collate_records(items: Sequence[Mapping[str, object]]) -> Batch:
    """Stack present items per modality and keep the availability mask.

    >>> import torch
    >>> item = {"record_id": "r", "inputs": {}, "features": {}, "mask": torch.tensor([False]),
    ...         "labels": torch.zeros(1)}
    >>> a = dict(item, inputs={"report": torch.ones(3)}, mask=torch.tensor([True]))
    >>> b = collate_records([a, item])
    >>> b.index["report"].tolist(), b.mask.tolist()
    ([0], [[True], [False]])
    """
    inputs: dict[str, list[Tensor]] = {}
    index: dict[str, list[int]] = {}
    features: dict[str, list[Tensor]] = {}
    for row, item in enumerate(items):
        for m, x in item["inputs"].items():  # type: ignore[attr-defined]
            inputs.setdefault(m, []).append(x)
            index.setdefault(m, []).append(row)
        for m, f in item["features"].items():  # type: ignore[attr-defined]
            features.setdefault(m, []).append(f)
    return Batch(
        {m: torch.stack(xs) for m, xs in inputs.items()},
        {m: torch.tensor(ix, dtype=torch.long) for m, ix in index.items()},
        {m: torch.stack(fs) for m, fs in features.items()},
        torch.stack([item["mask"] for item in items]),  # type: ignore[misc]
        torch.stack([item["labels"] for item in items]),  # type: ignore[misc]
        [str(item["record_id"]) for item in items],
    )
