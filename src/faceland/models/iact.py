"""IACT: intensive attention in a convolution-transformer network, heatmap-based landmarks.

Z. Gao, K. Chen, D. Yu, "IACT: Intensive Attention in Convolution-Transformer Network for Facial
Landmark Localization", SCITEPRESS 2023 (course seed 003). Equation numbers refer to that paper as
cited in the seed brief; the feature/channel attention and the fusion head carry no equation
number there and are this module's reading of the text:

* **Convolution branch**: per module two stride-1 ``Conv3x3-BN-ReLU`` blocks (local detail at
  the module's resolution).
* **Transformer branch**: a convolutional embedding (``Conv3x3`` stride 2 + LayerNorm over the
  channels, eq. 1) halves the resolution; then multi-head spatial attention whose Q, K, V
  projections are deformable convolutions (eqs. 2-4; :class:`DeformableSpatialAttention`) and an
  FFN with GELU (eq. 5), each pre-norm with a residual connection.
* **Feature attention** (exchange between branches): the convolution branch is average-pooled to
  the transformer branch's (lowest) resolution, both are concatenated, a ``Conv1x1-BN-ReLU``
  mixes them and a ``Conv1x1`` projects back to each branch's width; the result is added to the
  branch (bilinearly upsampled for the convolution branch). **Channel attention**: a
  squeeze-and-excitation gate (Hu et al., CVPR 2018) on each branch.
* Three such modules in sequence (each feeds its transformer output to the next) give four
  resolutions ``N/4, N/8, N/16, N/32``; they are upsampled to ``N/4``, concatenated and mapped to
  ``K`` heatmaps of ``N/4 x N/4`` (64 x 64 for the paper's 256-px input).
* Training targets: randomized-rounding Gaussian heatmaps
  (:class:`faceland.codecs.RandomizedRoundingHeatmap`); loss: Smooth Wing on the heatmaps
  (:func:`faceland.losses.smooth_wing_loss`).

Attention cost: the transformer branch attends over its own, already downsampled token grid
(``(N/8)^2`` tokens in the first module: 1024 at 256 px); ``kv_strides`` can further subsample keys
and values (the K/V deformable convolutions then run with that stride).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d

from faceland.codecs import DECODERS, RandomizedRoundingHeatmap
from faceland.losses import mse_loss, smooth_wing_loss, weighted_mse_loss
from faceland.models.base import LandmarkModel, register_model

__all__ = ["IACT", "DeformableProjection", "DeformableSpatialAttention", "IACTModule"]


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class _ChannelNorm(nn.Module):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class DeformableProjection(nn.Module):
    """A deformable convolution whose sampling offsets a plain convolution predicts from the input.

    ``y = DeformConv(x, offsets = Conv(x))`` (Dai et al., "Deformable Convolutional Networks", ICCV
    2017, eq. 2). The offset convolution starts at zero, so at initialisation this is an ordinary
    ``k x k`` convolution.

    Args:
        cin, cout: channels. kernel_size: k (odd). stride: output stride (1 or the K/V
            subsampling).

    Shapes: ``(B, cin, H, W)`` -> ``(B, cout, ceil(H / stride), ceil(W / stride))``; offsets are in
    input pixels, ``(B, 2 k^2, H', W')``.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        p = kernel_size // 2
        self.offset = nn.Conv2d(cin, 2 * kernel_size * kernel_size, kernel_size, stride, p)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.conv = DeformConv2d(cin, cout, kernel_size, stride, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.offset(x))


class DeformableSpatialAttention(nn.Module):
    """Multi-head spatial self-attention with deformable Q/K/V projections (IACT eqs. 2-4).

    ``Q = DConv_q(x)``, ``K = DConv_k(x)``, ``V = DConv_v(x)`` (each :class:`DeformableProjection`);
    per head ``softmax(Q K^T / sqrt(d_h)) V`` over the spatial positions (tokens = pixels of the
    map); the heads are concatenated and mixed by a ``1x1`` convolution.

    Args:
        dim: channels C (divisible by ``heads``).
        heads: attention heads.
        kernel_size: deformable kernel size.
        kv_stride: stride of the K/V projections (keys/values on a ``1/kv_stride`` grid).
        dropout: attention dropout.

    Shapes: ``(B, C, H, W)`` -> ``(B, C, H, W)``.

    Raises:
        ValueError: ``heads`` does not divide ``dim``.
    """

    def __init__(self, dim: int, heads: int, kernel_size: int = 3, kv_stride: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        self.heads, self.dropout = heads, dropout
        self.q = DeformableProjection(dim, dim, kernel_size)
        self.k = DeformableProjection(dim, dim, kernel_size, kv_stride)
        self.v = DeformableProjection(dim, dim, kernel_size, kv_stride)
        self.proj = nn.Conv2d(dim, dim, 1)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = t.shape
        return t.reshape(b, self.heads, c // self.heads, h * w).transpose(-1, -2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(a.transpose(-1, -2).reshape(b, c, h, w))


class _TransformerBlock(nn.Module):
    """Pre-norm block: ``x + Attn(LN(x))`` (eqs. 2-4), then ``x + FFN(LN(x))`` (eq. 5, GELU)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, kv_stride: int,
                 dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = _ChannelNorm(dim), _ChannelNorm(dim)
        self.attn = DeformableSpatialAttention(dim, heads, 3, kv_stride, dropout)
        hidden = int(dim * mlp_ratio)
        self.ffn = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Dropout(dropout),
                                 nn.Conv2d(hidden, dim, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class _SqueezeExcite(nn.Module):
    """Channel attention: ``x * sigmoid(W2 relu(W1 avgpool(x)))``."""

    def __init__(self, dim: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(dim // reduction, 8)
        self.fc = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(hidden, dim, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(F.adaptive_avg_pool2d(x, 1))


class IACTModule(nn.Module):
    """One IACT module: parallel convolution / transformer branches, feature and channel attention.

    Args:
        cin: input channels (the convolution branch keeps them).
        cout: transformer-branch channels (after the stride-2 embedding).
        heads, mlp_ratio, depth, kv_stride, dropout: transformer-branch settings (``depth``
            transformer blocks after the embedding).

    Shapes: ``(B, cin, R, R)`` -> ``(conv (B, cin, R, R), trans (B, cout, R/2, R/2))`` (``R``
    even).
    """

    def __init__(self, cin: int, cout: int, heads: int, mlp_ratio: float = 4.0, depth: int = 1,
                 kv_stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv_branch = nn.Sequential(_cbr(cin, cin), _cbr(cin, cin))
        self.embed = nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), _ChannelNorm(cout))  # eq. 1
        self.blocks = nn.Sequential(*(_TransformerBlock(cout, heads, mlp_ratio, kv_stride, dropout)
                                      for _ in range(depth)))
        self.mix = _cbr(cin + cout, cin + cout, k=1)
        self.back_conv = nn.Conv2d(cin + cout, cin, 1)
        self.back_trans = nn.Conv2d(cin + cout, cout, 1)
        self.se_conv, self.se_trans = _SqueezeExcite(cin), _SqueezeExcite(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.conv_branch(x)
        t = self.blocks(self.embed(x))
        m = self.mix(torch.cat([F.adaptive_avg_pool2d(c, t.shape[-2:]), t], dim=1))
        c = c + F.interpolate(self.back_conv(m), size=c.shape[-2:], mode="bilinear",
                              align_corners=False)
        t = t + self.back_trans(m)
        return self.se_conv(c), self.se_trans(t)


class IACT(LandmarkModel):
    """IACT heatmap model (course seed 003).

    Input ``(B, 3, N, N)`` RGB in ``[0, 1]``, ``N`` a multiple of 32. ``forward`` returns

    * ``"heatmaps"``: ``(B, K, N/4, N/4)`` raw heatmap predictions (no activation; the targets are
      Gaussians with peak 1 on a zero background);
    * ``"coords"``: ``(B, K, 2)`` normalised crop coordinates decoded from the (detached)
      heatmaps with ``decoder`` (:func:`faceland.codecs.decode_heatmaps`);
    * ``"scores"``: ``(B, K)`` per-landmark confidence: the maximum of each heatmap, clamped to
      ``[0, 1]`` (the targets peak at 1).

    Stem: two ``Conv3x3-BN-ReLU`` of stride 2 to ``widths[0]`` channels at ``N/4``; three
    :class:`IACTModule` with widths ``widths[i] -> widths[i + 1]``; head: the four outputs
    (convolution branches of the three modules at ``N/4, N/8, N/16`` and the last transformer
    branch at ``N/32``) bilinearly upsampled to ``N/4``, concatenated, ``Conv1x1-BN-ReLU`` to
    ``widths[0]``, ``Conv3x3-BN-ReLU``, ``Conv1x1`` to K.

    Decoding: the default ``"local_mean"`` (mean of the cell centres weighted by the heatmap in a
    window around the maximum) is the codec's own decoder for randomized-rounding targets: a
    network trained on random draws regresses the expected target (a bilinear mixture of the
    Gaussians at the four cells around the true point), which ``local_mean`` inverts exactly;
    ``"argmax_shift"`` (quarter-pixel shift, Newell et al. 2016) and ``"soft_argmax"`` are
    available.

    Args:
        num_points: K.
        input_size: N.
        pretrained: accepted for interface uniformity; IACT has no pretrained backbone, so
            ``True`` raises.
        widths: channels at ``N/4, N/8, N/16, N/32``.
        heads: attention heads of the three transformer branches.
        depth: transformer blocks per module.
        mlp_ratio: FFN hidden width / channels.
        kv_strides: K/V subsampling of the three modules' attention.
        dropout: transformer dropout.
        sigma: target Gaussian standard deviation, heatmap pixels.
        decoder: heatmap decoder, one of :data:`faceland.codecs.DECODERS`.
        loss: ``"smooth_wing"`` (the seed's; :func:`~faceland.losses.smooth_wing_loss` with its
            defaults ``omega=14, theta1=0.05, theta2=0.5, alpha=2.1, epsilon=1`` on heatmap
            values) or ``"mse"`` (heatmap MSE).
        loss_weight: ``w`` of the weighted loss map (each cell's loss times ``w * M + 1``, ``M``
            the dilated foreground, :func:`~faceland.losses.loss_weight_map`; Adaptive Wing's
            Weighted Loss Map, ``w = 10`` there); 0 = the plain mean over all cells. Not in
            the seed's description: faceland's remedy for maps collapsing to zero at CPU scale.

    Raises:
        ValueError: ``input_size`` not a multiple of 32, wrong tuple lengths, unknown decoder or
            loss, negative ``loss_weight``, ``pretrained=True``.
    """

    def __init__(self, num_points: int = 68, input_size: int = 256, pretrained: bool = False,
                 widths: tuple[int, ...] | list[int] = (64, 128, 256, 512),
                 heads: tuple[int, ...] | list[int] = (2, 4, 8), depth: int = 1,
                 mlp_ratio: float = 4.0, kv_strides: tuple[int, ...] | list[int] = (1, 1, 1),
                 dropout: float = 0.0, sigma: float = 1.5, decoder: str = "local_mean",
                 loss: str = "smooth_wing", loss_weight: float = 0.0) -> None:
        super().__init__()
        if input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
        if len(widths) != 4 or len(heads) != 3 or len(kv_strides) != 3:
            raise ValueError("need 4 widths, 3 heads and 3 kv_strides")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
        if loss not in ("smooth_wing", "mse"):
            raise ValueError(f"unknown loss {loss!r} (expected 'smooth_wing' or 'mse')")
        if pretrained:
            raise ValueError("IACT has no pretrained weights (pretrained must be False)")
        if loss_weight < 0:
            raise ValueError(f"loss_weight must be >= 0, got {loss_weight}")
        self.num_points, self.input_size, self.loss_kind = num_points, input_size, loss
        self.loss_weight = float(loss_weight)
        self.heatmap_size = input_size // 4
        self.decoder = decoder
        self.codec = RandomizedRoundingHeatmap((self.heatmap_size, self.heatmap_size), sigma=sigma,
                                               decoder=decoder)
        w = list(widths)
        self.stem = nn.Sequential(_cbr(3, w[0], stride=2), _cbr(w[0], w[0], stride=2))
        self.stages = nn.ModuleList(
            IACTModule(w[i], w[i + 1], heads[i], mlp_ratio, depth, kv_strides[i], dropout)
            for i in range(3))
        self.fuse = nn.Sequential(_cbr(sum(w), w[0], k=1), _cbr(w[0], w[0]))
        self.head = nn.Conv2d(w[0], num_points, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.stem(self.normalize(x))
        outs = []
        for stage in self.stages:
            c, y = stage(y)
            outs.append(c)
        outs.append(y)
        size = outs[0].shape[-2:]
        fused = torch.cat([outs[0]] + [F.interpolate(o, size=size, mode="bilinear",
                                                     align_corners=False) for o in outs[1:]], 1)
        heatmaps = self.head(self.fuse(fused))
        coords, scores = self.codec.decode(heatmaps.detach())
        return {"coords": coords, "heatmaps": heatmaps, "scores": scores.clamp(0.0, 1.0)}

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Heatmap loss against a fresh randomized-rounding encoding of the ``(B, K, 2)``
        normalised targets (a new random draw per call, i.e. per training step)."""
        hm = out["heatmaps"]
        t = self.codec.encode(target.to(hm.dtype)).to(hm.device)
        if self.loss_kind == "mse":
            if self.loss_weight:
                return weighted_mse_loss(hm, t, w=self.loss_weight)
            return mse_loss(hm, t)
        return smooth_wing_loss(hm, t, weighted=self.loss_weight > 0, w=self.loss_weight)


@register_model("iact", smoke={"input_size": 64, "widths": (8, 16, 16, 32), "heads": (1, 2, 2),
                               "mlp_ratio": 2.0})
def _iact(**kw) -> IACT:
    return IACT(**kw)
