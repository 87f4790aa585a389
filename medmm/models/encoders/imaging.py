"""Imaging encoder: a MONAI network (ResNet or DenseNet121, 2D or 3D) mapping an image to an embedding.

The default (``arch="resnet_small"``: one basic block per stage, 8..64 channels) is small enough to
train on a CPU; ``resnet18`` and ``densenet121`` are the standard MONAI configurations.

>>> import torch
>>> enc = ImagingEncoder(out_dim=16)
>>> tuple(enc(torch.randn(2, 1, 32, 32)).shape)
(2, 16)
"""

from __future__ import annotations

from torch import Tensor, nn

from medmm.errors import ConfigError

__all__ = ["IMAGING_ARCHS", "ImagingEncoder"]

IMAGING_ARCHS = ("resnet_small", "resnet18", "densenet121")


class ImagingEncoder(nn.Module):
    """MONAI backbone with its classifier sized to ``out_dim``.

    Parameters
    ----------
    out_dim
        Embedding size.
    arch
        One of :data:`IMAGING_ARCHS`.
    spatial_dims
        2 for slices ``[B, C, H, W]``, 3 for volumes ``[B, C, D, H, W]``.
    in_channels
        Image channels (1 for a single MR sequence).
    """

    def __init__(
        self, out_dim: int = 32, arch: str = "resnet_small", spatial_dims: int = 2, in_channels: int = 1
    ):
        super().__init__()
        from monai.networks import nets

        self.out_dim = out_dim
        if arch == "resnet_small":
            self.net: nn.Module = nets.ResNet(
                block="basic",
                layers=[1, 1, 1, 1],
                block_inplanes=[8, 16, 32, 64],
                spatial_dims=spatial_dims,
                n_input_channels=in_channels,
                num_classes=out_dim,
                conv1_t_size=3,
                conv1_t_stride=1,
            )
        elif arch == "resnet18":
            self.net = nets.resnet18(
                spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=out_dim
            )
        elif arch == "densenet121":
            self.net = nets.DenseNet121(
                spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_dim
            )
        else:
            raise ConfigError(f"unknown imaging encoder {arch!r}; choose one of {list(IMAGING_ARCHS)}")

    def forward(self, x: Tensor) -> Tensor:
        """Embed images ``[B, C, *spatial]`` -> ``[B, out_dim]``."""
        out: Tensor = self.net(x)
        return out
