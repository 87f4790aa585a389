"""Model inputs on disk: per modality, ``inputs/<modality>/ids.npy`` + ``x.npy`` (+ ``features.npy``).

Arrays are opened memory-mapped, so a :class:`ArrayStore` costs nothing until an item is read; they are
the persistent cache of preprocessed items (e.g. MONAI-normalised, resized image slices) that the
records point to by item id.

>>> import tempfile, pathlib, numpy as np
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = write_store(d / "report", ["r1", "r2"], np.eye(2, dtype=np.float32))
>>> s = ArrayStore(d / "report")
>>> s.get("r2")[0].tolist(), s.item_shape
([0.0, 1.0], (2,))
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medmm.errors import InputError
from medmm.tables import atomic_write_with

__all__ = ["WRITING_MARK", "ArrayStore", "open_stores", "write_store"]


#: present in a store's folder while :func:`write_store` replaces its arrays: a store that has it was left
#: half-written (a killed run) and may pair one night's ids with another night's rows
WRITING_MARK = ".writing"


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    """``np.save`` streamed into a temporary file beside ``path``, fsync, then renamed into place."""
    atomic_write_with(path, lambda fh: np.save(fh, arr))


def write_store(folder: Path, ids: Sequence[str], x: np.ndarray, features: np.ndarray | None = None) -> Path:
    """Write one modality's items (``x[i]`` is item ``ids[i]``) as ``.npy`` files in ``folder``.

    Each array is written to a temporary file and renamed into place; a marker file
    (:data:`WRITING_MARK`) is there from before the first rename until after the last, so a run killed
    between two renames leaves a store that :class:`ArrayStore` refuses, never one that maps this
    night's ids to last night's rows. ``features.npy`` of an earlier write is removed when ``features``
    is ``None``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_store(d, ["a", "b"], np.zeros((2, 3)))
    >>> sorted(p.name for p in d.iterdir())
    ['ids.npy', 'x.npy']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if len(ids) != len(x) or (features is not None and len(features) != len(x)):
        raise ValueError("ids, x and features must have the same length")
    if len(set(ids)) != len(ids):
        raise ValueError("item ids must be unique within a modality")
    mark = folder / WRITING_MARK
    mark.write_text("medmm align was writing these arrays; a store with this file is incomplete\n")
    _save_atomic(folder / "x.npy", np.ascontiguousarray(x, dtype=np.float32))
    if features is not None:
        _save_atomic(folder / "features.npy", np.ascontiguousarray(features, dtype=np.float32))
    else:
        (folder / "features.npy").unlink(missing_ok=True)
    _save_atomic(folder / "ids.npy", np.asarray(ids, dtype=str))
    mark.unlink()
    return folder


class ArrayStore:
    """Read-only, memory-mapped access to one modality's preprocessed items by id."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / "x.npy").exists():
            raise InputError(
                str(self.folder), "no x.npy model-input array", "run `medmm align` (or bench/cohort.py) first"
            )
        if (self.folder / WRITING_MARK).exists():
            raise InputError(
                str(self.folder),
                "the model inputs were left half-written (the process writing them stopped; ids.npy and "
                "x.npy may be of different runs)",
                "re-run `medmm align RUN_DIR` (or the workflow) to write them again",
            )
        ids = np.load(self.folder / "ids.npy")
        self.index = {str(i): n for n, i in enumerate(ids)}
        self.x = np.load(self.folder / "x.npy", mmap_mode="r")
        feat = self.folder / "features.npy"
        self.features = np.load(feat, mmap_mode="r") if feat.exists() else None
        sizes = {"ids.npy": len(ids), "x.npy": len(self.x)}
        if self.features is not None:
            sizes["features.npy"] = len(self.features)
        if len(set(sizes.values())) > 1:
            raise InputError(
                str(self.folder),
                f"the model-input arrays have different numbers of items ({sizes}): they are not of the "
                "same write",
                "re-run `medmm align RUN_DIR` (or the workflow) to write them again",
            )

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one item."""
        return tuple(self.x.shape[1:])

    @property
    def n_features(self) -> int:
        """Per-item feature count (0 when the store has none)."""
        return 0 if self.features is None else int(self.features.shape[1])

    def get(self, item_id: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The item's array and its features (or ``None``)."""
        try:
            n = self.index[item_id]
        except KeyError:
            raise InputError(
                str(self.folder), f"item {item_id!r} is not in the store", "re-run `medmm align` for this run"
            ) from None
        feat = None if self.features is None else np.array(self.features[n])
        return np.array(self.x[n]), feat

    def digest(self) -> str:
        """SHA-256 of the stored arrays (part of a checkpoint's data version)."""
        h = hashlib.sha256()
        for name in ("ids.npy", "x.npy", "features.npy"):
            p = self.folder / name
            if p.exists():
                h.update(p.read_bytes())
        return h.hexdigest()


def open_stores(run_dir: Path, modalities: Sequence[str]) -> dict[str, ArrayStore]:
    """Open ``RUN_DIR/inputs/<m>`` for each modality."""
    return {m: ArrayStore(Path(run_dir) / "inputs" / m) for m in modalities}
