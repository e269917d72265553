"""Coordinate-regression models.

* ``regression``: CNN backbone -> global average pool -> linear layer -> ``(K, 2)`` (the course
  baseline "ResNet coordinate regression", seed 005).
* ``integral``: CNN backbone -> top-down feature fusion (FPN-style) to stride 4 -> one heatmap
  per landmark -> soft-argmax (Sun et al., ECCV 2018). Trained with a loss on coordinates, so it
  needs no heatmap codec and is sub-pixel by construction. faceland's default model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from faceland.codecs import peak_mass, soft_argmax
from faceland.losses import check_coordinate_loss, coordinate_loss
from faceland.models.backbones import create_backbone
from faceland.models.base import LandmarkModel, register_model
from faceland.models.layers import conv_bn_relu

__all__ = ["CoordinateRegression", "IntegralRegression"]



def _refine_conv(width: int) -> nn.Sequential:
    """Two dense 3x3 Conv-BN-ReLU (the head before 2026-12)."""
    return nn.Sequential(*conv_bn_relu(width, width), *conv_bn_relu(width, width))


def _refine_dw(width: int) -> nn.Sequential:
    """Two depthwise-separable blocks (3x3 depthwise + BN + ReLU, 1x1 Conv-BN-ReLU): 38 % fewer
    FLOPs than ``conv`` at the same width (the default model's head)."""
    return nn.Sequential(*(m for _ in range(2) for m in (
        nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False),
        nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        *conv_bn_relu(width, width, 1))))


#: The integral head's refinement blocks by ``refine`` name.
REFINES = {"conv": _refine_conv, "dw": _refine_dw}

class CoordinateRegression(LandmarkModel):
    """Global-pool regression head on a CNN backbone (seed 004 Part 3: ResNet-50, a 1-channel
    first convolution, a final linear layer of ``2K = 136`` outputs).

    Input ``(B, 3, N, N)`` RGB in ``[0, 1]``; ``forward`` returns ``"coords"`` ``(B, K, 2)``,
    normalised crop coordinates ``(u + 0.5) / N`` (0-based pixel centres, crop frame).

    Args:
        backbone: backbone name (see :func:`faceland.models.backbones.create_backbone`).
        num_points: K.
        input_size: N.
        pretrained: ImageNet weights for the backbone.
        loss: a coordinate loss of :data:`faceland.losses.COORDINATE_LOSSES`.
        grayscale: feed one grey channel ``im / 255 - 0.5`` to a 1-channel first convolution
            (seed 004) instead of the ImageNet-normalised RGB.

    Raises:
        ValueError: unknown loss or backbone.
    """

    def __init__(self, backbone: str = "resnet18", num_points: int = 68, input_size: int = 128,
                 pretrained: bool = False, loss: str = "l1", grayscale: bool = False) -> None:
        super().__init__()
        self.num_points, self.input_size = num_points, input_size
        self.loss_kind, self.grayscale = check_coordinate_loss(loss), grayscale
        self.backbone = create_backbone(backbone, pretrained, levels=1,
                                        in_chans=1 if grayscale else 3)
        self.fc = nn.Linear(self.backbone.channels[-1], num_points * 2)
        nn.init.zeros_(self.fc.weight)
        nn.init.constant_(self.fc.bias, 0.5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.backbone(self.grey(x) if self.grayscale else self.normalize(x))[-1]
        out = self.fc(F.adaptive_avg_pool2d(f, 1).flatten(1))
        return {"coords": out.view(-1, self.num_points, 2)}

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return coordinate_loss(self.loss_kind, out["coords"], target)


class IntegralRegression(LandmarkModel):
    """Soft-argmax heatmap head on a multi-level CNN backbone.

    Levels of strides 4..32 are projected to ``width`` channels, fused top-down (upsample + add,
    as in FPN) and refined by two 3x3 convolutions at stride 4; a 1x1 convolution gives K logit
    maps of ``N/4 x N/4`` whose soft-argmax are the landmarks.

    ``forward`` returns ``"coords"`` ``(B, K, 2)`` (normalised crop coordinates),
    ``"heatmaps"`` ``(B, K, N/4, N/4)`` (the softmax maps, each sums to 1) and ``"scores"``
    ``(B, K)``: per-landmark confidence in ``[0, 1]``, the heatmap's probability mass in its
    densest 3 x 3 window (:func:`faceland.codecs.peak_mass`).

    Args:
        backbone: backbone name.
        num_points: K.
        input_size: N (a multiple of 16; strides 4..32, a level of odd size is upsampled to fit).
        pretrained: ImageNet weights for the backbone.
        width: channels of the fused features.
        loss: a coordinate loss of :data:`faceland.losses.COORDINATE_LOSSES`.
        refine: ``"conv"``: two dense 3x3 convolutions at stride 4 (the original head, about
            75 M multiply-adds at 128 px, width 64); ``"dw"``: two depthwise-separable 3x3
            convolutions (3x3 depthwise + 1x1 pointwise, about 10 M), the fast head of the
            default model since 2026-12.

    Raises:
        ValueError: ``input_size`` not a multiple of 16, or an unknown ``refine``.
    """

    def __init__(self, backbone: str = "mobilenet_v2", num_points: int = 68,
                 input_size: int = 128, pretrained: bool = False, width: int = 64,
                 loss: str = "l1", refine: str = "conv") -> None:
        super().__init__()
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.num_points, self.input_size = num_points, input_size
        self.loss_kind = check_coordinate_loss(loss)
        self.backbone = create_backbone(backbone, pretrained, levels=4)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in self.backbone.channels)
        if refine not in REFINES:
            raise ValueError(f"refine must be one of {', '.join(map(repr, REFINES))}, not "
                             f"{refine!r}")
        self.refine = REFINES[refine](width)
        self.heatmap = nn.Conv2d(width, num_points, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(self.normalize(x))
        y = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1]), strict=True):
            y = F.interpolate(y, size=f.shape[-2:], mode="bilinear", align_corners=False) + lat(f)
        logits = self.heatmap(self.refine(y))
        with torch.autocast(logits.device.type, enabled=False):  # sub-pixel: keep fp32
            coords, probs = soft_argmax(logits.float())
        return {"coords": coords, "heatmaps": probs, "scores": peak_mass(probs)}

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return coordinate_loss(self.loss_kind, out["coords"], target)


@register_model("regression", smoke={"backbone": "resnet18", "input_size": 64})
def _regression(**kw) -> CoordinateRegression:
    return CoordinateRegression(**kw)


@register_model("integral", smoke={"backbone": "mobilenet_v2", "input_size": 64})
def _integral(**kw) -> IntegralRegression:
    return IntegralRegression(**kw)
