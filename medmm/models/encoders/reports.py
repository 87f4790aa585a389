"""Report encoder: a dense report vector (finding one-hot, optionally hashed entities) and optionally
the report's hashed text token ids (a learned ``EmbeddingBag``) -> MLP embedding.

:func:`finding_vector` builds the input from a report's ``(finding, status)`` rows (the
``report_labels`` table) and a fixed vocabulary; findings not mentioned get all three slots zero
("not mentioned" is a fourth, implicit state).

>>> rows = [("cardiomegaly", "present"), ("effusion", "absent")]
>>> finding_vector(rows, ["cardiomegaly", "effusion", "nodule"])
array([1., 0., 0., 0., 1., 0., 0., 0., 0.], dtype=float32)
>>> import torch
>>> tuple(ReportEncoder(n_inputs=9, out_dim=8)(torch.zeros(2, 9)).shape)
(2, 8)
>>> enc = ReportEncoder(n_inputs=9, out_dim=8, text_buckets=100, text_dim=4)
>>> tuple(enc(torch.zeros(2, 9), torch.tensor([[3, 7, 0], [0, 0, 0]])).shape)
(2, 8)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["STATUSES", "ReportEncoder", "finding_vector"]

STATUSES = ("present", "absent", "uncertain")


def finding_vector(rows: Iterable[tuple[str, str]], vocabulary: Sequence[str]) -> np.ndarray:
    """One-hot ``[len(vocabulary) * 3]`` vector of (finding, status) pairs; unknown findings are ignored."""
    index = {f: i for i, f in enumerate(vocabulary)}
    out = np.zeros(len(vocabulary) * len(STATUSES), dtype=np.float32)
    for finding, status in rows:
        i = index.get(finding)
        if i is None or status not in STATUSES:
            continue
        out[i * len(STATUSES) + STATUSES.index(status)] = 1.0
    return out


class ReportEncoder(nn.Module):
    """Two-layer MLP over a dense report vector, joined with a text embedding when ``text_buckets > 0``.

    Parameters
    ----------
    n_inputs
        Length of the dense vector (finding one-hot, entity vector, or both; 0 for text only).
    out_dim, hidden, dropout
        Output size, hidden width and dropout of the MLP.
    text_buckets, text_dim
        With ``text_buckets > 0``: an ``EmbeddingBag(text_buckets + 1, text_dim, mode="mean",
        padding_idx=0)`` over the token ids (0 pads and is left out of the mean; a report without
        tokens embeds to zeros), concatenated to the dense vector. Without text the module is the
        finding-vector MLP of earlier checkpoints (same parameters, same initialisation).
    """

    def __init__(
        self,
        n_inputs: int,
        out_dim: int = 32,
        hidden: int = 64,
        dropout: float = 0.1,
        text_buckets: int = 0,
        text_dim: int = 0,
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.text_dim = int(text_dim) if text_buckets > 0 else 0
        self.net = nn.Sequential(
            nn.Linear(n_inputs + self.text_dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )
        self.text: nn.EmbeddingBag | None = None
        if self.text_dim:
            self.text = nn.EmbeddingBag(int(text_buckets) + 1, self.text_dim, mode="mean", padding_idx=0)

    def forward(self, x: Tensor, tokens: Tensor | None = None) -> Tensor:
        """``[B, n_inputs]`` (+ token ids ``[B, T]``, 0 = padding) -> ``[B, out_dim]``."""
        if self.text is not None:
            if tokens is None:
                raise ValueError("this report encoder embeds the report text: pass its token ids")
            x = torch.cat([x, self.text(tokens.long()).to(x.dtype)], dim=1)
        out: Tensor = self.net(x)
        return out
