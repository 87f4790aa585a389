"""The one interface every fusion strategy implements, plus mask checks and seeded modality dropout.

A fusion module takes ``embeddings``: modality name -> tensor ``[B, D_m]`` and ``mask``: bool tensor
``[B, M]`` (column ``j`` is modality ``modalities[j]``; ``True`` = present). It returns a
:class:`FusionOutput` with ``fused`` ``[B, out_dim]`` and, where the strategy has them, per-sample
modality ``weights`` ``[B, M]`` (zero for absent modalities, rows summing to one).

Absent modalities are never silently zero-filled: each strategy either excludes them from a masked
reduction or (concatenation) swaps in a learned, explicit *missing* embedding with ``torch.where`` so
no gradient reaches the absent modality's encoder. A sample with no modality at all is an error
(:func:`check_mask`; on the host, before a batch goes to a GPU).

>>> import torch
>>> check_mask(torch.tensor([[True, False]]), ["image", "report"])
>>> m = modality_dropout(torch.ones(4, 3, dtype=torch.bool), 0.5, torch.Generator().manual_seed(0))
>>> bool(m.any(dim=1).all())
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from medmm.errors import MedmmError

__all__ = ["EmptySampleError", "Fusion", "FusionOutput", "check_mask", "masked_softmax", "modality_dropout"]


class EmptySampleError(MedmmError):
    """A sample in the batch has no modality present; fusion has nothing to fuse."""


@dataclass
class FusionOutput:
    """Result of a fusion step.

    Attributes
    ----------
    fused
        ``[B, out_dim]`` fused representation (late fusion: averaged logits).
    weights
        ``[B, M]`` per-sample modality weights (absent -> 0, rows sum to 1) or ``None``.
    """

    fused: Tensor
    weights: Tensor | None = None


def check_mask(mask: Tensor, modalities: Sequence[str]) -> None:
    """Raise unless ``mask`` is a bool ``[B, M]`` tensor with at least one modality per row.

    The dtype and shape are always checked. Whether every row has a modality is checked only for a mask
    in host memory: reading a GPU mask would make the host wait for the GPU at every step, so the
    training and prediction loops (:mod:`medmm.models.train`) check each batch on the host before
    copying it to the device.

    >>> import torch
    >>> try:
    ...     check_mask(torch.tensor([[False, False]]), ["a", "b"])
    ... except EmptySampleError as exc:
    ...     print(str(exc)[:45])
    1 sample(s) (rows [0]) have no modality prese
    """
    if mask.dtype != torch.bool or mask.ndim != 2 or mask.shape[1] != len(modalities):
        raise ValueError(
            f"availability mask must be bool [B, {len(modalities)}] for modalities {list(modalities)}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    if mask.device.type != "cpu":
        return
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise EmptySampleError(
            f"{len(empty)} sample(s) (rows {empty[:10]}) have no modality present; "
            "drop such records before fusion (align marks them) or supply at least one modality"
        )


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dim restricted to ``mask``; absent entries get exactly 0.

    >>> import torch
    >>> masked_softmax(torch.zeros(1, 3), torch.tensor([[True, False, True]])).tolist()
    [[0.5, 0.0, 0.5]]
    """
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return torch.where(mask, weights, torch.zeros_like(weights))


def modality_dropout(mask: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """Randomly hide present modalities with probability ``p``, keeping at least one per sample.

    Seeded through ``generator`` (a CPU ``torch.Generator``); returns a new mask.

    >>> import torch
    >>> g = torch.Generator().manual_seed(1)
    >>> modality_dropout(torch.tensor([[True, False]]), 0.9, g).tolist()
    [[True, False]]
    """
    if p <= 0:
        return mask
    drop = torch.rand(mask.shape, generator=generator) < p
    new = mask & ~drop.to(mask.device)
    empty = ~new.any(dim=1)
    if empty.any():
        # keep one randomly chosen originally-present modality for emptied rows
        scores = torch.rand(mask.shape, generator=generator).to(mask.device).masked_fill(~mask, -1.0)
        keep = torch.zeros_like(mask).scatter_(1, scores.argmax(dim=1, keepdim=True), True)
        new = torch.where(empty.unsqueeze(1), keep, new)
    return new


class Fusion(nn.Module):
    """Base class: holds the modality order and input sizes; subclasses implement :meth:`fuse`.

    Parameters
    ----------
    dims
        Modality name -> embedding size ``D_m``, in mask column order.
    out_dim
        Size of the fused representation.
    """

    #: True when :attr:`FusionOutput.fused` already holds task logits (late fusion).
    produces_logits: bool = False

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__()
        if not dims:
            raise ValueError("fusion needs at least one modality")
        self.modalities: list[str] = list(dims)
        self.dims = dict(dims)
        self.out_dim = out_dim

    def forward(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> FusionOutput:
        """Check inputs and fuse; see the module docstring for shapes."""
        check_mask(mask, self.modalities)
        missing = [m for m in self.modalities if m not in embeddings]
        if missing:
            raise ValueError(f"embeddings lack modalities {missing}; expected {self.modalities}")
        return self.fuse(embeddings, mask)

    def fuse(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> FusionOutput:  # pragma: no cover
        raise NotImplementedError

    def _stack_projected(self, proj: nn.ModuleDict, embeddings: Mapping[str, Tensor], mask: Tensor) -> Tensor:
        """Project to ``out_dim``, stack ``[B, M, out_dim]``; absent rows -> 0 with no grad."""
        cols = []
        for j, name in enumerate(self.modalities):
            h = proj[name](embeddings[name])
            cols.append(torch.where(mask[:, j : j + 1], h, torch.zeros_like(h)))
        return torch.stack(cols, dim=1)
