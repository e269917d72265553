"""Token regression: multi-level CNN features -> patch tokens -> Transformer encoder -> landmarks.

The course seed 000 ("ResNet + Transformer"): a ResNet gives feature maps at several strides; each
map is cut into non-overlapping ``2 x 2`` patches and every patch is flattened into one token of
``4 C`` values; a two-layer FFN per level maps the tokens to a common width ``d``; the token grids
of the finer levels are max-reduced to a common grid; learned positional embeddings are added, a
Transformer encoder (Vaswani et al., "Attention Is All You Need", NeurIPS 2017, sec. 3.1) mixes all
tokens, and the first ``K`` output tokens are projected to ``(x, y)``. Trained with an L1 loss on
normalised crop coordinates.

Token counts (see :meth:`TokenRegression.token_counts`)
-------------------------------------------------------
A level of stride ``r`` on an ``N``-pixel input is an ``N/r x N/r`` map, i.e. a ``g x g`` grid of
``2 x 2`` patches with ``g = N / (2 r)``. Max-reduction (adaptive max pooling over token
positions, applied after the level's FFN, so the reduction takes the per-channel maximum of the
``d``-dimensional tokens that fall into each output cell) brings every grid larger than
``reduce_to`` (default ``N / 16``) down to ``reduce_to x reduce_to``; smaller grids are kept.

With the seed's setting (224 px, strides 4, 8, 16 = ResNet stages 1-3) the patch grids are
28 x 28, 14 x 14 and 7 x 7; the stride-4 grid is max-reduced to 14 x 14, giving
``196 + 196 + 49 = 441`` tokens of width 512, the seed's "441 tokens x 512". The count depends on
the input size, the strides and ``reduce_to`` only, not on the backbone's channels (ResNet-18 and
ResNet-101 give the same 441 tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from faceland.losses import check_coordinate_loss, coordinate_loss
from faceland.models.backbones import Backbone, create_backbone
from faceland.models.base import LandmarkModel, register_model

__all__ = ["TokenRegression", "patch_tokens", "backbone_at_strides"]

_ALL_STRIDES = (4, 8, 16, 32)


def backbone_at_strides(name: str, pretrained: bool, strides: tuple[int, ...]) -> Backbone:
    """A :func:`~faceland.models.backbones.create_backbone` backbone returning exactly ``strides``.

    ``create_backbone`` returns the deepest levels; when the deepest wanted stride is below 32,
    the stages after it are removed (so that every parameter is used and no compute is wasted).

    Args:
        name: backbone name (``"mobilenet_v2"`` or a timm CNN such as ``"resnet18"``).
        pretrained: ImageNet weights.
        strides: a contiguous, increasing run of ``(4, 8, 16, 32)``, e.g. ``(4, 8, 16)``.

    Raises:
        ValueError: strides not a contiguous run of ``(4, 8, 16, 32)``, or a backbone whose
            stages cannot be removed.
    """
    strides = tuple(int(s) for s in strides)
    i0 = _ALL_STRIDES.index(strides[0]) if strides and strides[0] in _ALL_STRIDES else -1
    if i0 < 0 or strides != _ALL_STRIDES[i0:i0 + len(strides)]:
        raise ValueError(f"strides must be a contiguous run of {_ALL_STRIDES}, got {strides}")
    bb = create_backbone(name, pretrained, levels=4 - i0)
    keep = len(strides)
    if keep == len(bb.reductions):
        return bb
    body = bb.body
    if bb._taps is not None:  # torchvision MobileNetV2: a Sequential tapped at fixed indices
        taps = bb._taps[:keep]
        return Backbone(body[: taps[-1] + 1], bb.channels[:keep], bb.reductions[:keep], taps)
    if not hasattr(body, "return_layers"):
        raise ValueError(f"cannot remove the deep stages of backbone {name!r}")
    names = list(body.return_layers)  # timm FeatureListNet: modules in execution order
    last = names[keep - 1]
    order = list(body.keys())
    for n in order[order.index(last) + 1:]:
        del body[n]
    for n in names[keep:]:
        del body.return_layers[n]
    return Backbone(body, bb.channels[:keep], bb.reductions[:keep])


def patch_tokens(f: torch.Tensor) -> torch.Tensor:
    """Cut a feature map into non-overlapping ``2 x 2`` patches, one token per patch.

    Args:
        f: ``(B, C, H, W)`` with even ``H`` and ``W``.

    Returns:
        ``(B, H/2, W/2, 4 C)``: the token of patch ``(i, j)`` concatenates the ``C`` channels of
        pixels ``(2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1)`` (in that order).

    Raises:
        ValueError: odd ``H`` or ``W``.
    """
    b, c, h, w = f.shape
    if h % 2 or w % 2:
        raise ValueError(f"feature map {h}x{w} cannot be cut into 2x2 patches")
    t = f.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 3, 5, 1)  # B, h, w, dy, dx, C
    return t.reshape(b, h // 2, w // 2, 4 * c)


class TokenRegression(LandmarkModel):
    """ResNet + Transformer token regression (course seed 000).

    Input ``(B, 3, N, N)`` RGB in ``[0, 1]``; ``forward`` returns ``{"coords": (B, K, 2)}`` in
    normalised crop coordinates ``(u + 0.5) / N`` (x, y).

    Pipeline, per level ``l`` of stride ``r_l``: backbone map ``(B, C_l, N/r_l, N/r_l)`` ->
    :func:`patch_tokens` ``(B, g_l, g_l, 4 C_l)`` -> FFN ``Linear(4 C_l, d) - GELU - Dropout -
    Linear(d, d) - Dropout`` -> adaptive max pooling of the token grid to
    ``min(g_l, reduce_to)`` per side -> flatten. The levels are concatenated finest first
    (row-major inside a level), learned positional embeddings ``(1, T, d)`` are added and a
    ``num_layers``-layer post-norm ``nn.TransformerEncoder`` (``heads`` heads, feed-forward
    ``ff_dim``, GELU, dropout, ``batch_first``) runs over all ``T`` tokens. Output tokens
    ``0 .. K-1`` (which lie in the finest level's grid) are mapped by one ``Linear(d, 2)`` shared
    by all landmarks to ``(x, y)``; the positional embeddings make those K slots distinct. The
    projection is plain (no squashing, bias initialised to 0.5 = the crop centre) unless
    ``sigmoid=True``, which constrains predictions to ``[0, 1]`` (landmarks pushed slightly out
    of the crop by augmentation then become unreachable).

    Args:
        backbone: ``"resnet18"``, ``"resnet50"``, ``"resnet101"`` (timm) or ``"mobilenet_v2"``.
        num_points: K.
        input_size: N; must be a multiple of ``2 * max(strides)``.
        pretrained: ImageNet weights for the backbone.
        strides: backbone levels used, a contiguous run of ``(4, 8, 16, 32)``.
        dim: d, the token width.
        num_layers: Transformer encoder layers.
        heads: attention heads (must divide ``dim``).
        ff_dim: hidden width of the encoder's feed-forward layers.
        dropout: dropout of the token FFNs and the encoder.
        reduce_to: side of the grid the finer token grids are max-reduced to (tokens);
            ``None`` means ``N // 16``.
        sigmoid: squash the output coordinates into ``[0, 1]``.
        loss: ``"l1"`` (the seed's) or ``"wing"``.

    Raises:
        ValueError: bad input size, fewer tokens than K, bad strides or heads.

    Source: course seed 000; Transformer encoder of Vaswani et al. 2017 (eqs. 1-2: scaled
    dot-product and multi-head attention; sec. 3.3: position-wise FFN). The seed gives no
    equation numbers for the tokenisation; the token-count derivation is in the module docstring.
    """

    def __init__(self, backbone: str = "resnet101", num_points: int = 68, input_size: int = 224,
                 pretrained: bool = False, strides: tuple[int, ...] | list[int] = (4, 8, 16),
                 dim: int = 512, num_layers: int = 4, heads: int = 8, ff_dim: int = 2048,
                 dropout: float = 0.1, reduce_to: int | None = None, sigmoid: bool = False,
                 loss: str = "l1") -> None:
        super().__init__()
        strides = tuple(int(s) for s in strides)
        if input_size % (2 * max(strides)):
            raise ValueError(f"input_size must be a multiple of {2 * max(strides)} "
                             f"(2 x the largest stride), got {input_size}")
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        self.num_points, self.input_size = num_points, input_size
        self.loss_kind = check_coordinate_loss(loss)
        self.strides = strides
        self.reduce_to = int(reduce_to) if reduce_to is not None else input_size // 16
        self.grids = self.token_grids(input_size, strides, self.reduce_to)
        self.num_tokens = sum(g * g for g in self.grids)
        if self.num_tokens < num_points:
            raise ValueError(f"{self.num_tokens} tokens (grids {self.grids}) < {num_points} "
                             "landmarks: raise input_size or reduce_to")
        self.sigmoid = sigmoid
        self.backbone = backbone_at_strides(backbone, pretrained, strides)
        self.token_ffn = nn.ModuleList(
            nn.Sequential(nn.Linear(4 * c, dim), nn.GELU(), nn.Dropout(dropout),
                          nn.Linear(dim, dim), nn.Dropout(dropout))
            for c in self.backbone.channels)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, activation="gelu",
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 2)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.constant_(self.head.bias, 0.0 if sigmoid else 0.5)

    @staticmethod
    def token_grids(input_size: int, strides: tuple[int, ...] = (4, 8, 16),
                    reduce_to: int | None = None) -> list[int]:
        """Side of each level's token grid after max-reduction (finest level first).

        ``g_l = min(N / (2 r_l), reduce_to)`` with ``reduce_to = N // 16`` by default; the token
        count is ``sum(g_l ** 2)`` (441 for N = 224 and strides 4, 8, 16).
        """
        reduce_to = input_size // 16 if reduce_to is None else reduce_to
        return [min(input_size // (2 * r), reduce_to) for r in strides]

    @classmethod
    def token_counts(cls, input_size: int, strides: tuple[int, ...] = (4, 8, 16),
                     reduce_to: int | None = None) -> list[int]:
        """Tokens per level (``g_l ** 2``); see :meth:`token_grids`."""
        return [g * g for g in cls.token_grids(input_size, strides, reduce_to)]

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, N, N)`` in ``[0, 1]`` -> ``(B, T, d)`` tokens before positional embedding."""
        feats = self.backbone(self.normalize(x))
        out = []
        for f, ffn, g in zip(feats, self.token_ffn, self.grids, strict=True):
            t = ffn(patch_tokens(f))  # B, h, w, d
            if t.shape[1] != g:
                t = F.adaptive_max_pool2d(t.permute(0, 3, 1, 2), g).permute(0, 2, 3, 1)
            out.append(t.flatten(1, 2))
        return torch.cat(out, dim=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        t = self.encoder(self.tokens(x) + self.pos_embed)
        coords = self.head(t[:, : self.num_points])
        if self.sigmoid:
            coords = coords.sigmoid()
        return {"coords": coords}

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Mean L1 (or Wing) between ``out["coords"]`` and ``(B, K, 2)`` normalised targets."""
        return coordinate_loss(self.loss_kind, out["coords"], target)


@register_model("token_regression",
                smoke={"backbone": "resnet18", "input_size": 64, "dim": 64, "num_layers": 1,
                       "heads": 4, "ff_dim": 128, "reduce_to": 8})
def _token_regression(**kw) -> TokenRegression:
    return TokenRegression(**kw)
