"""Small CNN coordinate regressors for the IMM face database (seed 004's course exercises).

Seed 004 (UC Berkeley CS194-26, "Facial Keypoint Detection by Regression & Pixelwise
Classification") trains, on the 58-point IMM faces, (1) a nose-tip detector and (2) a full
58-point detector, each ``conv -> ReLU -> max-pool`` layers followed by two fully connected
layers, on grey images ``im / 255 - 0.5``, with an MSE loss on ``[0, 1]``-relative coordinates.
The defaults below are the seed's torchsummary tables, layer for layer:

``imm_nose_cnn`` (seed 004 Part 1 table; input ``1 x 80 x 60``, K = 1; 129,842 parameters):
    conv 7x7 1->12 (no padding), ReLU, pool -> 12 x 37 x 27; conv 5x5 12->24 (no padding), ReLU,
    pool -> 24 x 16 x 11; conv 3x3 24->32 (no padding), ReLU, pool -> 32 x 7 x 4;
    FC 896->128, ReLU; FC 128->2.

``imm_face_cnn`` (seed 004 Part 2 table; input ``1 x 180 x 240``, K = 58; 10,458,996 parameters):
    six padded 3x3 convs 1->32->64->128->256->512->512, each ReLU + 2x2 max-pool
    (-> 512 x 2 x 3); FC 3072->2048, ReLU; FC 2048->116.

The seed resizes the whole 640 x 480 photo to the network's grid; faceland cuts its standard
square face crop (``N x N``, ``input_size``) and resizes it to the grid ``input_hw`` inside the
model (bilinear). Normalised coordinates are unchanged by that resize, so the network is the
seed's while the crop, the metrics and the runtimes stay those of every other faceland model.
(The nose table's ``80 x 60`` is taken as given, height 80 and width 60; torchsummary was called
with that shape. ``input_hw=(60, 80)``, the photo's own aspect, gives the same 896 features and
the same parameter count.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from faceland.losses import check_coordinate_loss, coordinate_loss
from faceland.models.base import LandmarkModel, register_model

__all__ = ["SmallLandmarkCNN", "conv_output_size"]

PADDINGS = ("valid", "same")


def conv_output_size(size: int, kernel: int, padding: str, pool: bool) -> int:
    """Side after one ``conv (stride 1) -> [2x2 max-pool]`` layer: ``valid`` padding removes
    ``kernel - 1`` pixels, ``same`` keeps the side; a pool floors it to half."""
    out = size - (kernel - 1) if padding == "valid" else size
    return out // 2 if pool else out


class SmallLandmarkCNN(LandmarkModel):
    """``[conv -> ReLU -> (max-pool)] * L -> FC -> ReLU -> FC`` coordinate regression (seed 004).

    Input ``(B, 3, N, N)`` RGB in ``[0, 1]``, the square face crop; it is resized to the network
    grid ``input_hw = (H, W)`` when that differs from ``(N, N)``. With ``grayscale=True`` (the
    seed's input) the network sees one channel ``0.299 R + 0.587 G + 0.114 B - 0.5`` in
    ``[-0.5, 0.5]``; otherwise the three ImageNet-normalised channels. Output ``"coords"``
    ``(B, K, 2)``: normalised crop coordinates ``(u + 0.5) / N``, ``(v + 0.5) / N`` (0-based
    pixel centres of the crop; the seed's ``[0, 1]``-relative space; no heatmaps).

    Args:
        num_points: K.
        input_size: N, the side of the square crop the model receives.
        pretrained: must be False.
        channels, kernels, pools: per conv layer: output channels, odd kernel size, whether a
            2x2 max-pool follows.
        padding: ``"valid"`` (no padding, the seed's nose CNN) or ``"same"`` (``k // 2``, the
            seed's 58-point CNN).
        hidden: width of the first fully connected layer.
        loss: a coordinate loss of :data:`faceland.losses.COORDINATE_LOSSES`; ``"mse"`` is the
            seed's.
        grayscale: grey ``[-0.5, 0.5]`` input (the seed's) instead of ImageNet-normalised RGB.
        input_hw: ``(H, W)`` of the network grid; ``None``: ``(N, N)`` (no resize).

    Raises:
        ValueError: mismatched layer lists, even kernels, unknown padding or loss, an input grid
            too small for the layers, pretrained=True; at forward, an input other than
            ``(B, 3, N, N)``.
    """

    def __init__(self, num_points: int, input_size: int, pretrained: bool = False,
                 channels: tuple[int, ...] = (12, 24, 32),
                 kernels: tuple[int, ...] = (7, 5, 3),
                 pools: tuple[bool, ...] = (True, True, True), padding: str = "valid",
                 hidden: int = 128, loss: str = "mse", grayscale: bool = True,
                 input_hw: tuple[int, int] | None = None) -> None:
        super().__init__()
        if pretrained:
            raise ValueError("the IMM CNNs have no pretrained weights; use pretrained=False")
        if not (len(channels) == len(kernels) == len(pools)) or not channels:
            raise ValueError("channels, kernels and pools must be non-empty and of equal length")
        if any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"kernel sizes must be positive odd integers, got {kernels}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")
        self.num_points, self.input_size = num_points, input_size
        self.loss_kind = check_coordinate_loss(loss)
        self.grayscale = grayscale
        self.input_hw = tuple(input_hw) if input_hw else (input_size, input_size)
        h, w = self.input_hw
        layers: list[nn.Module] = []
        c_in = 1 if grayscale else 3
        for c, k, p in zip(channels, kernels, pools, strict=True):
            layers += [nn.Conv2d(c_in, c, k, padding=k // 2 if padding == "same" else 0),
                       nn.ReLU(inplace=True)]
            if p:
                layers.append(nn.MaxPool2d(2))
            h, w = conv_output_size(h, k, padding, p), conv_output_size(w, k, padding, p)
            if h < 1 or w < 1:
                raise ValueError(f"input grid {self.input_hw} is too small for these layers "
                                 f"(kernels {tuple(kernels)}, padding {padding!r}, pools "
                                 f"{tuple(pools)})")
            c_in = c
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in * h * w, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, 2 * num_points))
        out = self.fc[-1]
        nn.init.normal_(out.weight, std=1e-3)
        nn.init.constant_(out.bias, 0.5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        n = self.input_size
        if not torch.jit.is_tracing() and (x.ndim != 4 or tuple(x.shape[1:]) != (3, n, n)):
            raise ValueError(f"expected input (B, 3, {n}, {n}), got {tuple(x.shape)}")
        if self.input_hw != (n, n):
            x = F.interpolate(x, size=self.input_hw, mode="bilinear", align_corners=False)
        y = self.grey(x) if self.grayscale else self.normalize(x)
        out = self.fc(self.features(y))
        return {"coords": out.view(-1, self.num_points, 2)}

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Coordinate loss on ``(B, K, 2)`` normalised targets."""
        return coordinate_loss(self.loss_kind, out["coords"], target)


@register_model("imm_nose_cnn", smoke={"input_size": 32, "input_hw": None, "channels": [4, 4, 4],
                                       "hidden": 8})
def _imm_nose_cnn(num_points: int = 1, input_size: int = 80, **kw) -> SmallLandmarkCNN:
    """Seed 004 Part 1: the nose-tip CNN of the torchsummary table (``1 x 80 x 60`` grid)."""
    kw.setdefault("input_hw", (80, 60))
    return SmallLandmarkCNN(num_points, input_size, **kw)


@register_model("imm_face_cnn", smoke={"input_size": 64, "input_hw": None,
                                       "channels": [4, 4, 4, 4, 4, 4], "hidden": 8})
def _imm_face_cnn(num_points: int = 58, input_size: int = 240, **kw) -> SmallLandmarkCNN:
    """Seed 004 Part 2: the 58-point CNN of the torchsummary table (``1 x 180 x 240`` grid)."""
    kw.setdefault("channels", (32, 64, 128, 256, 512, 512))
    kw.setdefault("kernels", (3,) * 6)
    kw.setdefault("pools", (True,) * 6)
    kw.setdefault("padding", "same")
    kw.setdefault("hidden", 2048)
    kw.setdefault("input_hw", (180, 240))
    return SmallLandmarkCNN(num_points, input_size, **kw)
