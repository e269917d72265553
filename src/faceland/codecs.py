"""Codecs: landmarks <-> network targets / outputs, separate from the models.

Symbols: B batch, K landmarks, H x W heatmap size. Heatmap cell ``(i, j)`` covers the normalised
crop square ``[j / W, (j + 1) / W] x [i / H, (i + 1) / H]``; its centre is ``((j + 0.5) / W,
(i + 0.5) / H)``. Normalised crop coordinates are defined in :mod:`faceland.geometry`.
"""

from __future__ import annotations

import torch

__all__ = ["soft_argmax"]


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
    xs = (torch.arange(w, device=logits.device, dtype=probs.dtype) + 0.5) / w
    ys = (torch.arange(h, device=logits.device, dtype=probs.dtype) + 0.5) / h
    x = (probs.sum(dim=2) * xs).sum(dim=-1)
    y = (probs.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1), probs
