"""Landmark losses: on coordinates and on heatmaps.

Coordinate losses (:func:`l1_loss`, :func:`wing_loss`, :func:`smooth_wing_loss`) take
predictions and targets of shape ``(B, K, 2)`` in the same units (faceland's models use
normalised crop coordinates). Heatmap losses (:func:`mse_loss`, :func:`weighted_mse_loss`,
:func:`adaptive_wing_loss`) take ``(B, K, H, W)`` maps (targets from a codec in
:mod:`faceland.codecs`, values in ``[0, 1]``). All return a scalar mean over every element.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["l1_loss", "weighted_l1_loss", "wing_loss", "mse_loss", "loss_weight_map", "weighted_mse_loss",
           "adaptive_wing_loss", "smooth_wing_loss"]


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all coordinates.

    Args:
        pred, target: ``(B, K, 2)`` coordinates in the same units (faceland: normalised crop
            coordinates). Returns a scalar in those units.
    """
    return (pred - target).abs().mean()


def weighted_l1_loss(pred: torch.Tensor, target: torch.Tensor,
                     weight: torch.Tensor) -> torch.Tensor:
    """L1 with a weight per point (partial or soft supervision, e.g. 5-point or pseudo-labels).

    ``sum(weight * |pred - target|) / (B * K * 2)``: with all weights 1 it equals
    :func:`l1_loss`; a weight of 0 masks a point (its target may then be anything finite).

    Args:
        pred, target: ``(B, K, 2)`` coordinates in the same units (normalised crop coordinates).
        weight: ``(B, K)`` non-negative weights.

    Raises:
        ValueError: shapes that do not match.
    """
    if pred.shape != target.shape or weight.shape != pred.shape[:2]:
        raise ValueError(f"weighted_l1_loss: pred {tuple(pred.shape)}, target "
                         f"{tuple(target.shape)}, weight {tuple(weight.shape)}")
    return ((pred - target).abs() * weight[..., None]).sum() / pred.numel()


def wing_loss(pred: torch.Tensor, target: torch.Tensor, omega: float = 10.0,
              epsilon: float = 2.0, scale: float = 1.0) -> torch.Tensor:
    """Wing loss (Feng et al., "Wing Loss for Robust Facial Landmark Localisation", CVPR 2018, eq. 5).

    ``w ln(1 + |x| / eps)`` for ``|x| < w``, else ``|x| - C`` with ``C = w - w ln(1 + w / eps)``.
    ``omega`` and ``epsilon`` are in the paper's pixel units; ``scale`` converts the inputs to those
    units first (e.g. ``scale = N`` for normalised coordinates of an ``N``-pixel crop).

    Args:
        pred, target: ``(B, K, 2)`` coordinates in the same units. Returns a scalar in the
            paper's pixel units.
    """
    x = (pred - target).abs() * scale
    c = omega - omega * math.log(1 + omega / epsilon)
    loss = torch.where(x < omega, omega * torch.log1p(x / epsilon), x - c)
    return loss.mean()


def _same_shape(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs "
                         f"{tuple(target.shape)}")


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements (any shape, e.g. ``(B, K, H, W)`` heatmaps).

    Raises:
        ValueError: shapes differ.
    """
    _same_shape(pred, target)
    return ((pred - target) ** 2).mean()


def loss_weight_map(target_heatmaps: torch.Tensor, threshold: float = 0.2,
                    dilation: int = 3) -> torch.Tensor:
    """Foreground mask ``M`` of the weighted heatmap losses.

    ``M = 1`` where the grey-dilated target (a ``dilation x dilation`` max filter, stride 1,
    "same" padding) is ``>= threshold``, else 0 (Wang et al., "Adaptive Wing Loss for Robust Face
    Alignment via Heatmap Regression", ICCV 2019, Sec. "Weighted Loss Map": 3 x 3 grey dilation,
    threshold 0.2).

    Args:
        target_heatmaps: ``(B, K, H, W)`` ground-truth maps.
        threshold: foreground threshold on the dilated map.
        dilation: odd side of the max filter (1 = no dilation).

    Returns:
        ``(B, K, H, W)`` float tensor of 0 / 1 (no gradient).

    Raises:
        ValueError: not 4-D, or ``dilation`` not a positive odd integer.
    """
    if target_heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, K, H, W), got {tuple(target_heatmaps.shape)}")
    if dilation < 1 or dilation % 2 == 0:
        raise ValueError(f"dilation must be a positive odd integer, got {dilation}")
    t = target_heatmaps.detach()
    if dilation > 1:
        t = F.max_pool2d(t, dilation, stride=1, padding=dilation // 2)
    return (t >= threshold).to(target_heatmaps.dtype)


def weighted_mse_loss(pred_heatmaps: torch.Tensor, target_heatmaps: torch.Tensor,
                      w: float = 10.0, threshold: float = 0.2, dilation: int = 3) -> torch.Tensor:
    """Weighted heatmap MSE (seed 001's loss, the Weighted Loss Map of Wang et al., ICCV 2019).

    ``loss = mean((P - T)^2 * (w * M + 1))`` with ``M = loss_weight_map(T, threshold, dilation)``:
    cells near a landmark weigh ``w + 1``, the background 1.

    Args:
        pred_heatmaps: ``(B, K, H, W)`` predictions.
        target_heatmaps: ``(B, K, H, W)`` targets (peak 1, e.g. :class:`~faceland.codecs.GaussianHeatmap`).
        w: extra weight of the foreground cells.
        threshold, dilation: see :func:`loss_weight_map`.

    Raises:
        ValueError: shapes differ, not 4-D, bad dilation.
    """
    _same_shape(pred_heatmaps, target_heatmaps)
    m = loss_weight_map(target_heatmaps, threshold, dilation)
    return ((pred_heatmaps - target_heatmaps) ** 2 * (w * m + 1)).mean()


def adaptive_wing_loss(pred: torch.Tensor, target: torch.Tensor, omega: float = 14.0,
                       theta: float = 0.5, epsilon: float = 1.0, alpha: float = 2.1,
                       weighted: bool = False, w: float = 10.0, threshold: float = 0.2,
                       dilation: int = 3) -> torch.Tensor:
    """Adaptive Wing loss on heatmaps (Wang, Bo & Fuxin, "Adaptive Wing Loss for Robust Face
    Alignment via Heatmap Regression", ICCV 2019, the AWing equation of Sec. 4).

    With ``d = |y - y_hat|`` and ``y`` the target value of the cell (in ``[0, 1]``)::

        AWing = omega * ln(1 + (d / epsilon)^(alpha - y))        if d < theta
                A * d - C                                          otherwise
        A = omega * (alpha - y) * (theta / epsilon)^(alpha - y - 1)
            / (epsilon * (1 + (theta / epsilon)^(alpha - y)))
        C = theta * A - omega * ln(1 + (theta / epsilon)^(alpha - y))

    ``A`` and ``C`` make the loss continuous with a continuous derivative at ``d = theta``. The
    exponent ``alpha - y`` adapts the shape per cell: near-quadratic on the background (``y = 0``),
    L1-like on the foreground (``y -> 1``). Paper defaults ``omega = 14, theta = 0.5,
    epsilon = 1, alpha = 2.1``. With ``weighted=True`` the per-cell loss is multiplied by
    ``w * M + 1`` (the paper's Weighted Loss Map, ``M`` from :func:`loss_weight_map`, ``w = 10``).

    Args:
        pred, target: ``(B, K, H, W)`` heatmaps (any equal shapes when ``weighted=False``).
        omega, theta, epsilon, alpha: the AWing constants (``alpha - y > 1`` keeps the gradient
            finite at ``d = 0``).
        weighted, w, threshold, dilation: the weighted loss map.

    Raises:
        ValueError: shapes differ (or not 4-D with ``weighted=True``).
    """
    _same_shape(pred, target)
    y = target.detach()
    d = (target - pred).abs()
    e = alpha - y
    r = theta / epsilon
    a = omega * e * r ** (e - 1) / (epsilon * (1 + r ** e))
    c = theta * a - omega * torch.log1p(r ** e)
    small = d < theta
    # the unselected branch gets a harmless constant input (no overflow, no gradient)
    inner = omega * torch.log1p((torch.where(small, d, torch.zeros_like(d)) / epsilon) ** e)
    loss = torch.where(small, inner, a * d - c)
    if weighted:
        loss = loss * (w * loss_weight_map(target, threshold, dilation) + 1)
    return loss.mean()


def smooth_wing_loss(pred: torch.Tensor, target: torch.Tensor, omega: float = 14.0,
                     theta1: float = 0.05, theta2: float = 0.5, alpha: float = 2.1,
                     epsilon: float = 1.0, weighted: bool = False, w: float = 10.0,
                     threshold: float = 0.2, dilation: int = 3) -> torch.Tensor:
    """Smooth Wing loss (IACT's): quadratic, then Adaptive-Wing log, then linear, per element.

    Source: the IACT paper's Smooth Wing loss with the constants of the faceland brief (omega 14,
    theta1 0.05, theta2 0.5, alpha 2.1, epsilon 1). The paper's own equation was not available
    offline: this piecewise form is faceland's reconstruction from that description (a fixed
    exponent ``alpha``, not Adaptive Wing's per-pixel ``alpha - y``); check it against the paper
    before quoting IACT numbers.

    With ``x = pred - target`` per element -- coordinates, or heatmap values as in faceland's
    ``iact`` model; ``theta1``/``theta2`` are in the same units as ``x`` -- and ``r = |x|``::

        L(r) = a r^2                                  r < theta1
               omega * ln(1 + (r / epsilon)^alpha) - C1  theta1 <= r < theta2
               A r - C2                               r >= theta2

    Derivation of the constants. Let ``g(r) = omega ln(1 + (r / epsilon)^alpha)`` (the Adaptive
    Wing log form with a fixed exponent ``alpha``; Wang et al., ICCV 2019) and
    ``g'(r) = omega * alpha * r^(alpha - 1) / (epsilon^alpha + r^alpha)``.

    * ``C^1`` at ``theta1``: slopes ``2 a theta1 = g'(theta1)`` give ``a = g'(theta1) / (2 theta1)``;
      values ``a theta1^2 = g(theta1) - C1`` give ``C1 = g(theta1) - theta1 g'(theta1) / 2``.
    * ``C^1`` at ``theta2``: slopes give ``A = g'(theta2)``; values ``A theta2 - C2 = g(theta2) - C1``
      give ``C2 = theta2 g'(theta2) - g(theta2) + C1``.

    So ``L`` is continuous with a continuous first derivative everywhere, ``L(0) = 0``, even in
    ``x``, increasing in ``r`` (``g' > 0``), with a non-vanishing curvature ``2a`` at 0 (``g`` alone
    behaves like ``r^alpha`` there, whose gradient vanishes too fast for tiny errors) and a
    constant gradient ``A`` for large errors (robust to outliers).

    On heatmaps the plain mean is dominated by the background cells (about 1 % of a 32 x 32 map
    is foreground at sigma 1.5): in faceland's CPU runs an IACT trained with it drove its maps
    toward zero (peaks falling while the loss fell, see docs/models.md). ``weighted=True``
    multiplies each cell's loss by ``w * M + 1``, Adaptive Wing's Weighted Loss Map (``M`` from
    :func:`loss_weight_map`; Wang et al., ICCV 2019), as :func:`adaptive_wing_loss` does.

    Args:
        pred, target: equal shapes, e.g. ``(B, K, 2)`` coordinates or ``(B, K, H, W)`` heatmaps
            (4-D with ``weighted=True``).
        omega, theta1, theta2, alpha, epsilon: constants, ``0 < theta1 < theta2``, ``alpha > 1``,
            ``omega, epsilon > 0``.
        weighted, w, threshold, dilation: the weighted loss map (heatmaps only).

    Returns:
        Scalar mean over all elements.

    Raises:
        ValueError: shapes differ or constants out of range.
    """
    _same_shape(pred, target)
    if not (0 < theta1 < theta2) or not alpha > 1 or not omega > 0 or not epsilon > 0:
        raise ValueError(f"need 0 < theta1 < theta2, alpha > 1, omega > 0, epsilon > 0; got "
                         f"theta1={theta1}, theta2={theta2}, alpha={alpha}, omega={omega}, "
                         f"epsilon={epsilon}")

    def g(r: float) -> float:
        return omega * math.log1p((r / epsilon) ** alpha)

    def dg(r: float) -> float:
        return omega * alpha * r ** (alpha - 1) / (epsilon ** alpha + r ** alpha)

    a = dg(theta1) / (2 * theta1)
    c1 = g(theta1) - theta1 * dg(theta1) / 2
    big_a = dg(theta2)
    c2 = theta2 * big_a - g(theta2) + c1
    r = (pred - target).abs()
    in_mid = (r >= theta1) & (r < theta2)
    # the log piece sees r only where it is used (elsewhere a constant: no overflow, no gradient)
    rm = torch.where(in_mid, r, torch.full_like(r, theta1))
    mid = omega * torch.log1p((rm / epsilon) ** alpha) - c1
    loss = torch.where(r < theta1, a * r * r, torch.where(in_mid, mid, big_a * r - c2))
    if weighted:
        loss = loss * (w * loss_weight_map(target, threshold, dilation) + 1)
    return loss.mean()
