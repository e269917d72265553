"""UNet pixel-wise landmark classification (seed 004).

Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015 (double 3x3 convolutions, 2x2 max-pool down, 2x2 transposed-convolution up, skip
concatenation), used as in seed 004 Part 4: one map per landmark **at full input resolution**,
normalised by a softmax over its pixels, trained against a discretised Gaussian target that sums
to 1 (``sigma = 0.05`` in normalised coordinates, :class:`faceland.codecs.SoftmaxHeatmap`) with
the seed's loss, the **sum**-reduced squared error between the softmax maps and the targets
(:func:`softmax_mse_sum`; the seed: "The MSE has a reduction method as summation instead of mean,
otherwise the loss will be extremely small (to 1e-9 scale) and the model can hardly learn
anything"), and decoded by soft-argmax. The spatial cross-entropy
(:func:`softmax_cross_entropy`) is an option.
"""

from __future__ import annotations

import torch
from torch import nn

from faceland.codecs import CodecConfig, peak_mass, soft_argmax
from faceland.models.base import LandmarkModel, register_model
from faceland.models.layers import conv_bn_relu

__all__ = ["UNetSoftmax", "softmax_cross_entropy", "softmax_mse_sum", "UNET_LOSSES"]



def softmax_mse_sum(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Seed 004's pixel-wise classification loss: ``sum_{b,k,i,j} (P_bkij - T_bkij)^2``.

    The squared error between the softmax maps and the sum-1 Gaussian targets, **summed** over
    the batch, the landmarks and the pixels (PyTorch's ``MSELoss(reduction="sum")``, as the seed
    writes), so it grows with the batch size.

    Args:
        probs: ``(B, K, H, W)`` predicted maps, each a spatial softmax (sums to 1).
        target: ``(B, K, H, W)`` target maps (each sums to 1, or all zeros for a missing point).

    Raises:
        ValueError: shapes differ or not 4-D.
    """
    if probs.shape != target.shape or probs.ndim != 4:
        raise ValueError(f"probs and target must both be (B, K, H, W); got "
                         f"{tuple(probs.shape)} and {tuple(target.shape)}")
    return ((probs - target) ** 2).sum()


def softmax_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Spatial cross-entropy ``-sum_ij T_ij log softmax(logits)_ij``, mean over the B x K maps.

    Args:
        logits: ``(B, K, H, W)`` unnormalised maps.
        target: ``(B, K, H, W)`` probability maps (each sums to 1, or all zeros for a missing
            landmark, which then adds 0).

    Raises:
        ValueError: shapes differ or not 4-D.
    """
    if logits.shape != target.shape or logits.ndim != 4:
        raise ValueError(f"logits and target must both be (B, K, H, W); got "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")
    b, k, h, w = logits.shape
    logp = torch.log_softmax(logits.reshape(b, k, h * w), dim=-1)
    return -(target.reshape(b, k, h * w) * logp).sum(-1).mean()


#: ``loss=`` choices of :class:`UNetSoftmax`: name -> (loss function, the output it reads).
UNET_LOSSES = {"mse_sum": (softmax_mse_sum, "heatmaps"),
               "cross_entropy": (softmax_cross_entropy, "logits")}


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(c_in, c_out), *conv_bn_relu(c_out, c_out))


class UNetSoftmax(LandmarkModel):
    """UNet with one full-resolution logit map per landmark, soft-argmax coordinates.

    Widths ``D * 2**l`` at level ``l = 0 .. depth`` (the bottom level is ``D * 2**depth``), each
    level two 3x3 conv + BN + ReLU; up-sampling by 2x2 transposed convolutions halving the width,
    concatenation with the encoder features, two 3x3 convs; a final 1x1 convolution gives K maps.
    (The original UNet used unpadded convolutions and D = 64; here convolutions are padded so the
    output has the input's size, and BatchNorm is added.)

    Forward returns ``"coords"`` ``(B, K, 2)`` (soft-argmax of the logits, differentiable),
    ``"heatmaps"`` ``(B, K, N, N)`` (the spatial softmax, sums to 1), ``"logits"`` and
    ``"scores"`` ``(B, K)``: per-landmark confidence in ``[0, 1]``, the softmax mass in the
    densest 5 x 5 window (:func:`faceland.codecs.peak_mass`; full-resolution maps, so a wider
    window than the integral head's 3 x 3 at 1/4 resolution).

    Args:
        num_points: K.
        input_size: N, a multiple of ``2**depth``.
        pretrained: must be False (no pretrained weights).
        base_width: D (seed 004: 128).
        depth: number of 2x down-samplings.
        sigma: target Gaussian sigma in normalised coordinates (seed 004: 0.05).
        loss: ``"mse_sum"`` (the seed's, :func:`softmax_mse_sum`) or ``"cross_entropy"``
            (:func:`softmax_cross_entropy`, mean over the maps).
        grayscale: one grey input channel ``im / 255 - 0.5`` (the seed's) instead of
            ImageNet-normalised RGB.
        codec: the targets' codec (:class:`faceland.codecs.CodecConfig` of kind ``"softmax"``,
            a dict of its fields, or ``"softmax"``; ``sigma`` fills it in).

    Raises:
        ValueError: input size not a multiple of ``2**depth``, depth < 1, unknown loss,
            pretrained=True.
    """

    def __init__(self, num_points: int = 58, input_size: int = 128, pretrained: bool = False,
                 base_width: int = 128, depth: int = 3, sigma: float = 0.05,
                 loss: str = "mse_sum", grayscale: bool = False,
                 codec: str | dict | CodecConfig = "softmax") -> None:
        super().__init__()
        if pretrained:
            raise ValueError("unet_softmax has no pretrained weights; use pretrained=False")
        if loss not in UNET_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {tuple(UNET_LOSSES)}")
        self.loss_kind, self.grayscale = loss, grayscale
        if depth < 1 or input_size % (2 ** depth):
            raise ValueError(f"input_size must be a multiple of 2**depth = {2 ** depth} "
                             f"(depth >= 1), got input_size={input_size}, depth={depth}")
        self.num_points, self.input_size = num_points, input_size
        self.codec_config = CodecConfig.coerce(codec, sigma=sigma)
        if self.codec_config.kind != "softmax":
            raise ValueError(f"unet_softmax needs a softmax codec, not {self.codec_config.kind!r}")
        self.codec = self.codec_config.build(input_size)
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_in = 1 if grayscale else 3
        for c in widths:
            self.down.append(_double_conv(c_in, c))
            c_in = c
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(depth)))
        self.dec = nn.ModuleList(_double_conv(2 * widths[i], widths[i])
                                 for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_points, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.grey(x) if self.grayscale else self.normalize(x)
        skips = []
        for i, block in enumerate(self.down):
            y = block(y if i == 0 else self.pool(y))
            skips.append(y)
        y = skips.pop()
        for up, dec in zip(self.up, self.dec, strict=True):
            y = dec(torch.cat([skips.pop(), up(y)], dim=1))
        logits = self.head(y)
        coords, probs = soft_argmax(logits.float())
        return {"coords": coords, "heatmaps": probs, "logits": logits,
                "scores": peak_mass(probs, window=5)}

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """The ``loss`` against :class:`~faceland.codecs.SoftmaxHeatmap` targets of ``target``
        ``(B, K, 2)`` normalised coordinates."""
        with torch.no_grad():
            t = self.codec.encode(target.float())
        fn, key = UNET_LOSSES[self.loss_kind]
        return fn(out[key].float(), t)


@register_model("unet_softmax", smoke={"input_size": 64, "base_width": 4, "depth": 2})
def _unet_softmax(**kw) -> UNetSoftmax:
    return UNetSoftmax(**kw)
