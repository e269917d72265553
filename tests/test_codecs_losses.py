"""soft_argmax and the coordinate losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from faceland.codecs import soft_argmax
from faceland.losses import l1_loss, wing_loss


@pytest.mark.parametrize(("h", "w"), [(8, 8), (16, 12)])
def test_soft_argmax_one_hot_gives_cell_centre(h: int, w: int) -> None:
    cells = [(0, 0), (h - 1, w - 1), (3, 5), (h // 2, 1)]
    logits = torch.zeros(2, len(cells), h, w)
    for k, (i, j) in enumerate(cells):
        logits[0, k, i, j] = 100.0  # effectively one-hot after the softmax
        logits[1, k, h - 1 - i, w - 1 - j] = 100.0
    coords, probs = soft_argmax(logits)
    assert coords.shape == (2, len(cells), 2) and probs.shape == logits.shape
    for k, (i, j) in enumerate(cells):
        assert coords[0, k].tolist() == pytest.approx([(j + 0.5) / w, (i + 0.5) / h], abs=1e-6)
        assert coords[1, k].tolist() == pytest.approx(
            [(w - 1 - j + 0.5) / w, (h - 1 - i + 0.5) / h], abs=1e-6)


def test_soft_argmax_probs_sum_to_one_and_uniform_is_centre() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7, 9) * 4
    _, probs = soft_argmax(logits, beta=2.0)
    torch.testing.assert_close(probs.sum(dim=(2, 3)), torch.ones(3, 5))
    assert float(probs.min()) >= 0.0
    coords, _ = soft_argmax(torch.zeros(1, 1, 7, 9))
    assert coords[0, 0].tolist() == pytest.approx([0.5, 0.5], abs=1e-6)


def test_soft_argmax_two_equal_peaks_average() -> None:
    logits = torch.full((1, 1, 4, 4), -1e4)
    logits[0, 0, 0, 0] = 0.0
    logits[0, 0, 2, 2] = 0.0
    coords, _ = soft_argmax(logits)
    assert coords[0, 0].tolist() == pytest.approx([(0.5 + 2.5) / 2 / 4] * 2, abs=1e-6)


def test_soft_argmax_gradient_flows() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 6, 6, requires_grad=True)
    coords, _ = soft_argmax(logits)
    coords[..., 0].sum().backward()
    g = logits.grad
    assert g is not None and torch.isfinite(g).all() and float(g.abs().sum()) > 0
    # pushing the x expectation up means raising logits on the right, lowering them on the left
    assert float(g[..., -1].sum()) > 0 > float(g[..., 0].sum())


def test_wing_loss_small_regime_hand_computed() -> None:
    pred, target = torch.tensor([[[1.0, -3.0]]]), torch.zeros(1, 1, 2)
    expected = (10 * math.log(1 + 1 / 2) + 10 * math.log(1 + 3 / 2)) / 2
    assert float(wing_loss(pred, target, omega=10.0, epsilon=2.0)) == pytest.approx(expected)


def test_wing_loss_large_regime_hand_computed() -> None:
    pred, target = torch.tensor([[[25.0, 12.0]]]), torch.tensor([[[5.0, 0.0]]])
    c = 10 - 10 * math.log(1 + 10 / 2)
    assert float(wing_loss(pred, target, omega=10.0, epsilon=2.0)) == pytest.approx(
        ((20 - c) + (12 - c)) / 2)


def test_wing_loss_scale_converts_units() -> None:
    pred, target = torch.tensor([[[0.01, 0.1]]]), torch.zeros(1, 1, 2)
    # 0.01 and 0.1 of a 100-px crop are 1 px (log regime) and 10 px (boundary)
    expected = (10 * math.log(1.5) + 10 * math.log(6.0)) / 2
    assert float(wing_loss(pred, target, 10.0, 2.0, scale=100.0)) == pytest.approx(expected,
                                                                                rel=1e-5)


@pytest.mark.parametrize(("omega", "eps"), [(10.0, 2.0), (5.0, 0.5)])
def test_wing_loss_continuous_at_omega(omega: float, eps: float) -> None:
    z = torch.zeros(1, 1, 1, dtype=torch.float64)

    def at(x: float) -> float:
        return float(wing_loss(torch.full((1, 1, 1), x, dtype=torch.float64), z, omega, eps))

    below, above = at(omega - 1e-9), at(omega + 1e-9)
    assert below == pytest.approx(above, abs=1e-6)
    assert at(omega) == pytest.approx(omega * math.log(1 + omega / eps), abs=1e-9)
    # the large regime has slope 1
    assert at(omega + 3.0) - at(omega + 1.0) == pytest.approx(2.0)


def test_wing_loss_gradient_and_symmetry() -> None:
    pred = torch.tensor([[[0.5, -0.5], [20.0, -20.0]]], requires_grad=True)
    loss = wing_loss(pred, torch.zeros_like(pred))
    loss.backward()
    g = pred.grad[0]
    assert g[0, 0] > 0 > g[0, 1] and g[1, 0] > 0 > g[1, 1]
    assert float(g[1, 0]) == pytest.approx(1 / 4)  # slope 1 / (B * K * 2)


def test_l1_loss() -> None:
    pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    assert float(l1_loss(pred, torch.zeros_like(pred))) == pytest.approx(2.5)
