"""Checkpoints that load with ``torch.load(weights_only=True)``: tensors plus plain JSON-able metadata
(config, data version, label names, input shapes) from which the model is rebuilt.

Device-free: tensors are copied to the CPU before saving and loaded with ``map_location="cpu"``, so a
checkpoint written on a GPU machine (whose tensors may carry ``cuda:N`` location tags) loads on a
CPU-only one; the caller moves the rebuilt model to its device.

>>> import tempfile, pathlib, torch
>>> p = pathlib.Path(tempfile.mkdtemp()) / "m.pt"
>>> _ = save_checkpoint(p, {"w": torch.ones(1)}, {"config": {"fusion": "sum"}})
>>> load_checkpoint(p)["meta"]["config"]["fusion"]
'sum'
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from medmm.errors import InputError
from medmm.tables import atomic_write_bytes

__all__ = ["file_sha256", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(
    path: Path,
    state_dict: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Atomically write ``{"state_dict", "meta", **extra}``; ``meta`` must survive a JSON round trip.

    ``extra`` holds further top-level entries of tensors and plain values (e.g. the fitted statistics of
    :mod:`medmm.models.embedding_anomaly` under ``embedding_anomaly``); their tensors are saved on the
    CPU. Readers that do not know an entry ignore it.
    """
    meta = json.loads(json.dumps(meta, default=str))  # plain types only -> weights_only-safe
    data: dict[str, Any] = {
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "meta": meta,
    }
    for key, entry in (extra or {}).items():
        if key in data:
            raise ValueError(f"checkpoint entry {key!r} is reserved")
        data[key] = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in entry.items()}
    buf = io.BytesIO()
    torch.save(data, buf)
    return atomic_write_bytes(Path(path), buf.getvalue())


def _anomaly_hint(path: Path) -> str | None:
    """The fix for a ``medmm anomaly train`` model folder (``model.json`` + ``weights.pt``) passed here."""
    folder = path if path.is_dir() else path.parent
    if (folder / "model.json").exists() and (folder / "weights.pt").exists():
        return (
            f"this is a `medmm anomaly train` model: score beats with `medmm anomaly score --model {folder}`"
        )
    return None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); errors name the file, the problem and the fix.

    >>> try:
    ...     load_checkpoint(Path("/nonexistent/model.pt"))
    ... except InputError as exc:
    ...     print(exc.problem)
    checkpoint not found
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    folds = sorted(folder.glob("fold*/model.pt"))
    kfold = f"k-fold training writes one model per fold: pass one of them, e.g. {folds[0]}" if folds else None
    if not path.exists():
        raise InputError(
            str(path), "checkpoint not found", kfold or "pass the model.pt written by `medmm train`"
        )
    if path.is_dir():
        fix = (
            _anomaly_hint(path)
            or kfold
            or (
                f"pass the checkpoint file, e.g. {path / 'model.pt'}"
                if (path / "model.pt").exists()
                else "pass the model.pt written by `medmm train` (its --out folder holds it)"
            )
        )
        raise InputError(str(path), "is a directory, not a checkpoint file", fix)
    hint = _anomaly_hint(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            str(path),
            f"not a loadable checkpoint: truncated, or not written by torch.save ({type(exc).__name__})",
            hint or "re-copy the file, or re-run `medmm train` to write it again",
        ) from None
    if not isinstance(data, dict) or "state_dict" not in data or "meta" not in data:
        raise InputError(
            str(path),
            "checkpoint lacks state_dict/meta (not written by `medmm train`)",
            hint or "pass the model.pt written by `medmm train` or `medmm models compare`",
        )
    return data


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file (the model hash written next to predictions)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
