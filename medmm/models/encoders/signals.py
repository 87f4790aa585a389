"""Signal encoder: a 1D CNN (or GRU) over ECG windows ``[B, C, T]``, optionally joined with per-window
beat features ``[B, F]`` (RR intervals, amplitudes) before the output layer.

>>> import torch
>>> enc = SignalEncoder(out_dim=16, n_features=3)
>>> tuple(enc(torch.randn(2, 1, 720), torch.randn(2, 3)).shape)
(2, 16)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from medmm.errors import ConfigError

__all__ = ["SIGNAL_ARCHS", "SignalEncoder"]

SIGNAL_ARCHS = ("cnn", "gru")


class SignalEncoder(nn.Module):
    """Conv1d-BN-ReLU-pool stack with global average pooling, or a GRU over downsampled samples."""

    def __init__(
        self, out_dim: int = 32, in_channels: int = 1, n_features: int = 0, arch: str = "cnn", width: int = 16
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.n_features = n_features
        self.arch = arch
        if arch == "cnn":
            layers: list[nn.Module] = []
            ch = in_channels
            for i in range(4):
                nxt = width * (2 ** min(i, 2))
                layers += [nn.Conv1d(ch, nxt, 7, padding=3), nn.BatchNorm1d(nxt), nn.ReLU(), nn.MaxPool1d(2)]
                ch = nxt
            self.body: nn.Module = nn.Sequential(*layers)
            body_out = ch
        elif arch == "gru":
            self.pool = nn.AvgPool1d(4)
            self.body = nn.GRU(in_channels, width * 2, batch_first=True)
            body_out = width * 2
        else:
            raise ConfigError(f"unknown signal encoder {arch!r}; choose one of {list(SIGNAL_ARCHS)}")
        self.out = nn.Linear(body_out + n_features, out_dim)

    def forward(self, x: Tensor, features: Tensor | None = None) -> Tensor:
        """``[B, C, T]`` (+ ``[B, F]``) -> ``[B, out_dim]``."""
        if self.arch == "cnn":
            h = self.body(x).mean(dim=-1)
        else:
            _, last = self.body(self.pool(x).transpose(1, 2))
            h = last[-1]
        if self.n_features:
            if features is None:
                raise ValueError(f"this signal encoder expects {self.n_features} beat features per window")
            h = torch.cat([h, features], dim=1)
        out: Tensor = self.out(h)
        return out
