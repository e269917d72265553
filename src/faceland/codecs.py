"""Codecs: landmarks <-> network targets / outputs, separate from the models.

Symbols: B batch, K landmarks, H x W heatmap size (``size`` arguments are ``(W, H)``, width
first, as in MMPose). Heatmap cell ``(i, j)`` (row ``i``, column ``j``) covers the normalised
crop square ``[j / W, (j + 1) / W] x [i / H, (i + 1) / H]``; its centre is
``((j + 0.5) / W, (i + 0.5) / H)``. So a normalised crop coordinate ``x`` (defined in
:mod:`faceland.geometry`) sits at the **heatmap-pixel coordinate** ``x * W - 0.5`` (0-based pixel
centres, the same convention as the crop frame), and back: ``x = (p + 0.5) / W``.

Heatmap codecs are plain objects (not ``nn.Module``), MMPose-style:

* ``encode(coords) -> targets``: ``(B, K, 2)`` normalised ``(x, y)`` -> ``(B, K, H, W)``;
* ``decode(heatmaps, method=...) -> (coords, scores)``: ``(B, K, H, W)`` -> ``(B, K, 2)``
  normalised coordinates and ``(B, K)`` scores (the maximum value of each map).

Codecs: :class:`GaussianHeatmap` (plain and "with offset"), :class:`RandomizedRoundingHeatmap`
and :class:`SoftmaxHeatmap`. Decoders (:func:`decode_heatmaps`, :data:`DECODERS`) work with every
codec's maps and with network outputs.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "soft_argmax",
    "peak_mass",
    "DECODERS",
    "CODEC_KINDS",
    "CodecConfig",
    "cell_centres",
    "grid_centres",
    "decode_heatmaps",
    "HeatmapCodec",
    "GaussianHeatmap",
    "RandomizedRoundingHeatmap",
    "SoftmaxHeatmap",
]

#: Decoder names accepted by :func:`decode_heatmaps` and every codec's ``decode``.
DECODERS = ("argmax", "argmax_shift", "subpixel", "local_mean", "soft_argmax")


def cell_centres(n: int, device: torch.device | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Centres of ``n`` cells along one axis in normalised coordinates: ``(i + 0.5) / n``.

    Returns:
        ``(n,)`` tensor; cell ``i`` of a map of side ``n`` (0-based) maps to the crop coordinate
        ``(i + 0.5) / n`` (0 and 1 are the crop's outer pixel edges).
    """
    return (torch.arange(n, device=device, dtype=dtype) + 0.5) / n


def grid_centres(h: int, w: int, device: torch.device | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Centres of an ``h x w`` grid in normalised coordinates.

    Returns:
        ``(h * w, 2)`` ``(x, y)`` pairs ``((j + 0.5) / w, (i + 0.5) / h)``, row-major (the order
        of ``map.flatten(2)``).
    """
    gy, gx = torch.meshgrid(cell_centres(h, device, dtype), cell_centres(w, device, dtype),
                            indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def soft_argmax(logits: torch.Tensor, beta: float | torch.Tensor = 1.0) -> tuple[torch.Tensor,
                                                                                   torch.Tensor]:
    """Differentiable expected location of a spatial softmax (integral regression).

    Source: Sun et al., "Integral Human Pose Regression", ECCV 2018, eq. 3 (expectation of the
    softmax-normalised heatmap).

    Args:
        logits: ``(B, K, H, W)`` unnormalised heatmap logits.
        beta: inverse temperature applied before the softmax.

    Returns:
        ``coords`` ``(B, K, 2)`` normalised crop coordinates ``(x, y)`` in ``[0, 1]`` and
        ``probs`` ``(B, K, H, W)``, the softmax heatmaps (each sums to 1).
    """
    b, k, h, w = logits.shape
    probs = torch.softmax(logits.reshape(b, k, h * w) * beta, dim=-1).reshape(b, k, h, w)
    xs, ys = cell_centres(w, logits.device, probs.dtype), cell_centres(h, logits.device, probs.dtype)
    x = (probs.sum(dim=2) * xs).sum(dim=-1)
    y = (probs.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1), probs


def peak_mass(probs: torch.Tensor, window: int = 3) -> torch.Tensor:
    """Per-landmark confidence of softmax heatmaps: the probability mass in the densest
    ``window x window`` block of cells.

    A sharp, single-peaked heatmap scores near 1; a flat or multi-modal one (an occluded,
    blurred or ambiguous point) scores low. faceland's choice among the candidates it compared
    on the validation split of 300W train (peak probability, 3 x 3 peak mass, mass within
    1.5-3 cells of the soft-argmax, spread, entropy, face means): the 3 x 3 peak mass ranked
    point errors best there (AUROC 0.70 for errors > 0.1 IOD; docs/video.md).

    Args:
        probs: ``(B, K, H, W)`` heatmaps whose cells sum to 1 per landmark (e.g. the second
            output of :func:`soft_argmax`).
        window: odd block side, heatmap cells.

    Returns:
        ``(B, K)`` scores in ``[0, 1]``.
    """
    b, k, h, w = probs.shape
    pooled = F.avg_pool2d(probs.reshape(b * k, 1, h, w), window, stride=1, padding=window // 2,
                          count_include_pad=True) * float(window * window)
    return pooled.reshape(b, k, h * w).amax(dim=-1).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# helpers


def _size(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``N`` or ``(W, H)`` -> ``(W, H)``; raises ValueError for a non-positive size."""
    if isinstance(size, numbers.Integral):
        w = h = int(size)
    else:
        if len(size) != 2:
            raise ValueError(f"heatmap size must be an int or (W, H), got {size!r}")
        w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise ValueError(f"heatmap size must be positive, got {(w, h)}")
    return w, h


def _check_coords(coords: torch.Tensor) -> torch.Tensor:
    if not isinstance(coords, torch.Tensor):
        coords = torch.as_tensor(coords)
    if coords.ndim != 3 or coords.shape[-1] != 2:
        raise ValueError(f"coords must be (B, K, 2), got {tuple(coords.shape)}")
    return coords if coords.is_floating_point() else coords.float()


def _check_heatmaps(heatmaps: torch.Tensor) -> None:
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, K, H, W), got {tuple(heatmaps.shape)}")
    if heatmaps.shape[-1] == 0 or heatmaps.shape[-2] == 0:
        raise ValueError(f"empty heatmaps {tuple(heatmaps.shape)}")


def _gather(hm: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Values of ``hm (B, K, H, W)`` at integer ``(iy, ix) (B, K)``, and whether inside the map."""
    b, k, h, w = hm.shape
    valid = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    idx = iy.clamp(0, h - 1) * w + ix.clamp(0, w - 1)
    v = hm.reshape(b, k, h * w).gather(-1, idx.unsqueeze(-1)).squeeze(-1)
    return v, valid


def _argmax(hm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(iy, ix, max)`` of each ``(H, W)`` map; ties go to the first cell in row-major order."""
    b, k, h, w = hm.shape
    scores, idx = hm.reshape(b, k, h * w).max(dim=-1)
    return idx // w, idx % w, scores


def _to_normalized(px: torch.Tensor, py: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """Heatmap-pixel coordinates -> ``(B, K, 2)`` normalised ``(x, y)``."""
    return torch.stack([(px + 0.5) / w, (py + 0.5) / h], dim=-1)


# --------------------------------------------------------------------------------------------
# decoders


def _decode_argmax_shift(hm: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    px, py = ix.to(hm.dtype), iy.to(hm.dtype)
    out = []
    for p, (dy, dx) in ((px, (0, 1)), (py, (1, 0))):
        hi, ok_hi = _gather(hm, iy + dy, ix + dx)
        lo, ok_lo = _gather(hm, iy - dy, ix - dx)
        shift = 0.25 * torch.sign(hi - lo)
        out.append(p + torch.where(ok_hi & ok_lo, shift, torch.zeros_like(shift)))
    return out[0], out[1]


def _decode_subpixel(hm: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor,
                     eps: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    c, _ = _gather(hm, iy, ix)
    lc = torch.log(c.clamp_min(eps))
    out = []
    for p, (dy, dx) in ((ix.to(hm.dtype), (0, 1)), (iy.to(hm.dtype), (1, 0))):
        hi, ok_hi = _gather(hm, iy + dy, ix + dx)
        lo, ok_lo = _gather(hm, iy - dy, ix - dx)
        lh, ll = torch.log(hi.clamp_min(eps)), torch.log(lo.clamp_min(eps))
        den = ll - 2 * lc + lh  # second difference of the log map; < 0 at a strict peak
        # The log fit needs both neighbours clearly positive; on raw network outputs a neighbour
        # near or below 0 would pin the shift at +-0.5, so fall back to the quarter-pixel shift.
        positive = (hi > 1e-3 * c) & (lo > 1e-3 * c)
        ok = ok_hi & ok_lo & (den < 0) & (c > eps) & positive
        t = (ll - lh) / (2 * torch.where(ok, den, -torch.ones_like(den)))
        quarter = torch.where(ok_hi & ok_lo, 0.25 * torch.sign(hi - lo), torch.zeros_like(t))
        out.append(p + torch.where(ok, t.clamp(-0.5, 0.5), quarter))
    return out[0], out[1]


def _decode_local_mean(hm: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor, window: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"local_mean window must be a positive odd integer, got {window}")
    r = window // 2
    num_x = torch.zeros_like(hm[:, :, 0, 0])
    num_y = torch.zeros_like(num_x)
    den = torch.zeros_like(num_x)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            v, ok = _gather(hm, iy + dy, ix + dx)
            v = torch.where(ok, v.clamp_min(0), torch.zeros_like(v))
            num_x = num_x + v * (ix + dx).to(hm.dtype)
            num_y = num_y + v * (iy + dy).to(hm.dtype)
            den = den + v
    ok = den > 0
    safe = torch.where(ok, den, torch.ones_like(den))
    px = torch.where(ok, num_x / safe, ix.to(hm.dtype))
    py = torch.where(ok, num_y / safe, iy.to(hm.dtype))
    return px, py


def _decode_soft_argmax(hm: torch.Tensor, beta: float | None) -> torch.Tensor:
    if beta is not None:
        return soft_argmax(hm, beta)[0]
    b, k, h, w = hm.shape
    p = hm.clamp_min(0).reshape(b, k, h * w)
    s = p.sum(-1, keepdim=True)
    p = torch.where(s > 0, p / torch.where(s > 0, s, torch.ones_like(s)),
                    torch.full_like(p, 1.0 / (h * w))).reshape(b, k, h, w)
    xs, ys = cell_centres(w, hm.device, hm.dtype), cell_centres(h, hm.device, hm.dtype)
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], dim=-1)


def decode_heatmaps(heatmaps: torch.Tensor, method: str = "argmax", *, beta: float | None = None,
                    window: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps -> landmarks (not differentiable except ``soft_argmax``).

    Methods (heatmap-pixel coordinates ``p``; the result is ``(p + 0.5) / W``):

    * ``"argmax"``: the centre of the maximum cell (quantised to the heatmap grid).
    * ``"argmax_shift"``: argmax plus a quarter-pixel shift towards the higher of the two
      neighbours, on each axis separately (Newell et al., "Stacked Hourglass Networks", ECCV
      2016, test-time post-processing; kept by HRNet's ``get_final_preds``). An axis whose
      argmax lies on the map border, or whose neighbours are equal, is not shifted. (HRNet
      shifts only when the argmax is strictly inside on *both* axes; here each axis is treated
      on its own.)
    * ``"subpixel"``: per-axis Gaussian fit: a parabola through the **log** values at the argmax
      and its two neighbours; its vertex ``t = (l[-1] - l[+1]) / (2 (l[-1] - 2 l[0] + l[+1]))`` is
      added to the argmax. The log of a Gaussian is exactly quadratic, so for a (separable)
      Gaussian sampled anywhere on the grid -- in particular for the offset-Gaussian targets of
      :class:`GaussianHeatmap` ``(offset=True)`` -- this recovers the true sub-pixel centre
      exactly, independently of ``sigma``. It is DARK's idea (Zhang et al., "Distribution-Aware
      Coordinate Representation", CVPR 2020: second-order Taylor expansion of the log heatmap,
      ``mu = m - D''(m)^-1 D'(m)``) with the
      derivatives taken by finite differences per axis. Values are clamped to ``>= 1e-10`` before
      the log; an axis at the border, or without a strict peak (non-negative second difference),
      is not shifted; the shift is clamped to ``[-0.5, 0.5]`` (a vertex further away would have
      made the neighbour the maximum).
    * ``"local_mean"``: mean of the cell centres weighted by the non-negative values in the
      ``window x window`` neighbourhood of the argmax (cells outside the map are skipped). It
      decodes the *expected* randomized-rounding one-hot target (a bilinear splat over the four
      cells around the true point) exactly: the "set of activation points" decoding of Yu & Tao,
      "Heatmap Regression via Randomized Rounding", TPAMI 2021.
    * ``"soft_argmax"``: expectation over the whole map. With ``beta=None`` the map is treated as
      a non-negative density: negative values are clamped to 0 and the map is divided by its
      sum (an all-zero map decodes to the centre); this is exact for :class:`SoftmaxHeatmap`
      targets away from the borders. With a float ``beta`` the map is treated as **logits** and
      :func:`soft_argmax` (softmax with inverse temperature ``beta``) is used. Differentiable.

    Args:
        heatmaps: ``(B, K, H, W)`` float tensor (targets or network outputs).
        method: one of :data:`DECODERS`.
        beta: ``soft_argmax`` only; see above.
        window: ``local_mean`` only; odd side of the neighbourhood.

    Returns:
        ``coords`` ``(B, K, 2)`` normalised crop coordinates ``(x, y)`` (heatmap dtype) and
        ``scores`` ``(B, K)``: the maximum value of each map.

    Raises:
        ValueError: heatmaps not 4-D or empty, unknown method, bad window.
    """
    _check_heatmaps(heatmaps)
    if method not in DECODERS:
        raise ValueError(f"unknown heatmap decoder {method!r}; expected one of {DECODERS}")
    hm = heatmaps if heatmaps.is_floating_point() else heatmaps.float()
    b, k, h, w = hm.shape
    iy, ix, scores = _argmax(hm)
    if method == "soft_argmax":
        return _decode_soft_argmax(hm, beta), scores
    if method == "argmax":
        px, py = ix.to(hm.dtype), iy.to(hm.dtype)
    elif method == "argmax_shift":
        px, py = _decode_argmax_shift(hm, iy, ix)
    elif method == "subpixel":
        px, py = _decode_subpixel(hm, iy, ix)
    else:
        px, py = _decode_local_mean(hm, iy, ix, window)
    return _to_normalized(px, py, w, h), scores


# --------------------------------------------------------------------------------------------
# codecs


class HeatmapCodec:
    """Base class of the heatmap codecs.

    Args:
        size: heatmap size ``(W, H)`` (or an int for a square map), in heatmap pixels.
        decoder: default method of :meth:`decode` (one of :data:`DECODERS`).

    Raises:
        ValueError: non-positive size or unknown decoder.
    """

    def __init__(self, size: int | tuple[int, int], decoder: str) -> None:
        self.size = _size(size)
        if decoder not in DECODERS:
            raise ValueError(f"unknown heatmap decoder {decoder!r}; expected one of {DECODERS}")
        self.decoder = decoder

    @property
    def width(self) -> int:
        """W, heatmap columns."""
        return self.size[0]

    @property
    def height(self) -> int:
        """H, heatmap rows."""
        return self.size[1]

    def _pixel_coords(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                           torch.Tensor]:
        """Normalised ``(B, K, 2)`` -> heatmap-pixel ``x, y (B, K)`` (non-finite -> 0), finite mask."""
        finite = torch.isfinite(coords).all(dim=-1)
        c = torch.where(finite.unsqueeze(-1), coords, torch.zeros_like(coords))
        return c[..., 0] * self.width - 0.5, c[..., 1] * self.height - 0.5, finite

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, K, 2)`` normalised crop coordinates -> ``(B, K, H, W)`` targets."""
        raise NotImplementedError

    def decode(self, heatmaps: torch.Tensor, method: str | None = None,
               **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, K, H, W)`` -> ``(coords (B, K, 2) normalised, scores (B, K))``.

        ``method`` defaults to the codec's ``decoder``; ``kwargs`` go to
        :func:`decode_heatmaps` (``beta``, ``window``; ``window`` defaults to the codec's
        ``window`` attribute where it has one). Any map size is accepted (the coordinates are
        normalised by the maps' own size).
        """
        if "window" not in kwargs and hasattr(self, "window"):
            kwargs["window"] = self.window
        return decode_heatmaps(heatmaps, method or self.decoder, **kwargs)

    def __repr__(self) -> str:
        extra = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({extra})"


def _gaussian_1d(grid: torch.Tensor, centre: torch.Tensor, peak_at: torch.Tensor,
                 anchor: torch.Tensor, radius: int, sigma: float) -> torch.Tensor:
    """``exp(-((g - centre)^2 - (peak_at - centre)^2) / (2 sigma^2))`` on ``|g - anchor| <= radius``.

    grid ``(L,)``; centre, peak_at, anchor ``(B, K)`` -> ``(B, K, L)``.
    """
    g = grid.view(1, 1, -1)
    d2 = (g - centre.unsqueeze(-1)) ** 2 - (peak_at - centre).unsqueeze(-1) ** 2
    inside = (g - anchor.unsqueeze(-1)).abs() <= radius
    return torch.exp(-d2 / (2 * sigma * sigma)) * inside


class GaussianHeatmap(HeatmapCodec):
    """Gaussian heatmaps with peak 1, truncated to a ``kernel_size x kernel_size`` square.

    Source: seed 001 (stacked hourglass for facial landmarks): 7 x 7 kernel, ``sigma = 1.75``
    heatmap pixels, heatmaps at 1/4 of the input (Table 3 compares "Gaussian" and "Gaussian with
    offset" targets by their round-trip NME: 0.5127 % vs 0.0076 %).

    Let ``p = x * W - 0.5`` be the true heatmap-pixel coordinate (per axis) and
    ``r = floor(p + 0.5)`` the rounded one (halves round up).

    * ``offset=False`` (plain): ``T(j) = exp(-(j - r)^2 / (2 sigma^2))`` for ``|j - r| <= k // 2``
      (per axis, the 2-D map is the product of the two axes): the kernel sits on the integer
      position, so the fractional part is lost (quantisation error up to half a heatmap pixel).
    * ``offset=True`` ("Gaussian with offset"). Reading of the paper: the kernel is *evaluated at
      the true sub-pixel position* -- each cell of the same ``k x k`` support around ``r`` gets the
      Gaussian value of its distance to ``p`` (the offset ``p - r`` re-weights the kernel) -- and is
      then normalised so that the rounded centre cell is 1:
      ``T(j) = exp(-((j - p)^2 - (r - p)^2) / (2 sigma^2))``. Since ``|r - p| <= 0.5`` the centre
      cell is still the maximum, and the map's log is exactly quadratic, so the ``"subpixel"``
      decoder (:func:`decode_heatmaps`) recovers ``p`` exactly.

    Landmarks with a non-finite coordinate (missing annotations) give an all-zero map; a kernel
    that falls partly outside the map is cut, one wholly outside gives an all-zero map.

    Args:
        size: ``(W, H)`` heatmap size (or an int).
        sigma: standard deviation in heatmap pixels (> 0).
        kernel_size: odd side of the square support (>= 1).
        offset: the "Gaussian with offset" variant.
        decoder: default decoder; ``None`` picks ``"subpixel"`` for ``offset=True`` and
            ``"argmax"`` otherwise.

    Raises:
        ValueError: non-positive sigma, even or non-positive kernel size, bad size/decoder.
    """

    def __init__(self, size: int | tuple[int, int], sigma: float = 1.75, kernel_size: int = 7,
                 offset: bool = False, decoder: str | None = None) -> None:
        super().__init__(size, decoder or ("subpixel" if offset else "argmax"))
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        self.sigma = float(sigma)
        self.kernel_size = int(kernel_size)
        self.offset = bool(offset)

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, K, 2)`` normalised ``(x, y)`` -> ``(B, K, H, W)`` float targets in ``[0, 1]``.

        Raises:
            ValueError: coords not ``(B, K, 2)``.
        """
        coords = _check_coords(coords)
        px, py, finite = self._pixel_coords(coords)
        rx, ry = torch.floor(px + 0.5), torch.floor(py + 0.5)
        cx, cy = (px, py) if self.offset else (rx, ry)
        rad = self.kernel_size // 2
        gx = torch.arange(self.width, device=coords.device, dtype=coords.dtype)
        gy = torch.arange(self.height, device=coords.device, dtype=coords.dtype)
        hx = _gaussian_1d(gx, cx, rx, rx, rad, self.sigma)
        hy = _gaussian_1d(gy, cy, ry, ry, rad, self.sigma)
        hm = hy.unsqueeze(-1) * hx.unsqueeze(-2)
        return hm * finite[..., None, None]


class RandomizedRoundingHeatmap(HeatmapCodec):
    """Randomized-rounding heatmaps (Yu & Tao, "Heatmap Regression via Randomized Rounding",
    TPAMI 2021: the randomized-rounding encoding ``RR(p)`` and its unbiasedness ``E[RR(p)] = p``;
    the formula is written out below, paper equation numbers were not re-checked here).

    Per axis, the heatmap-pixel coordinate ``p = x * W - 0.5`` is rounded **down** to
    ``floor(p)`` with probability ``1 - (p - floor(p))`` and **up** to ``floor(p) + 1`` with
    probability ``p - floor(p)`` (independent draws for x and y), so the expected integer position
    equals ``p``: the quantisation error is zero in expectation (the paper's "unbiased"
    encoding). A kernel is then placed at that integer cell: a Gaussian with peak 1 (``sigma``,
    truncated to ``kernel_size``) or a one-hot cell (``kernel="onehot"``). Averaged over draws (as
    training does over epochs) a one-hot target becomes the bilinear splat of ``p`` over its four
    neighbouring cells, which the ``"local_mean"`` decoder inverts exactly.

    Missing (non-finite) landmarks give all-zero maps; cells outside the map are dropped.

    Args:
        size: ``(W, H)`` heatmap size (or an int).
        sigma: Gaussian standard deviation in heatmap pixels (``kernel="gaussian"``).
        kernel: ``"gaussian"`` or ``"onehot"``.
        kernel_size: odd support side; default ``2 * ceil(3 sigma) + 1``.
        generator: optional ``torch.Generator`` used by :meth:`encode` (reproducible draws).
        decoder: default decoder (``"local_mean"``; ``"argmax"`` gives the per-draw integer
            position, which is unbiased on average).
        window: ``local_mean`` window; default 3 for one-hot kernels (the four cells of the
            bilinear splat) and ``kernel_size + 2`` for Gaussian ones (the whole support of the
            expected map, a bilinear mixture of four kernels: then the decoding of the expected
            target is exact, as the kernel is symmetric).

    Raises:
        ValueError: unknown kernel, non-positive sigma, bad kernel size, size or decoder.
    """

    KERNELS = ("gaussian", "onehot")

    def __init__(self, size: int | tuple[int, int], sigma: float = 1.0, kernel: str = "gaussian",
                 kernel_size: int | None = None, generator: torch.Generator | None = None,
                 decoder: str = "local_mean", window: int | None = None) -> None:
        super().__init__(size, decoder)
        if kernel not in self.KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; expected one of {self.KERNELS}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        kernel_size = 2 * math.ceil(3 * sigma) + 1 if kernel_size is None else int(kernel_size)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        self.sigma = float(sigma)
        self.kernel = kernel
        self.kernel_size = kernel_size
        self.generator = generator
        self.window = int(window) if window else (3 if kernel == "onehot" else kernel_size + 2)
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be a positive odd integer, got {self.window}")

    def round(self, coords: torch.Tensor, generator: torch.Generator | None = None
              ) -> torch.Tensor:
        """Randomly rounded heatmap-pixel positions.

        Args:
            coords: ``(B, K, 2)`` normalised ``(x, y)``.
            generator: overrides the codec's generator for this call.

        Returns:
            ``(B, K, 2)`` integer-valued float tensor of heatmap-pixel ``(x, y)`` (NaN for
            non-finite input).
        """
        coords = _check_coords(coords)
        px, py, finite = self._pixel_coords(coords)
        p = torch.stack([px, py], dim=-1)
        g = generator if generator is not None else self.generator
        dev = g.device if g is not None else coords.device
        u = torch.rand(p.shape, generator=g, device=dev, dtype=p.dtype).to(p.device)
        fl = torch.floor(p)
        out = fl + (u < (p - fl)).to(p.dtype)
        return torch.where(finite.unsqueeze(-1), out, torch.full_like(out, float("nan")))

    def encode(self, coords: torch.Tensor, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """``(B, K, 2)`` normalised ``(x, y)`` -> ``(B, K, H, W)`` targets (one random draw).

        Raises:
            ValueError: coords not ``(B, K, 2)``.
        """
        q = self.round(coords, generator)
        finite = torch.isfinite(q).all(-1)
        q = torch.where(finite.unsqueeze(-1), q, torch.full_like(q, -1e6))
        rx, ry = q[..., 0], q[..., 1]
        gx = torch.arange(self.width, device=q.device, dtype=q.dtype)
        gy = torch.arange(self.height, device=q.device, dtype=q.dtype)
        if self.kernel == "onehot":
            hx = (gx.view(1, 1, -1) == rx.unsqueeze(-1)).to(q.dtype)
            hy = (gy.view(1, 1, -1) == ry.unsqueeze(-1)).to(q.dtype)
        else:
            rad = self.kernel_size // 2
            hx = _gaussian_1d(gx, rx, rx, rx, rad, self.sigma)
            hy = _gaussian_1d(gy, ry, ry, ry, rad, self.sigma)
        return hy.unsqueeze(-1) * hx.unsqueeze(-2) * finite[..., None, None]


class SoftmaxHeatmap(HeatmapCodec):
    """Per-landmark probability maps (each sums to 1) for pixel-wise classification.

    Source: seed 004 (UNet "pixel-wise classification" of landmarks): a Gaussian with
    ``sigma = 0.05`` in **normalised** crop coordinates (``0.05 * W`` heatmap pixels), evaluated at
    every cell centre and normalised to sum 1 per landmark; trained with the cross-entropy
    ``-sum T log softmax(logits)`` and decoded by soft-argmax.

    ``T(i, j) = exp(-((u_j - x)^2 + (v_i - y)^2) / (2 sigma^2)) / Z`` with cell centres
    ``u_j = (j + 0.5) / W``, ``v_i = (i + 0.5) / H``; the Gaussian is not truncated (only by the map
    borders, so ``Z`` is the sum over the map). It is computed as the product of two per-axis
    softmaxes, which stays finite for points far outside the map. Missing (non-finite) landmarks
    give all-zero maps (they add nothing to a cross-entropy).

    Args:
        size: ``(W, H)`` map size (or an int).
        sigma: standard deviation in normalised coordinates (> 0).
        decoder: default decoder (``"soft_argmax"``, the map as a density).

    Raises:
        ValueError: non-positive sigma, bad size or decoder.
    """

    def __init__(self, size: int | tuple[int, int], sigma: float = 0.05,
                 decoder: str = "soft_argmax") -> None:
        super().__init__(size, decoder)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, K, 2)`` normalised ``(x, y)`` -> ``(B, K, H, W)`` maps summing to 1.

        Raises:
            ValueError: coords not ``(B, K, 2)``.
        """
        coords = _check_coords(coords)
        finite = torch.isfinite(coords).all(dim=-1)
        c = torch.where(finite.unsqueeze(-1), coords, torch.zeros_like(coords))
        u = cell_centres(self.width, c.device, c.dtype)
        v = cell_centres(self.height, c.device, c.dtype)
        s2 = 2 * self.sigma ** 2
        px = torch.softmax(-(u.view(1, 1, -1) - c[..., :1]) ** 2 / s2, dim=-1)
        py = torch.softmax(-(v.view(1, 1, -1) - c[..., 1:]) ** 2 / s2, dim=-1)
        return py.unsqueeze(-1) * px.unsqueeze(-2) * finite[..., None, None]


#: Codec kinds of :class:`CodecConfig` and each one's own decoder.
CODEC_KINDS = {"offset_gaussian": "subpixel", "gaussian": "argmax_shift",
               "randomized_rounding": "local_mean", "softmax": "soft_argmax"}


@dataclass(frozen=True)
class CodecConfig:
    """A heatmap codec chosen by configuration (a model's ``codec`` argument, YAML-friendly).

    Attributes:
        kind: ``"offset_gaussian"`` (seed 001's Gaussian with sub-pixel offset,
            :class:`GaussianHeatmap` ``offset=True``), ``"gaussian"`` (plain, rounded centre),
            ``"randomized_rounding"`` (:class:`RandomizedRoundingHeatmap`, IACT) or
            ``"softmax"`` (:class:`SoftmaxHeatmap`, seed 004's UNet).
        sigma: Gaussian sigma, heatmap pixels (``"softmax"``: normalised crop units).
        kernel_size: Gaussian support in heatmap pixels (``None``: the codec's default).
        decoder: one of :data:`DECODERS` (``None``: the kind's own, :data:`CODEC_KINDS`).

    Raises:
        ValueError: unknown kind or decoder, ``sigma <= 0``.
    """

    kind: str
    sigma: float
    kernel_size: int | None = None
    decoder: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in CODEC_KINDS:
            raise ValueError(f"unknown codec {self.kind!r}; expected one of {sorted(CODEC_KINDS)}")
        if self.decoder is not None and self.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.decoder!r}; expected one of {DECODERS}")
        if not self.sigma > 0:
            raise ValueError(f"codec sigma must be > 0, got {self.sigma}")

    @classmethod
    def coerce(cls, value: str | dict | CodecConfig, **defaults: object) -> CodecConfig:
        """A config from a kind name (completed with ``defaults``), a dict of fields (the
        defaults fill what it leaves out) or a config.

        Raises:
            ValueError: unknown or missing kind, unknown decoder or field.
        """
        if isinstance(value, CodecConfig):
            return value
        fields_ = {"kind": value} if isinstance(value, str) else dict(value)
        unknown = set(fields_) - {"kind", "sigma", "kernel_size", "decoder"}
        if unknown:
            raise ValueError(f"unknown codec field(s) {sorted(unknown)}")
        if "kind" not in fields_:
            raise ValueError(f"a codec needs a kind (one of {sorted(CODEC_KINDS)}), got {value!r}")
        return cls(**{**{k: v for k, v in defaults.items() if v is not None}, **fields_})

    def build(self, size: int | tuple[int, int]) -> HeatmapCodec:
        """The codec for heatmaps of ``size`` (``N`` or ``(H, W)``) cells."""
        return _CODEC_BUILDERS[self.kind](self, size, self.decoder or CODEC_KINDS[self.kind])


def _gaussian(offset: bool):
    def build(c: CodecConfig, size, decoder: str) -> HeatmapCodec:
        k = 7 if c.kernel_size is None else c.kernel_size
        return GaussianHeatmap(size, c.sigma, k, offset=offset, decoder=decoder)
    return build


#: How each codec kind is built from a :class:`CodecConfig` (kind -> builder).
_CODEC_BUILDERS = {
    "offset_gaussian": _gaussian(True),
    "gaussian": _gaussian(False),
    "randomized_rounding": lambda c, size, decoder: RandomizedRoundingHeatmap(
        size, c.sigma, kernel_size=c.kernel_size, decoder=decoder),
    "softmax": lambda c, size, decoder: SoftmaxHeatmap(size, c.sigma, decoder=decoder),
}
