"""Landmark losses on coordinates.

All take predictions and targets of shape ``(B, K, 2)`` in the same units (faceland's models use
normalised crop coordinates) and return a scalar mean.
"""

from __future__ import annotations

import math

import torch

__all__ = ["l1_loss", "wing_loss"]


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all coordinates."""
    return (pred - target).abs().mean()


def wing_loss(pred: torch.Tensor, target: torch.Tensor, omega: float = 10.0,
              epsilon: float = 2.0, scale: float = 1.0) -> torch.Tensor:
    """Wing loss (Feng et al., "Wing Loss for Robust Facial Landmark Localisation", CVPR 2018, eq. 5).

    ``w ln(1 + |x| / eps)`` for ``|x| < w``, else ``|x| - C`` with ``C = w - w ln(1 + w / eps)``.
    ``omega`` and ``epsilon`` are in the paper's pixel units; ``scale`` converts the inputs to those
    units first (e.g. ``scale = N`` for normalised coordinates of an ``N``-pixel crop).
    """
    x = (pred - target).abs() * scale
    c = omega - omega * math.log(1 + omega / epsilon)
    loss = torch.where(x < omega, omega * torch.log1p(x / epsilon), x - c)
    return loss.mean()
