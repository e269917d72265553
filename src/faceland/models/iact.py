"""IACT: intensive attention in a convolution-transformer network, heatmap-based landmarks.

Z. Gao, K. Chen, D. Yu, "IACT: Intensive Attention in Convolution-Transformer Network for Facial
Landmark Localization", 2023 (course seed 003; ``../shared/papers/003_*``). Section and equation
numbers below are the paper's:

* **Stem** ("in the initial stage, we use CNN Layer to extract low-level features", sec. 2.2):
  two ``Conv3x3-BN-ReLU`` of stride 2, ``C = widths[0]`` channels at ``N/4``.
* **Convolution stages** (sec. 2.2): four modules, each two stride-1 ``Conv3x3-BN-ReLU`` blocks
  with ``C`` channels, all at ``N/4``: "the C-feature maps are always the highest resolution".
* **Transformer stages** (sec. 2.1, Fig. 2), three: a convolutional embedding (``Conv3x3``
  stride 2 + LayerNorm over the channels, eq. 1) halves the resolution and widens the channels;
  multi-head spatial attention whose Q, K, V projections are deformable convolutions (eqs. 2-4;
  :class:`DeformableSpatialAttention`) and an FFN with GELU (eq. 5), each pre-norm with a
  residual connection.
* **Feature attention and channel attention** (sec. 2.2) at the end of each stage: the
  convolution stage's C-feature map is downsampled (average pooling) to the transformer stage's
  resolution, the two are concatenated ("channel connection"), a channel-attention gate (Woo et
  al., CBAM, ECCV 2018: ``sigmoid(MLP(avgpool) + MLP(maxpool))``) weighs the channels, and a
  ``Conv1x1-BN-ReLU`` gives the stage's multi-model feature map, which feeds the next
  transformer stage.
* **Fusion and heatmaps** (sec. 2.2, last paragraph): the three multi-model maps (``N/8, N/16,
  N/32``) are bilinearly interpolated to the C-feature map's ``N/4``, concatenated with it and
  mapped by convolutions to ``K`` heatmaps of ``N/4 x N/4`` (64 x 64 for the paper's 256 px).
* Targets: randomized-rounding Gaussian heatmaps (Yu & Tao, 2021;
  :class:`faceland.codecs.RandomizedRoundingHeatmap`); decoding: "the maximum activation points"
  (``decoder="argmax"``); loss: Smooth Wing on the heatmaps (eq. 6,
  :func:`faceland.losses.smooth_wing_loss`).

Attention cost: each transformer stage attends over its own token grid (``(N/8)^2`` tokens in
the first: 1024 at 256 px); ``kv_strides`` can subsample keys and values (the K/V deformable
convolutions then run with that stride; 1 = the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d

from faceland.codecs import DECODERS, CodecConfig
from faceland.losses import HEATMAP_LOSSES, heatmap_loss
from faceland.models.base import LandmarkModel, register_model
from faceland.models.layers import ChannelAttention, conv_bn_relu

__all__ = ["IACT", "ChannelAttention", "DeformableProjection", "DeformableSpatialAttention",
           "IACTStage"]


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


class IACTStage(nn.Module):
    """One transformer stage with its feature and channel attention (IACT sec. 2.1-2.2).

    ``t = Blocks(Embed(f))`` (eq. 1, then ``depth`` blocks of eqs. 2-5); the C-feature map ``c``
    is average-pooled to ``t``'s resolution, ``[pool(c), t]`` is concatenated, weighed by
    :class:`ChannelAttention` and projected by ``Conv1x1-BN-ReLU`` to ``cout`` channels: the
    stage's multi-model feature map.

    Args:
        cin: channels of the previous stage's map ``f``.
        cout: channels of this stage (embedding and output).
        c_conv: channels of the C-feature map.
        heads, mlp_ratio, depth, kv_stride, dropout: transformer settings.

    Shapes: ``f (B, cin, R, R)``, ``c (B, c_conv, R', R')`` -> ``(B, cout, R/2, R/2)`` (``R``
    even).
    """

    def __init__(self, cin: int, cout: int, c_conv: int, heads: int, mlp_ratio: float = 4.0,
                 depth: int = 1, kv_stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), _ChannelNorm(cout))  # eq. 1
        self.blocks = nn.Sequential(*(_TransformerBlock(cout, heads, mlp_ratio, kv_stride, dropout)
                                      for _ in range(depth)))
        self.channel_attention = ChannelAttention(c_conv + cout)
        self.project = conv_bn_relu(c_conv + cout, cout, k=1)

    def forward(self, f: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        t = self.blocks(self.embed(f))
        m = torch.cat([F.adaptive_avg_pool2d(c, t.shape[-2:]), t], dim=1)
        return self.project(self.channel_attention(m))


class IACT(LandmarkModel):
    """IACT heatmap model (course seed 003).

    Input ``(B, 3, N, N)`` RGB in ``[0, 1]``, ``N`` a multiple of 32. ``forward`` returns

    * ``"heatmaps"``: ``(B, K, N/4, N/4)`` raw heatmap predictions (no activation; the targets are
      Gaussians with peak 1 on a zero background);
    * ``"coords"``: ``(B, K, 2)`` normalised crop coordinates decoded from the (detached)
      heatmaps with ``decoder`` (:func:`faceland.codecs.decode_heatmaps`);
    * ``"scores"``: ``(B, K)`` per-landmark confidence: the maximum of each heatmap, clamped to
      ``[0, 1]`` (the targets peak at 1).

    Stem: two ``Conv3x3-BN-ReLU`` of stride 2 to ``C = widths[0]`` channels at ``N/4``; four
    convolution modules (two stride-1 ``Conv3x3-BN-ReLU`` each, ``C`` channels, all at ``N/4``);
    three :class:`IACTStage` with widths ``widths[1..3]`` at ``N/8, N/16, N/32``, stage ``i``
    reading the previous stage's map (the stem for the first) and convolution module ``i``'s
    C-feature map; head: the fourth module's C-feature map and the three stage maps (bilinearly
    upsampled to ``N/4``) concatenated, ``Conv1x1-BN-ReLU`` to ``C``, ``Conv3x3-BN-ReLU``,
    ``Conv1x1`` to K.

    Decoding: the default ``"argmax"`` is the paper's ("decoding the maximum activation points",
    sec. 2.2), quantised to the heatmap grid (a quarter of the input's pixels). ``"local_mean"``
    (mean of the cell centres weighted by the heatmap in a window around the maximum) is the
    randomized-rounding codec's own sub-pixel decoder: a network trained on random draws
    regresses the expected target (a bilinear mixture of the Gaussians at the four cells around
    the true point), which ``local_mean`` inverts exactly; ``"argmax_shift"`` and
    ``"soft_argmax"`` are also available.

    Args:
        num_points: K.
        input_size: N.
        pretrained: accepted for interface uniformity; IACT has no pretrained backbone, so
            ``True`` raises.
        widths: channels of the convolution stages (``N/4``) and of the three transformer
            stages (``N/8, N/16, N/32``).
        heads: attention heads of the three transformer stages.
        depth: transformer blocks per stage.
        mlp_ratio: FFN hidden width / channels.
        kv_strides: K/V subsampling of the three stages' attention (1: the paper).
        dropout: transformer dropout.
        sigma: target Gaussian standard deviation, heatmap pixels.
        decoder: heatmap decoder, one of :data:`faceland.codecs.DECODERS`.
        codec: the training targets' codec, a :class:`faceland.codecs.CodecConfig`, a dict of
            its fields or a kind name (default ``"randomized_rounding"``, the paper's);
            ``sigma`` and ``decoder`` fill what it leaves out.
        loss: ``"smooth_wing"`` (the paper's eq. 6, :func:`~faceland.losses.smooth_wing_loss`
            with ``omega=14, theta1=0.05, theta2=0.5, alpha=2.1, epsilon=1`` on heatmap
            values), or another heatmap loss of :data:`faceland.losses.HEATMAP_LOSSES`.
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
                 dropout: float = 0.0, sigma: float = 1.5, decoder: str = "argmax",
                 loss: str = "smooth_wing", loss_weight: float = 0.0,
                 codec: str | dict | CodecConfig = "randomized_rounding") -> None:
        super().__init__()
        if input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
        if len(widths) != 4 or len(heads) != 3 or len(kv_strides) != 3:
            raise ValueError("need 4 widths, 3 heads and 3 kv_strides")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
        if loss not in HEATMAP_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(HEATMAP_LOSSES)}")
        if pretrained:
            raise ValueError("IACT has no pretrained weights (pretrained must be False)")
        if loss_weight < 0:
            raise ValueError(f"loss_weight must be >= 0, got {loss_weight}")
        self.num_points, self.input_size, self.loss_kind = num_points, input_size, loss
        self.loss_weight = float(loss_weight)
        self.heatmap_size = input_size // 4
        self.codec_config = CodecConfig.coerce(codec, sigma=sigma, decoder=decoder)
        self.codec = self.codec_config.build(self.heatmap_size)
        self.decoder = self.codec.decoder
        w = list(widths)
        self.stem = nn.Sequential(conv_bn_relu(3, w[0], stride=2),
                                  conv_bn_relu(w[0], w[0], stride=2))
        self.conv_stages = nn.ModuleList(
            nn.Sequential(conv_bn_relu(w[0], w[0]), conv_bn_relu(w[0], w[0])) for _ in range(4))
        self.stages = nn.ModuleList(
            IACTStage(w[i], w[i + 1], w[0], heads[i], mlp_ratio, depth, kv_strides[i], dropout)
            for i in range(3))
        self.fuse = nn.Sequential(conv_bn_relu(sum(w), w[0], k=1), conv_bn_relu(w[0], w[0]))
        self.head = nn.Conv2d(w[0], num_points, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = c = self.stem(self.normalize(x))
        outs = []
        for conv, stage in zip(self.conv_stages, self.stages, strict=False):
            c = conv(c)
            f = stage(f, c)
            outs.append(f)
        outs.insert(0, self.conv_stages[-1](c))  # the C-feature map, N/4
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
        return heatmap_loss(self.loss_kind, hm, t, self.loss_weight)

@register_model("iact", smoke={"input_size": 64, "widths": (8, 16, 16, 32), "heads": (1, 2, 2),
                               "mlp_ratio": 2.0})
def _iact(**kw) -> IACT:
    return IACT(**kw)
