"""Stacked hourglass heatmap regression (seed 001).

Newell, Yang & Deng, "Stacked Hourglass Networks for Human Pose Estimation", ECCV 2016, with seed
001's changes for facial landmarks:

* a **CoordConv** first layer (Liu et al., "An Intriguing Failing of Convolutional Neural Networks
  and the CoordConv Solution", NeurIPS 2018): two channels holding the normalised x and y of each
  input pixel are concatenated to the image before the stem convolution;
* an attention block before each upsampling layer of every hourglass: **Coordinate Attention**
  (Hou, Zhou & Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021) or
  **Squeeze-and-Excitation** (Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018);
* "Gaussian with offset" targets (7 x 7, ``sigma = 1.75``, heatmaps at 1/4 of the input) decoded
  with a sub-pixel fit, and the weighted heatmap MSE (foreground weight 10);
* defaults: 2 stacks, hourglass depth 4 (four 2x down-samplings), 128 channels.

Intermediate supervision: every stack predicts heatmaps and the loss is summed over the stacks;
the last stack's heatmaps are the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from faceland.codecs import DECODERS, CodecConfig, cell_centres
from faceland.losses import HEATMAP_LOSSES, heatmap_loss
from faceland.models.base import LandmarkModel, register_model
from faceland.models.layers import CoordinateAttention, SqueezeExcitation, conv_bn_relu

__all__ = ["Residual", "HPMBlock", "BLOCKS", "SqueezeExcitation", "CoordinateAttention", "Hourglass",
           "StackedHourglass", "add_coord_channels"]

ATTENTIONS = ("ca", "se", "none")


def add_coord_channels(x: torch.Tensor) -> torch.Tensor:
    """CoordConv input: ``(B, C, H, W)`` -> ``(B, C + 2, H, W)``.

    The two extra channels are the pixel-centre coordinates scaled to ``[-1, 1]``:
    ``2 (j + 0.5) / W - 1`` (x, channel ``C``) and ``2 (i + 0.5) / H - 1`` (y, channel ``C + 1``).
    """
    b, _, h, w = x.shape
    xs = cell_centres(w, x.device, x.dtype) * 2 - 1
    ys = cell_centres(h, x.device, x.dtype) * 2 - 1
    gx = xs.view(1, 1, 1, w).expand(b, 1, h, w)
    gy = ys.view(1, 1, h, 1).expand(b, 1, h, w)
    return torch.cat([x, gx, gy], dim=1)


class Residual(nn.Module):
    """Newell's pre-activation bottleneck: BN-ReLU-1x1 (c/2), BN-ReLU-3x3 (c/2), BN-ReLU-1x1 (c),
    plus the input (through a 1x1 convolution when the channel count changes).

    Shapes: ``(B, c_in, H, W)`` -> ``(B, c_out, H, W)``.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = max(1, c_out // 2)
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, c_out, 1),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class HPMBlock(nn.Module):
    """FAN's hierarchical, parallel and multi-scale residual block (Bulat & Tzimiropoulos, "How
    far are we from solving the 2D & 3D face alignment problem?", ICCV 2017, Fig. 2; seed 001's
    reference [2]).

    Three pre-activation 3x3 convolutions in sequence, BN-ReLU-conv ``c_in -> c_out/2``, then
    ``c_out/2 -> c_out/4``, then ``c_out/4 -> c_out/4`` (no bias); their outputs are concatenated
    (``c_out`` channels) and the input is added (through BN-ReLU-1x1 conv when the channel count
    changes). About ``6.2 c^2`` weights for ``c -> c``, against ``3.25 c^2`` for Newell's
    bottleneck (:class:`Residual`); with it the hourglass reproduces seed 001's Table 1 model
    sizes.

    Shapes: ``(B, c_in, H, W)`` -> ``(B, c_out, H, W)``; ``c_out`` divisible by 4.

    Raises:
        ValueError: ``c_out`` not divisible by 4.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 4:
            raise ValueError(f"HPMBlock needs c_out divisible by 4, got {c_out}")
        widths = [(c_in, c_out // 2), (c_out // 2, c_out // 4), (c_out // 4, c_out // 4)]
        self.convs = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(a), nn.ReLU(inplace=True),
                          nn.Conv2d(a, b, 3, padding=1, bias=False)) for a, b in widths)
        self.skip = nn.Identity() if c_in == c_out else nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs, y = [], x
        for conv in self.convs:
            y = conv(y)
            outs.append(y)
        return torch.cat(outs, dim=1) + self.skip(x)


BLOCKS = {"hpm": HPMBlock, "bottleneck": Residual}


#: Attention blocks before upsampling (seed 001 sec. 1.3): name -> (block, default reduction).
ATTENTION_BLOCKS: dict[str, tuple] = {
    "ca": (CoordinateAttention, 32), "se": (SqueezeExcitation, 16), "none": (None, None)}


def _attention(kind: str, channels: int, reduction: int | None = None) -> nn.Module:
    if kind not in ATTENTION_BLOCKS:
        raise ValueError(f"unknown attention {kind!r}; expected one of {ATTENTIONS}")
    block, default = ATTENTION_BLOCKS[kind]
    return nn.Identity() if block is None else block(channels, reduction or default)


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels (recursive, Newell et al. Fig. 3).

    ``out = up1(x) + upsample(att(low3(inner(low1(maxpool(x))))))`` where ``up1``, ``low1``,
    ``low3`` are residual blocks (``block``: :class:`HPMBlock` or :class:`Residual`), ``inner``
    is the next hourglass level (a residual at the bottom), ``att`` the attention block placed
    **before each upsampling** (seed 001) and the upsampling is nearest-neighbour 2x.
    Shapes: ``(B, c, H, W)`` -> same (H, W divisible by ``2**depth``).
    """

    def __init__(self, depth: int, channels: int, attention: str = "ca",
                 block: str = "hpm", attention_reduction: int | None = 4) -> None:
        super().__init__()
        res = BLOCKS[block]
        self.up1 = res(channels, channels)
        self.low1 = res(channels, channels)
        self.inner = (Hourglass(depth - 1, channels, attention, block, attention_reduction)
                      if depth > 1 else res(channels, channels))
        self.low3 = res(channels, channels)
        self.att = _attention(attention, channels, attention_reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.att(self.low3(self.inner(self.low1(F.max_pool2d(x, 2)))))
        return self.up1(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class StackedHourglass(LandmarkModel):
    """Stacked hourglass with CoordConv and attention; heatmaps at 1/4 of the input.

    Layout: [CoordConv] 7x7 stride-2 convolution (c/2) + BN + ReLU, block(c/2 -> c), 2x2 max
    pool, ``stem_blocks`` x block(c -> c) (Newell's stem has 2; 1 reproduces seed 001's Table 1
    sizes, see ``block``), widths scaled to ``channels``; then
    ``stacks`` x [Hourglass(depth) -> block -> 1x1 conv + BN + ReLU -> 1x1 conv to K heatmaps];
    between stacks the features and the heatmaps (each through a 1x1 convolution) are added to
    the stack's input (Newell et al. Fig. 4).

    Forward returns:

    * ``"coords"``: ``(B, K, 2)`` normalised crop coordinates decoded (no gradient) from the last
      stack's heatmaps with the codec's sub-pixel decoder;
    * ``"heatmaps"``: ``(B, K, N/4, N/4)`` last stack's heatmaps (target scale: peak 1);
    * ``"scores"``: ``(B, K)`` per-landmark confidence, each heatmap's peak clamped to
      ``[0, 1]`` (the targets peak at 1);
    * ``"stack_heatmaps"``: ``(S, B, K, N/4, N/4)`` every stack's heatmaps (for the loss).

    :meth:`loss` encodes the ``(B, K, 2)`` normalised targets with the codec and sums the heatmap
    loss over the stacks (intermediate supervision).

    Args:
        num_points: K.
        input_size: N, a multiple of ``4 * 2**depth``.
        pretrained: must be False (no ImageNet weights exist for this architecture).
        stacks: number of hourglasses S (seed 001: 2).
        depth: down-samplings per hourglass (seed 001: 4).
        channels: feature width c (seed 001: 128).
        attention: ``"ca"`` (Coordinate Attention, default), ``"se"`` or ``"none"``.
        coordconv: concatenate coordinate channels before the stem convolution.
        codec: a :class:`faceland.codecs.CodecConfig`, a dict of its fields or a kind name:
            ``"offset_gaussian"`` (default; decoder ``"subpixel"``), ``"gaussian"`` (plain,
            decoder ``"argmax_shift"``) or ``"randomized_rounding"`` (decoder
            ``"local_mean"``); ``sigma``, ``kernel_size`` and ``decoder`` fill what it leaves out.
        sigma: Gaussian sigma in heatmap pixels (seed 001: 1.75; randomized rounding: as given).
        kernel_size: Gaussian support (seed 001: 7).
        loss: a heatmap loss of :data:`faceland.losses.HEATMAP_LOSSES` with its default map
            weight: ``"weighted_mse"`` (default, seed 001; w = 10, threshold 0.2, 3x3 dilation),
            ``"mse"``, ``"awing"`` (Adaptive Wing with the weighted loss map) or
            ``"smooth_wing"``.
        decoder: override the codec's decoder (one of :data:`faceland.codecs.DECODERS`).
        block: the residual block everywhere: ``"hpm"`` (default, FAN's block, seed 001's
            reference [2]) or ``"bottleneck"`` (Newell's). With ``"hpm"``, ``stem_blocks=1``
            and ``attention_reduction=4`` (the defaults) the model sizes of seed 001's Table 1
            are reproduced within 2 % for its five 128-channel rows (11.87 MB against 11.8 for
            2 stacks, depth 4; 12.28 against 12.2 with Coordinate Attention and CoordConv,
            Table 2); its 256-channel row comes out 10 % larger (15.5 against 14.0 MB).
            ``block="bottleneck", stem_blocks=2, attention_reduction=None`` is faceland's
            layout before 2026-12 (about 0.57x the sizes), kept so that the shipped
            ``faceland-300w-hourglass-2x64-128`` and the recorded CPU rows load.
        stem_blocks: residual blocks after the stem's max-pool.
        attention_reduction: channel reduction r of the attention blocks (4 matches Table 2's
            size increments of SE and CA); ``None``: the attention papers' own (CA 32, SE 16).

    Raises:
        ValueError: bad input size, unknown attention / codec / loss / decoder / block, channels
            not divisible by 4 with ``block="hpm"``, pretrained=True.
    """

    def __init__(self, num_points: int = 68, input_size: int = 256, pretrained: bool = False,
                 stacks: int = 2, depth: int = 4, channels: int = 128, attention: str = "ca",
                 coordconv: bool = True, codec: str | dict | CodecConfig = "offset_gaussian",
                 sigma: float = 1.75,
                 kernel_size: int = 7, loss: str = "weighted_mse",
                 decoder: str | None = None, block: str = "hpm", stem_blocks: int = 1,
                 attention_reduction: int | None = 4) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; expected one of {sorted(BLOCKS)}")
        if pretrained:
            raise ValueError("hourglass has no pretrained weights; use pretrained=False")
        if stacks < 1 or depth < 1 or channels < 2:
            raise ValueError(f"need stacks >= 1, depth >= 1, channels >= 2; got {stacks}, "
                             f"{depth}, {channels}")
        if input_size % (4 * 2 ** depth):
            raise ValueError(f"input_size must be a multiple of 4 * 2**depth = {4 * 2 ** depth}, "
                             f"got {input_size}")
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; expected one of {ATTENTIONS}")
        if loss not in HEATMAP_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(HEATMAP_LOSSES)}")
        if decoder is not None and decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
        self.num_points, self.input_size = num_points, input_size
        self.stacks, self.loss_kind, self.coordconv = stacks, loss, coordconv
        self.codec_config = CodecConfig.coerce(codec, sigma=sigma, kernel_size=kernel_size,
                                               decoder=decoder)
        self.codec = self.codec_config.build(input_size // 4)
        c = channels
        half = max(1, c // 2)
        res = BLOCKS[block]
        self.stem = nn.Sequential(
            nn.Conv2d(3 + (2 if coordconv else 0), half, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            res(half, c), nn.MaxPool2d(2), *(res(c, c) for _ in range(stem_blocks)),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, c, attention, block, attention_reduction)
                                         for _ in range(stacks))
        self.features = nn.ModuleList(
            nn.Sequential(res(c, c), *conv_bn_relu(c, c, 1))
            for _ in range(stacks))
        self.heads = nn.ModuleList(nn.Conv2d(c, num_points, 1) for _ in range(stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(num_points, c, 1) for _ in range(stacks - 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalize(x)
        if self.coordconv:
            x = add_coord_channels(x)
        y = self.stem(x)
        outs = []
        for i in range(self.stacks):
            f = self.features[i](self.hourglasses[i](y))
            hm = self.heads[i](f)
            outs.append(hm)
            if i < self.stacks - 1:
                y = y + self.merge_features[i](f) + self.merge_heatmaps[i](hm)
        with torch.no_grad():
            coords, scores = self.codec.decode(outs[-1].detach().float())
        return {"coords": coords, "heatmaps": outs[-1], "stack_heatmaps": torch.stack(outs),
                "scores": scores.clamp(0.0, 1.0)}

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Heatmap loss summed over stacks; ``target`` ``(B, K, 2)`` normalised coordinates."""
        stack_hm = out["stack_heatmaps"]
        with torch.no_grad():
            t = self.codec.encode(target.float()).to(stack_hm.dtype)
        total = stack_hm.new_zeros(())
        for hm in stack_hm:
            total = total + heatmap_loss(self.loss_kind, hm, t)
        return total


@register_model("hourglass", smoke={"input_size": 64, "stacks": 2, "depth": 2, "channels": 16})
def _hourglass(**kw) -> StackedHourglass:
    return StackedHourglass(**kw)
