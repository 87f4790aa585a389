"""Multi-task losses: masked BCE per task, combined with fixed weights or learned uncertainty weighting.

Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018) learns ``s_t = log sigma_t^2`` per task and
minimises ``sum_t exp(-s_t) L_t + s_t``, so noisy tasks are down-weighted automatically.

Labels may be missing (``NaN``); they are excluded from the loss (a task with no known label in the
batch contributes nothing). The training loop finds the known labels on the host (:func:`known_targets`)
so that the loss on a GPU needs no device synchronisation.

>>> import torch
>>> round(masked_bce(torch.zeros(2, 1), torch.tensor([[1.0], [float("nan")]])).item(), 4)  # log 2
0.6931
>>> loss = MultiTaskLoss(["a", "b"], weighting="uncertainty")
>>> round(loss({"a": torch.tensor(1.0), "b": torch.tensor(2.0)}).item(), 4)
3.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from medmm.errors import ConfigError

__all__ = ["WEIGHTINGS", "MultiTaskLoss", "known_targets", "masked_bce"]

WEIGHTINGS = ("fixed", "uncertainty")


def known_targets(targets: Tensor) -> Tensor:
    """Flat (row-major) indices of the known (non-NaN) entries of ``targets``.

    Compute them where ``targets`` is still on the host (before the batch is copied to a GPU) and pass
    them to :func:`masked_bce`: finding them on the GPU would make the host wait for it every step.

    >>> known_targets(torch.tensor([[1.0, float("nan")], [0.0, 1.0]])).tolist()
    [0, 2, 3]
    """
    return (~torch.isnan(targets)).flatten().nonzero().flatten()


def masked_bce(
    logits: Tensor, targets: Tensor, pos_weight: Tensor | None = None, known: Tensor | None = None
) -> Tensor:
    """Mean binary cross-entropy over the known (non-NaN) targets; 0 when none is known.

    Parameters
    ----------
    logits, targets
        ``[B, L]``; ``targets`` is NaN where a label is unknown.
    pos_weight
        Optional ``[L]`` weight of the positive class.
    known
        :func:`known_targets` of ``targets``, on ``logits``' device. Given, the loss reads no tensor
        data on the host (no device synchronisation); left out, it is computed here (on a GPU that
        waits for the GPU). The result is the same bit for bit either way.

    Examples
    --------
    >>> t, x = torch.tensor([[1.0], [float("nan")]]), torch.zeros(2, 1)
    >>> masked_bce(x, t, known=known_targets(t)).item() == masked_bce(x, t).item()
    True
    """
    if known is None:
        known = known_targets(targets)
    if known.numel() == 0:  # the index's length is on the host: no device read
        return logits.sum() * 0.0
    loss = F.binary_cross_entropy_with_logits(
        logits.float(), torch.nan_to_num(targets, nan=0.0).float(), reduction="none", pos_weight=pos_weight
    )
    # the known losses in row-major order, as a boolean mask selects them: the same mean bit for bit
    return loss.flatten()[known].mean()


class MultiTaskLoss(nn.Module):
    """Combine per-task losses.

    Parameters
    ----------
    tasks
        Task names.
    weighting
        ``"fixed"`` (``weights`` or 1 each) or ``"uncertainty"`` (learned log-variances).
    weights
        Fixed weights per task (``fixed`` only).
    """

    def __init__(
        self, tasks: Sequence[str], weighting: str = "fixed", weights: Mapping[str, float] | None = None
    ) -> None:
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"unknown loss weighting {weighting!r}; choose one of {list(WEIGHTINGS)}")
        self.tasks = list(tasks)
        self.weighting = weighting
        self.fixed = {t: float((weights or {}).get(t, 1.0)) for t in self.tasks}
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)), requires_grad=weighting == "uncertainty")

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Weighted sum of ``losses`` (task -> scalar)."""
        total = torch.zeros((), device=self.log_vars.device)
        for i, t in enumerate(self.tasks):
            if self.weighting == "fixed":
                total = total + self.fixed[t] * losses[t]
            else:
                total = total + torch.exp(-self.log_vars[i]) * losses[t] + self.log_vars[i]
        return total

    def task_weights(self) -> dict[str, float]:
        """Current effective weight of each task."""
        if self.weighting == "fixed":
            return dict(self.fixed)
        return {t: float(torch.exp(-self.log_vars[i].detach())) for i, t in enumerate(self.tasks)}
