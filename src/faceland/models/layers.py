"""Building blocks shared by the landmark models (one definition each).

* :func:`conv_bn_relu`: ``Conv-BN-ReLU`` (IACT's stem, stages and fusion; the UNet's double
  convolutions; the integral head's refinement; the hourglass's feature layers).
* Attention blocks: :class:`SqueezeExcitation` (Hu et al., CVPR 2018), :class:`ChannelAttention`
  (CBAM's channel gate, Woo et al., ECCV 2018; IACT's channel attention) and
  :class:`CoordinateAttention` (Hou et al., CVPR 2021; seed 001's CA layer).

Every block maps ``(B, C, H, W)`` to ``(B, C', H, W)`` (``C' = C`` for the attention blocks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["conv_bn_relu", "SqueezeExcitation", "ChannelAttention", "CoordinateAttention"]


def conv_bn_relu(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """``Conv2d(k x k, stride, padding k // 2, no bias) -> BatchNorm2d -> ReLU``.

    Shapes: ``(B, c_in, H, W)`` -> ``(B, c_out, ceil(H / stride), ceil(W / stride))``. Its three
    modules are indexed 0, 1, 2; models that need a flat ``nn.Sequential`` unpack it
    (``nn.Sequential(*conv_bn_relu(...), *conv_bn_relu(...))``), which keeps their weight names.
    """
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SqueezeExcitation(nn.Module):
    """Squeeze-and-Excitation (Hu et al., CVPR 2018, Fig. 2 / eqs. 2-4): global average pool,
    FC ``c -> c/r``, ReLU, FC ``c/r -> c``, sigmoid, channel-wise rescaling.

    Shapes: ``(B, c, H, W)`` -> same. ``reduction`` r (default 16); the bottleneck has at least 4
    channels.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        mid = max(4, channels // reduction)
        self.fc = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(mid, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(F.adaptive_avg_pool2d(x, 1))


class CoordinateAttention(nn.Module):
    """Coordinate Attention (Hou et al., CVPR 2021, Sec. 3.2, Fig. 2(c)).

    Direction-aware pooling: ``z_h = mean over W`` ``(B, c, H, 1)`` and ``z_w = mean over H``
    ``(B, c, 1, W)``; both are concatenated along the spatial axis, transformed by a shared 1x1
    convolution to ``mid = max(8, c // r)`` channels + BN + h-swish (eq. 4), split back, and two
    1x1 convolutions + sigmoid give the attention ``g_h (B, c, H, 1)`` and ``g_w (B, c, 1, W)``
    (eq. 5); the output is ``x * g_h * g_w`` (eq. 6). ``reduction`` r defaults to 32 (the paper's).

    Shapes: ``(B, c, H, W)`` -> same.
    """

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        mid = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.bn = nn.BatchNorm2d(mid)
        self.act = nn.Hardswish(inplace=True)
        self.conv_h = nn.Conv2d(mid, channels, 1)
        self.conv_w = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        zh = x.mean(dim=3, keepdim=True)  # (B, c, H, 1)
        zw = x.mean(dim=2, keepdim=True).transpose(2, 3)  # (B, c, W, 1)
        y = self.act(self.bn(self.conv1(torch.cat([zh, zw], dim=2))))
        yh, yw = torch.split(y, [h, w], dim=2)
        gh = torch.sigmoid(self.conv_h(yh))
        gw = torch.sigmoid(self.conv_w(yw.transpose(2, 3)))
        return x * gh * gw


class ChannelAttention(nn.Module):
    """CBAM channel attention (Woo et al., ECCV 2018, eq. 2), IACT's channel attention.

    ``x * sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))`` with one shared two-layer MLP
    (``C -> max(C / reduction, 8) -> C``, ReLU). Shapes: ``(B, C, H, W)`` -> ``(B, C, H, W)``.
    """

    def __init__(self, dim: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(dim // reduction, 8)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(gate)


