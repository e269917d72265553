"""Heatmap losses: MSE, weighted MSE, Adaptive Wing, Smooth Wing (IACT eq. 6)."""

from __future__ import annotations

import math

import pytest
import torch

from faceland.losses import (
    adaptive_wing_loss,
    loss_weight_map,
    mse_loss,
    smooth_wing_constants,
    smooth_wing_loss,
    weighted_mse_loss,
)


def _value_and_grad(fn, x: float, target: float = 0.0, **kw) -> tuple[float, float]:
    p = torch.tensor([x], dtype=torch.float64, requires_grad=True)
    loss = fn(p, torch.tensor([target], dtype=torch.float64), **kw)
    loss.backward()
    return float(loss.detach()), float(p.grad[0])


def test_mse_loss() -> None:
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.zeros(2, 2)
    assert float(mse_loss(pred, target)) == pytest.approx((1 + 4 + 9 + 16) / 4)
    with pytest.raises(ValueError, match="differ"):
        mse_loss(pred, torch.zeros(4))


def test_weight_map_dilation_and_threshold_hand_case() -> None:
    t = torch.zeros(1, 2, 5, 5)
    t[0, 0, 2, 2] = 1.0
    t[0, 1, 0, 0] = 0.2  # exactly the threshold: foreground
    t[0, 1, 4, 4] = 0.19  # below: background
    m = loss_weight_map(t, threshold=0.2, dilation=3)
    expected0 = torch.zeros(5, 5)
    expected0[1:4, 1:4] = 1
    torch.testing.assert_close(m[0, 0], expected0)
    expected1 = torch.zeros(5, 5)
    expected1[0:2, 0:2] = 1  # dilation cut by the border
    torch.testing.assert_close(m[0, 1], expected1)
    torch.testing.assert_close(loss_weight_map(t, 0.2, dilation=1)[0, 0], (t[0, 0] >= 0.2).float())
    with pytest.raises(ValueError, match="odd"):
        loss_weight_map(t, dilation=2)


def test_weighted_mse_hand_case() -> None:
    t = torch.zeros(1, 1, 5, 5)
    t[0, 0, 2, 2] = 1.0
    p = torch.zeros(1, 1, 5, 5)
    # centre error 1 inside the mask: weight 10 + 1
    assert float(weighted_mse_loss(p, t)) == pytest.approx(11 / 25)
    p[0, 0, 1, 1] = 0.5  # inside the dilated mask though the target is 0 there: weight 11
    p[0, 0, 4, 4] = 0.5  # background: weight 1
    assert float(weighted_mse_loss(p, t)) == pytest.approx((11 + 0.25 * 11 + 0.25) / 25)
    assert float(weighted_mse_loss(p, t, w=0.0)) == pytest.approx(float(mse_loss(p, t)))
    assert float(weighted_mse_loss(t, t)) == 0.0


@pytest.mark.parametrize("y", [0.0, 0.3, 1.0])
def test_adaptive_wing_formula_and_continuity_at_theta(y: float) -> None:
    omega, theta, eps, alpha = 14.0, 0.5, 1.0, 2.1
    a = alpha - y
    d = 0.2
    v, _ = _value_and_grad(adaptive_wing_loss, y + d, y)
    assert v == pytest.approx(omega * math.log1p((d / eps) ** a), rel=1e-9)
    h = 1e-7
    (vl, gl), (vr, gr) = (_value_and_grad(adaptive_wing_loss, y + theta + s, y) for s in (-h, h))
    assert vl == pytest.approx(vr, abs=1e-5) and gl == pytest.approx(gr, rel=1e-5)
    big_a = omega * a * (theta / eps) ** (a - 1) / (eps * (1 + (theta / eps) ** a))
    assert gr == pytest.approx(big_a, rel=1e-6)
    assert _value_and_grad(adaptive_wing_loss, y, y) == (0.0, 0.0)


def test_adaptive_wing_weighted_map_and_shapes() -> None:
    torch.manual_seed(0)
    t = torch.zeros(2, 3, 8, 8)
    t[:, :, 4, 4] = 1.0
    p = t * 0.8 + torch.rand(2, 3, 8, 8) * 0.2  # |p - t| < theta everywhere: the log branch
    plain = adaptive_wing_loss(p, t)
    weighted = adaptive_wing_loss(p, t, weighted=True)
    m = loss_weight_map(t)
    assert float(weighted) > float(plain) > 0
    d = (t - p).abs()
    per = 14 * torch.log1p(d ** (2.1 - t))  # all |d| < theta here
    assert float(weighted) == pytest.approx(float((per * (10 * m + 1)).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="differ"):
        adaptive_wing_loss(p, t[:, :2])


def test_smooth_wing_weighted_map_scales_each_cell() -> None:
    torch.manual_seed(0)
    t = torch.zeros(2, 3, 8, 8)
    t[:, :, 4, 4] = 1.0
    p = torch.rand(2, 3, 8, 8)
    m = loss_weight_map(t)
    per = torch.stack([smooth_wing_loss(a.view(1), b.view(1)) for a, b in
                       zip(p.flatten(), t.flatten(), strict=True)]).view_as(t)  # per-cell values
    assert float(smooth_wing_loss(p, t)) == pytest.approx(float(per.mean()), rel=1e-5)
    assert float(smooth_wing_loss(p, t, weighted=True)) == pytest.approx(
        float((per * (10 * m + 1)).mean()), rel=1e-5)
    assert float(smooth_wing_loss(p, t, weighted=True, w=0.0)) == pytest.approx(
        float(smooth_wing_loss(p, t)), rel=1e-6)


OMEGA, T1, T2, ALPHA, EPS = 14.0, 0.05, 0.5, 2.1, 1.0


def _swl_reference(d: float, y: float) -> float:
    """IACT eq. 6 written out by hand for one cell (``d = |y - y_hat|``, ``e = alpha - y``)."""
    e = ALPHA - y
    g1 = OMEGA * math.log(1 + (T1 / EPS) ** e)
    b = OMEGA * e * (T1 / EPS) ** (e - 1) / (EPS * (1 + (T1 / EPS) ** e))
    k = (1 + T1 ** 2) * (2 * g1 - b * T1) / (2 * (1 + T1 ** 2) * math.log(1 + T1 ** 2) - 2 * T1 ** 2)
    m = (g1 - k * math.log(1 + T1 ** 2)) / T1 ** 2
    a = OMEGA * (1 / (1 + (T2 / EPS) ** e)) * e * (1 / EPS) * (T2 / EPS) ** (e - 1)
    c = T2 * a - OMEGA * math.log(1 + (T2 / EPS) ** e)
    if d < T1:
        return k * math.log(1 + d * d) + m * d * d
    if d < T2:
        return OMEGA * math.log(1 + abs(d / EPS) ** e)
    return a * d - c


@pytest.mark.parametrize("y", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("d", [0.01, 0.03, 0.1, 0.3, 0.7, 2.0])
def test_smooth_wing_matches_eq6(y: float, d: float) -> None:
    v, _ = _value_and_grad(smooth_wing_loss, y - d, target=y)
    assert v == pytest.approx(_swl_reference(d, y), rel=1e-9)


def test_smooth_wing_depends_on_the_target_value() -> None:
    """alpha - y in the constants: the same error costs more on a foreground cell (y -> 1)."""
    vals = [_value_and_grad(smooth_wing_loss, y - 0.3, target=y)[0] for y in (0.0, 0.5, 1.0)]
    assert vals[0] < vals[1] < vals[2]
    assert vals[0] == pytest.approx(OMEGA * math.log(1 + 0.3 ** 2.1), rel=1e-12)
    assert vals[2] == pytest.approx(OMEGA * math.log(1 + 0.3 ** 1.1), rel=1e-12)
    c = smooth_wing_constants(torch.tensor([0.0, 1.0]))
    assert float(c["A"][0]) == pytest.approx(14 * 2.1 * 0.5 ** 1.1 / (1 + 0.5 ** 2.1))
    assert float(c["B"][1]) == pytest.approx(14 * 1.1 * 0.05 ** 0.1 / (1 + 0.05 ** 1.1))


@pytest.mark.parametrize("y", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("theta", [T1, T2])
def test_smooth_wing_value_and_gradient_are_continuous(theta: float, y: float) -> None:
    for h in (1e-6, 1e-8):
        (vl, gl), (vr, gr) = (_value_and_grad(smooth_wing_loss, y - theta - s, target=y)
                              for s in (-h, h))
        assert vr == pytest.approx(vl, abs=30 * h)  # slope <= 11.2: a jump would exceed it
        assert gr == pytest.approx(gl, rel=1e-4)
    # the autograd derivative matches the finite difference across the joint
    h = 1e-7
    (v1, _), (v2, _), (_, g) = (_value_and_grad(smooth_wing_loss, y - theta - s, target=y)
                                for s in (-h, h, 0))
    assert -(v2 - v1) / (2 * h) == pytest.approx(g, rel=1e-4)


@pytest.mark.parametrize("y", [0.0, 0.5, 1.0])
def test_smooth_wing_zero_gradient_at_zero_error_and_monotone(y: float) -> None:
    """The paper's point (sec. 2.3, Fig. 3): the gradient goes to 0 at d = 0 for every y
    (Adaptive Wing's does not for y near 1); the loss increases with |d|, linearly past theta2."""
    assert _value_and_grad(smooth_wing_loss, y, target=y) == (0.0, 0.0)
    _, g_small = _value_and_grad(smooth_wing_loss, y - 1e-7, target=y)
    assert abs(g_small) < 1e-3
    _, g_aw = _value_and_grad(adaptive_wing_loss, 1.0 - 1e-7, target=1.0)
    assert abs(g_aw) > 1.0  # Adaptive Wing's gradient stays large next to zero error at y = 1
    ds = torch.linspace(0, 2, 401, dtype=torch.float64)
    per = torch.stack([smooth_wing_loss((y - d).view(1), torch.tensor([y], dtype=torch.float64))
                       for d in ds])
    assert bool((per.diff() > 0).all())
    _, g_far = _value_and_grad(smooth_wing_loss, y - 3.0, target=y)
    assert -g_far == pytest.approx(float(smooth_wing_constants(y)["A"]), rel=1e-9)
    # symmetric in the sign of the error
    assert _value_and_grad(smooth_wing_loss, y - 0.2, target=y)[0] == pytest.approx(
        _value_and_grad(smooth_wing_loss, y + 0.2, target=y)[0])


def test_smooth_wing_rejects_bad_constants_and_shapes() -> None:
    x = torch.zeros(2, 3, 2)
    with pytest.raises(ValueError, match="theta1 < theta2"):
        smooth_wing_loss(x, x, theta1=0.5, theta2=0.05)
    with pytest.raises(ValueError, match="alpha"):
        smooth_wing_loss(x, x, alpha=1.0)
    with pytest.raises(ValueError, match="differ"):
        smooth_wing_loss(x, x[:, :2])


def test_heatmap_loss_table_names_the_losses_the_models_use() -> None:
    from faceland.losses import HEATMAP_LOSSES, heatmap_loss

    torch.manual_seed(0)
    t = torch.zeros(2, 3, 8, 8)
    t[:, :, 4, 4] = 1.0
    p = torch.rand(2, 3, 8, 8)
    assert set(HEATMAP_LOSSES) == {"mse", "weighted_mse", "awing", "smooth_wing"}
    torch.testing.assert_close(heatmap_loss("mse", p, t), mse_loss(p, t))
    torch.testing.assert_close(heatmap_loss("mse", p, t, 10), weighted_mse_loss(p, t, w=10))
    torch.testing.assert_close(heatmap_loss("weighted_mse", p, t), weighted_mse_loss(p, t))
    torch.testing.assert_close(heatmap_loss("awing", p, t),
                               adaptive_wing_loss(p, t, weighted=True))
    torch.testing.assert_close(heatmap_loss("smooth_wing", p, t), smooth_wing_loss(p, t))
    torch.testing.assert_close(heatmap_loss("smooth_wing", p, t, 10),
                               smooth_wing_loss(p, t, weighted=True, w=10))
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        heatmap_loss("l2", p, t)
