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

__all__ = ["l1_loss", "weighted_l1_loss", "wing_loss", "mse_loss", "loss_weight_map",
           "weighted_mse_loss", "adaptive_wing_loss", "smooth_wing_loss", "smooth_wing_constants",
           "COORDINATE_LOSSES", "check_coordinate_loss", "coordinate_loss",
           "HEATMAP_LOSSES", "heatmap_loss"]


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


def smooth_wing_constants(y: torch.Tensor | float, omega: float = 14.0, theta1: float = 0.05,
                          theta2: float = 0.5, alpha: float = 2.1,
                          epsilon: float = 1.0) -> dict[str, torch.Tensor]:
    """The constants ``K, M, A, C`` (and ``B``) of the Smooth Wing loss for target values ``y``.

    IACT paper (Gao, Chen & Yu, 2023), sec. 2.3, below eq. 6, with ``e = alpha - y``::

        B = omega e (theta1/epsilon)^(e - 1) / (epsilon (1 + (theta1/epsilon)^e))
        K = (1 + theta1^2) (2 G1 - B theta1) / (2 (1 + theta1^2) ln(1 + theta1^2) - 2 theta1^2)
        M = (G1 - K ln(1 + theta1^2)) / theta1^2,   G1 = omega ln(1 + (theta1/epsilon)^e)
        A = omega e (theta2/epsilon)^(e - 1) / (epsilon (1 + (theta2/epsilon)^e))
        C = theta2 A - omega ln(1 + (theta2/epsilon)^e)

    ``B`` and ``A`` are the slopes of the middle piece at ``theta1`` and ``theta2`` (for the
    paper's ``epsilon = 1`` the printed ``B = omega (alpha - y) theta1^(alpha-y-1) / (epsilon +
    theta1^(alpha-y))``); ``K`` and ``M`` make the inner piece meet the middle one in value and
    slope at ``theta1``, ``C`` the outer piece in value at ``theta2``. Where the extracted text of
    the paper is garbled (``K``'s ``2 omega ln 1 + theta1``, ``M``'s ``A - K ln 1 + theta1``,
    ``C``'s ``theta2 - omega ln ...``), these are the only values that give the continuity the
    paper states; docs/fidelity.md lists the reading.

    Args:
        y: target values (any shape; a float for one value).
        omega, theta1, theta2, alpha, epsilon: the paper's constants (14, 0.05, 0.5, 2.1, 1).

    Returns:
        ``{"K", "M", "A", "C", "B"}``: float64 tensors of ``y``'s shape.
    """
    e = alpha - torch.as_tensor(y, dtype=torch.float64)
    r1, r2 = theta1 / epsilon, theta2 / epsilon
    g1 = omega * torch.log1p(r1 ** e)
    b = omega * e * r1 ** (e - 1) / (epsilon * (1 + r1 ** e))
    l1 = math.log1p(theta1 ** 2)
    k = (1 + theta1 ** 2) * (2 * g1 - b * theta1) / (2 * (1 + theta1 ** 2) * l1 - 2 * theta1 ** 2)
    m = (g1 - k * l1) / theta1 ** 2
    a = omega * e * r2 ** (e - 1) / (epsilon * (1 + r2 ** e))
    c = theta2 * a - omega * torch.log1p(r2 ** e)
    return {"K": k, "M": m, "A": a, "C": c, "B": b}


def smooth_wing_loss(pred: torch.Tensor, target: torch.Tensor, omega: float = 14.0,
                     theta1: float = 0.05, theta2: float = 0.5, alpha: float = 2.1,
                     epsilon: float = 1.0, weighted: bool = False, w: float = 10.0,
                     threshold: float = 0.2, dilation: int = 3) -> torch.Tensor:
    """Smooth Wing loss on heatmaps (IACT paper, sec. 2.3, eq. 6).

    Per cell, with ``y`` the ground-truth value, ``y_hat`` the prediction, ``d = |y - y_hat|``
    and ``e = alpha - y``::

        SWL = K ln(1 + d^2) + M d^2                 0 <= d < theta1
              omega ln(1 + (d / epsilon)^e)         theta1 <= d < theta2
              A d - C                               d >= theta2

    with ``K, M, A, C`` from :func:`smooth_wing_constants` (they depend on ``y`` through
    ``alpha - y``, like Adaptive Wing's; Wang et al., ICCV 2019). The loss is continuous with a
    continuous first derivative at ``theta1`` and ``theta2``, its gradient is 0 at ``d = 0``
    (Adaptive Wing's jumps there for ``y`` near 1: the paper's motivation), and it grows
    linearly (slope ``A``) beyond ``theta2``. The middle piece's exponent is printed as 2 in the
    extracted eq. 6; the constants ``B`` and ``A`` the paper gives are the slopes of
    ``omega ln(1 + (d/epsilon)^(alpha - y))``, which is therefore the middle piece used here.
    Paper constants: ``omega = 14, theta1 = 0.05, theta2 = 0.5, alpha = 2.1, epsilon = 1``.

    ``weighted=True`` (not in the paper) multiplies each cell's loss by ``w * M + 1``, Adaptive
    Wing's Weighted Loss Map (``M`` from :func:`loss_weight_map`): faceland's CPU-scale IACT runs
    drove their maps to zero with the plain mean (docs/models.md).

    Args:
        pred, target: ``(B, K, H, W)`` heatmaps (any equal shapes when ``weighted=False``),
            target values in ``[0, 1]``.
        omega, theta1, theta2, alpha, epsilon: constants, ``0 < theta1 < theta2``,
            ``alpha - y > 1`` for every target value, ``omega, epsilon > 0``.
        weighted, w, threshold, dilation: the weighted loss map.

    Returns:
        Scalar mean over all cells.

    Raises:
        ValueError: shapes differ or constants out of range.
    """
    _same_shape(pred, target)
    if not (0 < theta1 < theta2) or not alpha > 1 or not omega > 0 or not epsilon > 0:
        raise ValueError(f"need 0 < theta1 < theta2, alpha > 1, omega > 0, epsilon > 0; got "
                         f"theta1={theta1}, theta2={theta2}, alpha={alpha}, omega={omega}, "
                         f"epsilon={epsilon}")
    y = target.detach()
    c = {k: v.to(pred.dtype) for k, v in
         smooth_wing_constants(y, omega, theta1, theta2, alpha, epsilon).items()}
    e = alpha - y
    d = (target - pred).abs()
    inner = c["K"] * torch.log1p(d * d) + c["M"] * d * d
    in_mid = (d >= theta1) & (d < theta2)
    # the log piece sees d only where it is used (elsewhere a constant: no overflow, no gradient)
    dm = torch.where(in_mid, d, torch.full_like(d, theta1))
    mid = omega * torch.log1p((dm / epsilon) ** e)
    loss = torch.where(d < theta1, inner, torch.where(in_mid, mid, c["A"] * d - c["C"]))
    if weighted:
        loss = loss * (w * loss_weight_map(target, threshold, dilation) + 1)
    return loss.mean()


def _wing_normalised(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # omega 10 / epsilon 2 in pixels of a 256-px crop (Feng et al.'s setting), back to normalised.
    return wing_loss(pred, target, omega=10.0, epsilon=2.0, scale=256.0) / 256.0


#: The coordinate losses models choose by name (``loss=...`` in ``model_args``): each takes
#: ``(B, K, 2)`` predictions and targets in normalised crop coordinates and returns a scalar.
#: ``"l1"``: :func:`l1_loss` (seeds 000, 002); ``"mse"``: :func:`mse_loss` (seed 004);
#: ``"wing"``: :func:`wing_loss` with omega 10, epsilon 2 in pixels of a 256-px crop.
COORDINATE_LOSSES = {"l1": l1_loss, "mse": mse_loss, "wing": _wing_normalised}


def check_coordinate_loss(name: str) -> str:
    """``name`` if it is a key of :data:`COORDINATE_LOSSES` (models call it in ``__init__``).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name not in COORDINATE_LOSSES:
        raise ValueError(f"unknown loss {name!r} (coordinate losses: "
                         f"{sorted(COORDINATE_LOSSES)})")
    return name


def coordinate_loss(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The coordinate loss ``name`` of :data:`COORDINATE_LOSSES` on ``(B, K, 2)`` normalised
    crop coordinates.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    return COORDINATE_LOSSES[check_coordinate_loss(name)](pred, target)


#: The heatmap losses models choose by name: ``name -> (loss(pred, target, w), default w)``.
#: ``pred`` and ``target`` are ``(B, K, H, W)`` maps (targets from a codec, peak 1); ``w`` is the
#: weight of the weighted loss map (each cell's loss times ``w * M + 1``, ``M`` the dilated
#: foreground, :func:`loss_weight_map`; 0 = the plain mean over all cells).
#:
#: * ``"mse"``: :func:`mse_loss`, or :func:`weighted_mse_loss` when ``w > 0``;
#: * ``"weighted_mse"``: seed 001's weighted MSE, ``w = 10`` by default;
#: * ``"awing"``: :func:`adaptive_wing_loss` with the weighted map (Wang et al.: ``w = 10``);
#: * ``"smooth_wing"``: IACT's eq. 6, :func:`smooth_wing_loss` (the paper: plain mean, ``w = 0``).
HEATMAP_LOSSES = {
    "mse": (lambda p, t, w: weighted_mse_loss(p, t, w=w) if w > 0 else mse_loss(p, t), 0.0),
    "weighted_mse": (lambda p, t, w: weighted_mse_loss(p, t, w=w), 10.0),
    "awing": (lambda p, t, w: adaptive_wing_loss(p, t, weighted=w > 0, w=w), 10.0),
    "smooth_wing": (lambda p, t, w: smooth_wing_loss(p, t, weighted=w > 0, w=w), 0.0),
}


def heatmap_loss(name: str, pred: torch.Tensor, target: torch.Tensor,
                 w: float | None = None) -> torch.Tensor:
    """The heatmap loss ``name`` of :data:`HEATMAP_LOSSES` with loss-map weight ``w`` (``None``:
    the loss's default).

    Raises:
        ValueError: unknown name (the message lists the known ones); shape errors of the loss.
    """
    if name not in HEATMAP_LOSSES:
        raise ValueError(f"unknown loss {name!r} (heatmap losses: {sorted(HEATMAP_LOSSES)})")
    fn, default = HEATMAP_LOSSES[name]
    return fn(pred, target, default if w is None else float(w))
