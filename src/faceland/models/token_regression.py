"""Token regression: multi-level CNN features -> patch tokens -> Transformer encoder -> landmarks.

Course seed 000 (F. Bertolotti, "Transformer applied to Facial Landmark detection", 2021,
sec. 5; ``../shared/papers/000_*``): a ResNet-101 is split into four steps whose outputs are
cut into tokens, every level's tokens are mapped by a two-layer FFN to a common width ``d``, the
token sequences are max-reduced, concatenated, given learned positional embeddings and run
through a Transformer encoder (Vaswani et al., NeurIPS 2017); the first ``K = 68`` output tokens
are projected to ``(x, y)``. L1 loss on normalised crop coordinates, Adam 1e-4, batch 32.

Tokenizer ``"seed"`` (default): the seed's code listing
-------------------------------------------------------
* **Levels** (listing 1, torchvision ``resnet.children()``): ``res0 = conv1-bn1-relu``
  (stride 2, 64 channels), ``res1 = maxpool + layer1`` (stride 4, 256), ``res2 = layer2``
  (stride 8, 512), ``res3 = layer3 + layer4`` (stride 32, 2048): ``strides=(2, 4, 8, 32)``.
* **Patching order** (listing 2, einops ``"b c (h1 h2) (w1 w2) -> b (c h1 w1) (h2 w2)"`` with
  ``h1 = w1 = 2``): each map is split into its four ``H/2 x W/2`` quadrants and token ``(i, j)``
  stacks pixel ``(i, j)`` of every quadrant, channels ordered ``(c, h1, w1)``: ``4 C`` values,
  ``(H/2)(W/2)`` tokens (:func:`quadrant_tokens`). The last level is not patched
  (``"b c h w -> b (h w) c"``: one token per pixel).
* **Reduction** (listing 3, ``reduce(..., "b e (c1 c2) -> b c1 e", "max", c2=...)``): after the
  level's FFN, the maximum over each run of ``c2`` consecutive tokens (row-major order), with
  ``c2 = 16, 8, 4, 1`` for the four levels (``reductions``).

At the seed's 224 px this gives ``3136/16 + 784/8 + 196/4 + 49/1 = 196 + 98 + 49 + 49 = 392``
tokens. **The seed's own arithmetic is inconsistent** (docs/fidelity.md): it states
``res0`` as ``1024 x 784`` (its listing gives ``256 x 3136``), applies ``ffA3`` to ``res2``
instead of ``res3``, applies the FFNs to the last axis, which after its rearrange is the token
axis, and announces 441 tokens of 512; no reading of its listing yields 441. faceland follows
the listing (levels, patching, factors) with the FFN on each token's features, the reading
under which every stated width (512) and the concatenation work.

Tokenizer ``"grid"``: faceland's earlier reading
------------------------------------------------
Levels of strides ``(4, 8, 16)``, each cut into non-overlapping ``2 x 2`` patches
(:func:`patch_tokens`), the token grids larger than ``reduce_to`` (default ``N / 16``)
max-pooled to ``reduce_to x reduce_to``: at 224 px ``196 + 196 + 49 = 441`` tokens (the seed's
announced count, not its listing). Kept for the recorded CPU rows (``token_regression_300w_cpu``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from faceland.losses import check_coordinate_loss, coordinate_loss
from faceland.models.backbones import create_backbone
from faceland.models.base import LandmarkModel, register_model

__all__ = ["TokenRegression", "patch_tokens", "quadrant_tokens", "TOKENIZERS"]

TOKENIZERS = ("seed", "grid")


def quadrant_tokens(f: torch.Tensor) -> torch.Tensor:
    """Seed 000's patching, ``einops.rearrange(f, "b c (h1 h2) (w1 w2) -> b (h2 w2) (c h1 w1)",
    h1=2, w1=2)``: token ``(i, j)`` of the ``H/2 x W/2`` grid stacks pixel ``(i, j)`` of each of
    the four quadrants.

    Args:
        f: ``(B, C, H, W)`` with even ``H`` and ``W``.

    Returns:
        ``(B, (H/2)(W/2), 4 C)``, tokens row-major; feature ``4 c + 2 h1 + w1`` is channel ``c``
        at pixel ``(h1 H/2 + i, w1 W/2 + j)``.

    Raises:
        ValueError: odd ``H`` or ``W``.
    """
    b, c, h, w = f.shape
    if h % 2 or w % 2:
        raise ValueError(f"feature map {h}x{w} cannot be split into quadrants")
    t = f.reshape(b, c, 2, h // 2, 2, w // 2).permute(0, 3, 5, 1, 2, 4)  # b, h2, w2, c, h1, w1
    return t.reshape(b, (h // 2) * (w // 2), 4 * c)


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
    tokens (``tokenizer="seed"``: :func:`quadrant_tokens`, the last level one token per pixel;
    ``"grid"``: :func:`patch_tokens`) -> FFN ``Linear(F_l, d) - GELU - Dropout - Linear(d, d) -
    Dropout`` (``F_l`` = the token's values) -> max-reduction (``"seed"``: over runs of
    ``reductions[l]`` consecutive tokens; ``"grid"``: adaptive max pooling of the token grid to
    ``min(g_l, reduce_to)`` per side). The levels are concatenated finest first
    (row-major inside a level), learned positional embeddings ``(1, T, d)`` are added and a
    ``num_layers``-layer post-norm ``nn.TransformerEncoder`` (``heads`` heads, feed-forward
    ``ff_dim``, GELU, dropout, ``batch_first``) runs over all ``T`` tokens. Output tokens
    ``0 .. K-1`` (which come from the finest level) are mapped by one ``Linear(d, 2)`` shared
    by all landmarks to ``(x, y)``; the positional embeddings make those K slots distinct. The
    projection is plain (no squashing, bias initialised to 0.5 = the crop centre) unless
    ``sigmoid=True``, which constrains predictions to ``[0, 1]`` (landmarks pushed slightly out
    of the crop by augmentation then become unreachable).

    Args:
        backbone: ``"resnet18"``, ``"resnet50"``, ``"resnet101"`` (timm) or ``"mobilenet_v2"``.
        num_points: K.
        input_size: N; a multiple of ``2 r`` for every patched level of stride ``r`` (and of
            the last stride; 32 for the seed's levels, 32 for ``"grid"``'s (4, 8, 16)).
        pretrained: ImageNet weights for the backbone.
        strides: backbone levels used, an increasing subset of ``(2, 4, 8, 16, 32)``
            (default: the seed's ``(2, 4, 8, 32)``; ``tokenizer="grid"``: ``(4, 8, 16)``).
        tokenizer: ``"seed"`` (default) or ``"grid"``; see the module docstring.
        reductions: ``"seed"`` only: tokens max-reduced together per level (default the seed's
            ``(16, 8, 4, 1)``); each must divide the level's token count.
        dim: d, the token width.
        num_layers: Transformer encoder layers.
        heads: attention heads (must divide ``dim``).
        ff_dim: hidden width of the encoder's feed-forward layers.
        dropout: dropout of the token FFNs and the encoder.
        reduce_to: ``"grid"`` only: side of the grid the finer token grids are max-reduced to
            (tokens); ``None`` means ``N // 16``.
        sigmoid: squash the output coordinates into ``[0, 1]``.
        loss: a coordinate loss of :data:`faceland.losses.COORDINATE_LOSSES` (``"l1"``: the
            seed's).

    Raises:
        ValueError: bad input size, fewer tokens than K, bad strides, reductions, tokenizer or
            heads.

    Source: course seed 000; Transformer encoder of Vaswani et al. 2017 (eqs. 1-2: scaled
    dot-product and multi-head attention; sec. 3.3: position-wise FFN). The seed gives no
    equation numbers for the tokenisation; the token-count derivation is in the module docstring.
    """

    def __init__(self, backbone: str = "resnet101", num_points: int = 68, input_size: int = 224,
                 pretrained: bool = False, strides: tuple[int, ...] | list[int] | None = None,
                 dim: int = 512, num_layers: int = 4, heads: int = 8, ff_dim: int = 2048,
                 dropout: float = 0.1, reduce_to: int | None = None, sigmoid: bool = False,
                 loss: str = "l1", tokenizer: str = "seed",
                 reductions: tuple[int, ...] | list[int] | None = None) -> None:
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, not {tokenizer!r}")
        seed = tokenizer == "seed"
        strides = tuple(int(s) for s in (strides or ((2, 4, 8, 32) if seed else (4, 8, 16))))
        # patched levels need an even map side; the seed's last level is not patched
        need = max(strides[-1], 2 * max(strides[:-1], default=1)) if seed else 2 * max(strides)
        if input_size % need:
            raise ValueError(f"input_size must be a multiple of {need} for strides {strides}, "
                             f"got {input_size}")
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        self.num_points, self.input_size = num_points, input_size
        self.loss_kind = check_coordinate_loss(loss)
        self.strides, self.tokenizer = strides, tokenizer
        if seed:  # the seed's reduction factors; "grid" reduces to a square grid instead
            self.reductions = tuple(int(r) for r in (reductions or (16, 8, 4, 1)[-len(strides):]))
            if len(self.reductions) != len(strides):
                raise ValueError(f"{len(self.reductions)} reductions for {len(strides)} levels")
            self.level_tokens = self.seed_token_counts(input_size, strides, self.reductions)
        else:
            self.reduce_to = int(reduce_to) if reduce_to is not None else input_size // 16
            self.grids = self.token_grids(input_size, strides, self.reduce_to)
            self.level_tokens = [g * g for g in self.grids]
        self.num_tokens = sum(self.level_tokens)
        if self.num_tokens < num_points:
            raise ValueError(f"{self.num_tokens} tokens (per level {self.level_tokens}) < "
                             f"{num_points} landmarks: raise input_size or reduce_to")
        self.sigmoid = sigmoid
        self.backbone = create_backbone(backbone, pretrained, strides=strides)
        widths = [4 * c for c in self.backbone.channels]
        if seed:
            widths[-1] = self.backbone.channels[-1]  # the last level is not patched
        self.token_ffn = nn.ModuleList(
            nn.Sequential(nn.Linear(f, dim), nn.GELU(), nn.Dropout(dropout),
                          nn.Linear(dim, dim), nn.Dropout(dropout))
            for f in widths)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, dim))
        if seed:  # the seed's torch.nn.Embedding(441, 512).weight: N(0, 1)
            nn.init.normal_(self.pos_embed)
        else:
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
        """``"grid"`` tokens per level (``g_l ** 2``); see :meth:`token_grids`."""
        return [g * g for g in cls.token_grids(input_size, strides, reduce_to)]

    @staticmethod
    def seed_token_counts(input_size: int, strides: tuple[int, ...] = (2, 4, 8, 32),
                          reductions: tuple[int, ...] = (16, 8, 4, 1)) -> list[int]:
        """``"seed"`` tokens per level after reduction: ``(N / 2 r)^2 / c2`` for the patched
        levels, ``(N / r)^2 / c2`` for the last one (392 = 196 + 98 + 49 + 49 at 224 px).

        Raises:
            ValueError: a reduction that does not divide its level's token count.
        """
        out = []
        for i, (r, c2) in enumerate(zip(strides, reductions, strict=True)):
            side = input_size // r if i == len(strides) - 1 else input_size // (2 * r)
            if (side * side) % c2:
                raise ValueError(f"reduction {c2} does not divide the {side * side} tokens of the "
                                 f"stride-{r} level at {input_size} px")
            out.append(side * side // c2)
        return out

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, N, N)`` in ``[0, 1]`` -> ``(B, T, d)`` tokens before positional embedding."""
        feats = self.backbone(self.normalize(x))
        out = []
        last = len(feats) - 1
        for i, (f, ffn) in enumerate(zip(feats, self.token_ffn, strict=True)):
            if self.tokenizer == "seed":
                t = f.flatten(2).transpose(1, 2) if i == last else quadrant_tokens(f)
                t = ffn(t)  # B, T_l, d
                c2 = self.reductions[i]
                if c2 > 1:  # max over runs of c2 consecutive tokens
                    t = t.reshape(t.shape[0], -1, c2, t.shape[-1]).amax(2)
                out.append(t)
            else:
                g = self.grids[i]
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
                       "heads": 4, "ff_dim": 128, "reductions": [4, 2, 1, 1]})
def _token_regression(**kw) -> TokenRegression:
    return TokenRegression(**kw)
