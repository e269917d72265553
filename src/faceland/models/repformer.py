"""RePFormer: refinement pyramid transformer for facial landmark regression.

J. Li, H. Jin, S. Liao, L. Shao, P.-A. Heng, "RePFormer: Refinement Pyramid Transformer for Robust
Facial Landmark Detection", arXiv:2207.03917, 2022 (course seed 002). Equation numbers below
refer to that paper as cited in the seed brief:

* **Pyramid memories** (sec. 3.2, eqs. 3-4): backbone levels ``z_i`` (projected to width ``d``)
  are turned into memories top-down. The top memory is the projected top level itself,
  ``v_M = z_M`` (eq. 4, "otherwise"). For a lower level ``i`` cross-scale attention takes the
  query ``q_i = z_i + p_i`` (``p_i`` the fixed sinusoidal positional encoding), the value
  ``v^_i = z_i * up(v_{i+1})`` (element-wise product with the bilinearly upsampled coarser
  memory) and the key ``k_i = v^_i + p_i``; ``z^_i = LN(z_i + MHA(q_i, k_i, v^_i))`` (eq. 3) and
  ``v_i = LN(z^_i + FFN(z^_i))`` (eq. 4).
* **Pyramid transformer head, PTH** (eq. 6): per stage, landmark queries do landmark-to-landmark
  self-attention, then landmark-to-memory cross-attention on that stage's memory, then an FFN
  (each with residual + LayerNorm). Stages visit the memories coarse to fine.
* **Dynamic landmark refinement, DLR** (eqs. 7-10): the initial landmarks are regressed from the
  top memory; every later stage predicts residual coordinates with a two-layer FFN and adds them
  to the previous stage's landmarks (eqs. 7-8); its landmark queries are aggregated from the
  stage's memory with weights ``softmax_k(-tau ||l - c_k||^2)`` over the memory pixel centres
  ``c_k`` (eqs. 9-10, :func:`aggregate_queries`).

Every stage's landmarks are supervised by L1, the stage losses summed with weight 1 (sec. 3.3 and
4.1). All coordinates are normalised crop coordinates
``(u + 0.5) / N``; a memory pixel ``(i, j)`` of an ``h x w`` memory has centre
``((j + 0.5) / w, (i + 0.5) / h)`` in the same frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from faceland.codecs import grid_centres
from faceland.losses import check_coordinate_loss, coordinate_loss
from faceland.models.backbones import create_backbone
from faceland.models.base import LandmarkModel, register_model

__all__ = ["RePFormer", "aggregate_queries", "pixel_centres", "sine_encoding",
           "CrossScaleAttention", "LandmarkDecoderLayer"]


#: Centres of an ``h x w`` memory in normalised coordinates (:func:`faceland.codecs.grid_centres`).
pixel_centres = grid_centres


def sine_encoding(coords: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed sinusoidal encoding of normalised 2-D positions (Vaswani et al. 2017, sec. 3.5,
    extended to two axes as in DETR: half the channels encode y, half encode x).

    Args:
        coords: ``(..., 2)`` normalised ``(x, y)``, typically in ``[0, 1]``.
        dim: output width (a multiple of 4).

    Returns:
        ``(..., dim)``: ``[sin/cos of y * 2 pi at dim/4 frequencies, same for x]``, differentiable
        w.r.t. ``coords``.

    Raises:
        ValueError: ``dim`` not a multiple of 4.
    """
    if dim % 4:
        raise ValueError(f"sine encoding width must be a multiple of 4, got {dim}")
    n = dim // 4
    freq = temperature ** (torch.arange(n, device=coords.device, dtype=coords.dtype) / n)
    x = coords[..., :1] * (2 * math.pi) / freq
    y = coords[..., 1:2] * (2 * math.pi) / freq
    return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=-1)


def aggregate_queries(memory: torch.Tensor, centres: torch.Tensor, landmarks: torch.Tensor,
                      tau: float) -> torch.Tensor:
    """Dynamic query aggregation of DLR (RePFormer eqs. 9-10).

    ``q_k = sum_p softmax_p(-tau ||l_k - c_p||^2) m_p``: a Gaussian-like soft look-up of the memory
    around each landmark, differentiable w.r.t. the landmarks and the memory. As ``tau -> inf``
    it becomes the memory feature of the nearest memory pixel.

    Args:
        memory: ``(B, P, d)`` memory features (``P = h * w`` pixels, row-major).
        centres: ``(P, 2)`` normalised pixel centres (:func:`pixel_centres`).
        landmarks: ``(B, K, 2)`` normalised landmark coordinates.
        tau: inverse temperature, in 1 / (normalised units)^2 (the paper's default: 1000).

    Returns:
        ``(B, K, d)`` queries.
    """
    d2 = (landmarks.unsqueeze(2) - centres).pow(2).sum(-1)  # B, K, P
    w = torch.softmax(-tau * d2, dim=-1)
    return w @ memory


def _ffn(dim: int, hidden: int, out: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, out))


class CrossScaleAttention(nn.Module):
    """Memory construction for one pyramid level (RePFormer eqs. 3-4).

    ``v^ = z * u``; ``a = MHA(q = z + p, k = v^ + p, v = v^)`` (eq. 3); ``z^ = LN(z + a)``;
    ``v = LN(z^ + FFN(z^))`` (eq. 4), where ``u`` is the upsampled coarser memory (``None``:
    ``u = 1``, self-attention on ``z``, used only by the ``top_memory="attention"`` option).

    Args:
        dim: d. heads: attention heads. ff_dim: FFN hidden width. dropout: dropout.
        key_pos: add ``p`` to the key (eq. 3; True). False: key = value = ``v^`` (faceland's
            layout before 2026-12, kept so that models trained with it load).

    Shapes: ``z``, ``upper`` ``(B, P, d)``; ``pos`` ``(P, d)``; returns ``(B, P, d)``.
    """

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float,
                 key_pos: bool = True) -> None:
        super().__init__()
        self.key_pos = key_pos
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = _ffn(dim, ff_dim, dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor, pos: torch.Tensor,
                upper: torch.Tensor | None = None) -> torch.Tensor:
        value = z if upper is None else z * upper
        key = value + pos if self.key_pos else value
        a = self.attn(z + pos, key, value, need_weights=False)[0]
        v = self.norm1(z + self.drop(a))
        return self.norm2(v + self.drop(self.ffn(v)))


class LandmarkDecoderLayer(nn.Module):
    """One PTH stage's attention (RePFormer eq. 6): landmark-to-landmark self-attention, then
    landmark-to-memory cross-attention, then an FFN; each residual + LayerNorm (post-norm).

    Shapes: ``q`` ``(B, K, d)`` query content, ``q_pos`` ``(B, K, d)`` or ``(K, d)`` query
    positional part, ``memory`` ``(B, P, d)``, ``mem_pos`` ``(P, d)``; returns ``(B, K, d)``.
    """

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = _ffn(dim, ff_dim, dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, q_pos: torch.Tensor, memory: torch.Tensor,
                mem_pos: torch.Tensor) -> torch.Tensor:
        qk = q + q_pos
        q = self.norm1(q + self.drop(self.self_attn(qk, qk, q, need_weights=False)[0]))
        a = self.cross_attn(q + q_pos, memory + mem_pos, memory, need_weights=False)[0]
        q = self.norm2(q + self.drop(a))
        return self.norm3(q + self.drop(self.ffn(q)))


class RePFormer(LandmarkModel):
    """Refinement pyramid transformer (RePFormer, arXiv:2207.03917) with PTH / DLR ablation switches.

    Input ``(B, 3, N, N)`` RGB in ``[0, 1]``. ``forward`` returns

    * ``"coords"``: ``(B, K, 2)`` the last stage's landmarks, normalised crop coordinates;
    * ``"stages"``: list of ``S = levels + 1`` tensors ``(B, K, 2)``, stage 0 (the initial
      landmarks) first.

    Stages: stage 0 regresses the initial landmarks from the top (coarsest) memory with learned
    landmark queries (one decoder layer + a two-layer FFN giving absolute coordinates); stages
    ``1 .. levels`` use the memories coarsest to finest (``pth=True``) or the single top memory
    each time (``pth=False``).

    Ablation switches (the paper's table: baseline / +PTH / +DLR / PTH+DLR):

    * ``pth=False``: no pyramid: one memory, the top backbone level encoded by one self-attention
      layer (:class:`CrossScaleAttention` with ``u = 1``); a plain transformer decoder on it.
    * ``dlr=False``: every stage predicts absolute coordinates (two-layer FFN, no residual) and
      passes its output queries to the next stage as content (DETR-style); no dynamic
      aggregation.
    * ``dlr=True``: stage ``s >= 1`` predicts ``l_s = l_{s-1} + FFN(q_s)`` (eqs. 7-8); its query
      content is :func:`aggregate_queries` of its memory at ``l_{s-1}`` (eqs. 9-10). The residual
      FFN's last layer starts at zero.

    In all variants the query positional part is a learned per-landmark embedding (landmark
    identity); with DLR the sinusoidal encoding of the current landmarks ``l_{s-1}`` is added to
    it. Memory keys carry the fixed sinusoidal encoding of the pixel centres.

    Args:
        backbone: CNN backbone name (``"resnet18"`` in the paper's ablation).
        num_points: K.
        input_size: N, a multiple of 32.
        pretrained: ImageNet weights for the backbone.
        levels: backbone levels used (the deepest ones: 3 -> strides 8, 16, 32). 4 adds stride 4,
            whose full attention over ``(N/4)^2`` pixels is expensive.
        dim: d (a multiple of 4 and of ``heads``). heads: attention heads. ff_dim: FFN width.
        dropout: attention / FFN dropout.
        tau: DLR aggregation inverse temperature (normalised units^-2; paper: 1000).
        pth: pyramid memories (True) or a single memory (False).
        dlr: dynamic landmark refinement on (True) / off (False).
        loss: a coordinate loss of :data:`faceland.losses.COORDINATE_LOSSES` (``"l1"``: the
            paper's), applied to every stage and summed.
        top_memory: ``"projection"``: ``v_M = z_M`` (eq. 4, the paper); ``"attention"``: the
            top level also goes through a self-attention layer (:class:`CrossScaleAttention`
            with ``u = 1``; faceland's layout before 2026-12, kept so that the shipped
            ``faceland-300w-repformer-mnv2-128`` loads).
        key_pos: the positional encoding is added to the cross-scale attention's key (eq. 3,
            True) or not (False, the same earlier layout).

    Raises:
        ValueError: ``input_size`` not a multiple of 32, ``levels`` outside 1..4, bad widths or
            loss.
    """

    def __init__(self, backbone: str = "resnet18", num_points: int = 68, input_size: int = 256,
                 pretrained: bool = False, levels: int = 3, dim: int = 256, heads: int = 8,
                 ff_dim: int = 1024, dropout: float = 0.1, tau: float = 1000.0, pth: bool = True,
                 dlr: bool = True, loss: str = "l1", top_memory: str = "projection",
                 key_pos: bool = True) -> None:
        super().__init__()
        if top_memory not in ("projection", "attention"):
            raise ValueError(f"top_memory must be 'projection' or 'attention', not {top_memory!r}")
        if input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
        if dim % 4 or dim % heads:
            raise ValueError(f"dim must be a multiple of 4 and of heads ({heads}), got {dim}")
        self.num_points, self.input_size = num_points, input_size
        self.loss_kind = check_coordinate_loss(loss)
        self.tau, self.pth, self.dlr, self.levels = float(tau), pth, dlr, levels
        self.top_memory = top_memory
        self.backbone = create_backbone(backbone, pretrained, levels=levels)
        used = self.backbone.channels if pth else self.backbone.channels[-1:]
        self.proj = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in used)
        # finest first, like proj; the top level has a layer only with top_memory="attention"
        n_layers = len(used) if top_memory == "attention" else len(used) - 1
        self.memory_layers = nn.ModuleList(
            CrossScaleAttention(dim, heads, ff_dim, dropout, key_pos) for _ in range(n_layers))
        self.num_stages = levels + 1
        self.query_pos = nn.Parameter(torch.randn(num_points, dim))  # N(0, 1) as DETR
        self.decoder = nn.ModuleList(
            LandmarkDecoderLayer(dim, heads, ff_dim, dropout) for _ in range(self.num_stages))
        self.heads = nn.ModuleList(_ffn(dim, dim, 2) for _ in range(self.num_stages))
        for s, h in enumerate(self.heads):
            last = h[-1]
            if dlr and s > 0:  # residual: start with no change
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
            else:  # absolute: start near the crop centre
                nn.init.normal_(last.weight, std=1e-3)
                nn.init.constant_(last.bias, 0.5)

    def memories(self, x: torch.Tensor) -> list[tuple[torch.Tensor, tuple[int, int]]]:
        """Memories coarsest first: list of ``((B, h*w, d), (h, w))``."""
        feats = self.backbone(self.normalize(x))
        if not self.pth:
            feats = feats[-1:]
        out: list[tuple[torch.Tensor, tuple[int, int]]] = []
        upper = None
        layers = list(self.memory_layers)
        if self.top_memory == "projection":
            layers.append(None)  # eq. 4: v_M = z_M
        for f, proj, layer in zip(reversed(feats), reversed(self.proj), reversed(layers),
                                  strict=True):
            z = proj(f)
            b, d, h, w = z.shape
            tokens = z.flatten(2).transpose(1, 2)
            if layer is None:
                v = tokens
            else:
                u = None
                if upper is not None:
                    u = F.interpolate(upper, size=(h, w), mode="bilinear", align_corners=False)
                    u = u.flatten(2).transpose(1, 2)
                pos = sine_encoding(pixel_centres(h, w, z.device, z.dtype), d)
                v = layer(tokens, pos, u)
            upper = v.transpose(1, 2).reshape(b, d, h, w)
            out.append((v, (h, w)))
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        mems = self.memories(x)
        # stage 0 on the top memory, then the pyramid coarse to fine (or the one memory again)
        plan = [mems[0]] + (mems if self.pth else [mems[0]] * self.levels)
        b = x.shape[0]
        q = x.new_zeros(b, self.num_points, self.query_pos.shape[1])
        stages: list[torch.Tensor] = []
        for s, ((mem, (h, w)), layer, head) in enumerate(
                zip(plan, self.decoder, self.heads, strict=True)):
            d = mem.shape[-1]
            centres = pixel_centres(h, w, mem.device, mem.dtype)
            mem_pos = sine_encoding(centres, d)
            q_pos = self.query_pos.expand(b, -1, -1)
            if self.dlr and s > 0:
                prev = stages[-1]
                q = aggregate_queries(mem, centres, prev, self.tau)
                q_pos = q_pos + sine_encoding(prev, d)
            q = layer(q, q_pos, mem, mem_pos)
            coords = head(q)
            if self.dlr and s > 0:
                coords = stages[-1] + coords
            stages.append(coords)
        return {"coords": stages[-1], "stages": stages}

    def loss(self, out: dict, target: torch.Tensor) -> torch.Tensor:
        """Sum over the ``S`` stages of each stage's mean L1 (or other ``loss``) to the
        ``(B, K, 2)`` normalised targets: "the L1 loss is used as the loss function for all
        outputs, and the loss weights are simply set to 1" (sec. 4.1)."""
        stages = out.get("stages") or [out["coords"]]
        return sum(coordinate_loss(self.loss_kind, s, target) for s in stages)


@register_model("repformer",
                smoke={"backbone": "resnet18", "input_size": 64, "dim": 32, "heads": 2,
                       "ff_dim": 64, "levels": 3})
def _repformer(**kw) -> RePFormer:
    return RePFormer(**kw)
