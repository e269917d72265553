"""Peer-class landmark networks, rebuilt for **timing only** (random weights, 112 px input).

The public 112 px systems users compare faceland with (PFLD, MobileFaceNet) ship as ONNX files
that cannot be downloaded here; their speed depends on the architecture, not on the weights, so
the benchmarks time these re-creations through the same ONNX Runtime settings as faceland:

* :class:`PFLDBackbone`: PFLD's landmark branch (Guo et al., "PFLD: A Practical Facial Landmark
  Detector", 2019, Table 1; width 1x, as in the widely used PyTorch port): a 3x3 stem, inverted
  residual stages at 64 and 128 channels, a 16-channel stage, 3x3/7x7 convolutions and the
  multi-scale fully connected output of 136 values.
* :func:`mobilenet_v3_small_112`: torchvision's MobileNetV3-small with a 136-value head, the
  smallest common mobile regressor (a lower bound, not a peer of equal accuracy).

Nothing here is used by the library.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

__all__ = ["PFLDBackbone", "mobilenet_v3_small_112", "peer_graph"]


def _cbr(cin: int, cout: int, k: int, s: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        h = cin * expand
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(_cbr(cin, h, 1, 1), _cbr(h, h, 3, stride, groups=h),
                                  nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class PFLDBackbone(nn.Module):
    """PFLD 1x landmark branch: ``(B, 3, 112, 112)`` -> ``(B, 136)``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(_cbr(3, 64, 3, 2), _cbr(64, 64, 3, 1, groups=64))
        self.stage3 = nn.Sequential(_InvertedResidual(64, 64, 2, 2),
                                    *[_InvertedResidual(64, 64, 1, 2) for _ in range(4)])
        self.stage4 = nn.Sequential(_InvertedResidual(64, 128, 2, 2),
                                    *[_InvertedResidual(128, 128, 1, 4) for _ in range(6)],
                                    _InvertedResidual(128, 16, 1, 2))
        self.conv7 = _cbr(16, 32, 3, 2)
        self.conv8 = nn.Sequential(nn.Conv2d(32, 128, 7), nn.ReLU(inplace=True))
        self.fc = nn.Linear(16 + 32 + 128, 136)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage4(self.stage3(self.stem(x)))
        s1 = x.mean((2, 3))
        x = self.conv7(x)
        s2 = x.mean((2, 3))
        s3 = self.conv8(x).flatten(1)
        return self.fc(torch.cat([s1, s2, s3], 1))


def mobilenet_v3_small_112() -> nn.Module:
    """torchvision MobileNetV3-small with 136 outputs (68 x 2), for 112 px input."""
    return torchvision.models.mobilenet_v3_small(num_classes=136)


def peer_graph(net: nn.Module, folder: str | Path, name: str, runtime: str = "onnx"):
    """``net`` (a 112 px peer) exported to ``folder/name.onnx`` (once) and opened with
    faceland's runtime settings (:class:`faceland.runtimes.OnnxLandmarkModel`: same threads and
    denormal flushing as faceland's own graphs); input ``input`` ``(B, 3, 112, 112)``."""
    from faceland.runtimes import OnnxLandmarkModel

    path = Path(folder) / f"{name}.onnx"
    if not path.exists():
        torch.onnx.export(net.eval(), (torch.rand(1, 3, 112, 112),), str(path),
                          input_names=["input"], output_names=["out"], opset_version=17,
                          dynamo=False)
    return OnnxLandmarkModel(path, runtime=runtime)
