"""Small CNN coordinate regressors for the IMM face database (seed 004's course exercises).

The course (UC Berkeley CS194-26, "Facial Keypoint Detection with Neural Networks") trains, on
the 58-point IMM faces, (1) a nose-tip detector and (2) a full 58-point detector, each a few
``conv -> ReLU -> max-pool`` layers followed by two fully connected layers, on small grey images
normalised to ``[-0.5, 0.5]``, with an MSE loss on normalised coordinates. The course resizes the
whole 640 x 480 photo (80 x 60 for the nose, larger for the face); faceland feeds its standard
square face crop instead (``input_hw`` gives a non-square input when wanted).

Exact layer specification (``k`` = kernel, padding ``k // 2``, every conv followed by ReLU, "pool"
= 2x2 max-pool, stride 2; ``flat`` is computed from the input size):

``imm_nose_cnn`` (default input 64 x 64, K = 1):
    conv 5x5 1->16, pool; conv 5x5 16->32, pool; conv 3x3 32->32, pool; conv 3x3 32->64, pool;
    FC flat->128, ReLU; FC 128->2K.  (64 x 64 input: flat = 4 * 4 * 64 = 1024.)

``imm_face_cnn`` (default input 128 x 128, K = 58):
    conv 5x5 1->16, pool; conv 5x5 16->32, pool; conv 3x3 32->32, pool; conv 3x3 32->64, pool;
    conv 3x3 64->64, pool; conv 3x3 64->128 (no pool);
    FC flat->256, ReLU; FC 256->2K.  (128 x 128 input: flat = 4 * 4 * 128 = 2048.)
"""

from __future__ import annotations

import torch
from torch import nn

from faceland.losses import l1_loss, mse_loss, wing_loss
from faceland.models.base import LandmarkModel, register_model

__all__ = ["SmallLandmarkCNN"]

LOSSES = ("mse", "l1", "wing")
_GREY = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma


class SmallLandmarkCNN(LandmarkModel):
    """``[conv -> ReLU -> (max-pool)] * L -> FC -> ReLU -> FC`` coordinate regression.

    Input ``(B, 3, H, W)`` RGB in ``[0, 1]`` with ``(H, W) = input_hw or (N, N)``. With
    ``grayscale=True`` (the course's input) the image becomes one channel
    ``0.299 R + 0.587 G + 0.114 B - 0.5`` in ``[-0.5, 0.5]``; otherwise the three ImageNet-normalised
    channels are used. Output ``"coords"`` ``(B, K, 2)``: normalised coordinates ``(u + 0.5) / W``,
    ``(v + 0.5) / H`` of the input (no heatmaps: this is direct regression).

    Args:
        num_points: K.
        input_size: N of the square input (ignored for the shape when ``input_hw`` is given).
        pretrained: must be False.
        channels, kernels, pools: per conv layer: output channels, odd kernel size, whether a
            2x2 max-pool follows.
        hidden: width of the first fully connected layer.
        loss: ``"mse"`` (course), ``"l1"`` or ``"wing"`` (Feng et al. CVPR 2018, omega 10 /
            epsilon 2 in pixels of a 256-px crop) on normalised coordinates.
        grayscale: grey ``[-0.5, 0.5]`` input (course) instead of ImageNet-normalised RGB.
        input_hw: optional ``(H, W)`` of a non-square input, e.g. ``(60, 80)``.

    Raises:
        ValueError: mismatched layer lists, even kernels, an input too small for the pools,
            unknown loss, pretrained=True; at forward, an input of another size.
    """

    def __init__(self, num_points: int, input_size: int, pretrained: bool = False,
                 channels: tuple[int, ...] = (16, 32, 32, 64),
                 kernels: tuple[int, ...] = (5, 5, 3, 3),
                 pools: tuple[bool, ...] = (True, True, True, True), hidden: int = 128,
                 loss: str = "mse", grayscale: bool = True,
                 input_hw: tuple[int, int] | None = None) -> None:
        super().__init__()
        if pretrained:
            raise ValueError("the IMM CNNs have no pretrained weights; use pretrained=False")
        if not (len(channels) == len(kernels) == len(pools)) or not channels:
            raise ValueError("channels, kernels and pools must be non-empty and of equal length")
        if any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"kernel sizes must be positive odd integers, got {kernels}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
        self.num_points, self.input_size, self.loss_kind = num_points, input_size, loss
        self.grayscale = grayscale
        self.input_hw = tuple(input_hw) if input_hw else (input_size, input_size)
        h, w = self.input_hw
        layers: list[nn.Module] = []
        c_in = 1 if grayscale else 3
        for c, k, p in zip(channels, kernels, pools, strict=True):
            layers += [nn.Conv2d(c_in, c, k, padding=k // 2), nn.ReLU(inplace=True)]
            if p:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c_in = c
        if h < 1 or w < 1:
            raise ValueError(f"input {self.input_hw} is too small for {sum(pools)} 2x poolings")
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in * h * w, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, 2 * num_points))
        out = self.fc[-1]
        nn.init.normal_(out.weight, std=1e-3)
        nn.init.constant_(out.bias, 0.5)
        self.register_buffer("grey", torch.tensor(_GREY).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if tuple(x.shape[-2:]) != self.input_hw:
            raise ValueError(f"expected input (B, 3, {self.input_hw[0]}, {self.input_hw[1]}), "
                             f"got {tuple(x.shape)}")
        y = (x * self.grey).sum(1, keepdim=True) - 0.5 if self.grayscale else self.normalize(x)
        out = self.fc(self.features(y))
        return {"coords": out.view(-1, self.num_points, 2)}

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Coordinate loss on ``(B, K, 2)`` normalised targets."""
        pred = out["coords"]
        if self.loss_kind == "mse":
            return mse_loss(pred, target)
        if self.loss_kind == "l1":
            return l1_loss(pred, target)
        return wing_loss(pred, target, omega=10.0, epsilon=2.0, scale=256.0) / 256.0


@register_model("imm_nose_cnn", smoke={"input_size": 32, "channels": [4, 4, 4, 4], "hidden": 8})
def _imm_nose_cnn(num_points: int = 1, input_size: int = 64, **kw) -> SmallLandmarkCNN:
    return SmallLandmarkCNN(num_points, input_size, **kw)


@register_model("imm_face_cnn", smoke={"input_size": 64, "channels": [4, 4, 4, 4, 4, 4],
                                       "hidden": 8})
def _imm_face_cnn(num_points: int = 58, input_size: int = 128, **kw) -> SmallLandmarkCNN:
    kw.setdefault("channels", (16, 32, 32, 64, 64, 128))
    kw.setdefault("kernels", (5, 5, 3, 3, 3, 3))
    kw.setdefault("pools", (True, True, True, True, True, False))
    kw.setdefault("hidden", 256)
    return SmallLandmarkCNN(num_points, input_size, **kw)
