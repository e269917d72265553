"""Evaluation metrics: NME (inter-ocular, inter-pupil, box), failure rate, AUC, CED plot.

Definitions (the 300W / WFLW convention):

* ``NME_i = mean_k ||p_ik - g_ik||_2 / d_i`` for image ``i`` (Sagonas et al., "300 Faces
  In-the-Wild Challenge: database and results", IMAVIS 2016), with ``d_i`` the inter-ocular
  distance (outer eye corners), the inter-pupil distance (between the means of the two eye
  contours: the usual approximation of the pupils for markups without pupil points, e.g. 68) or
  the box size ``sqrt(w * h)`` of the ground-truth landmark box. Reported in percent by the CLI;
  these functions return fractions.
* ``FR@t``: share of images with ``NME_i > t`` (strictly greater).
* ``AUC@t``: area under the cumulative error distribution ``F(e) = P(NME <= e)`` from 0 to ``t``,
  divided by ``t``. Integration rule: the exact integral of the empirical (step) CDF, which equals
  ``mean_i max(0, t - NME_i) / t`` -- the limit of the trapezoidal rule as the grid step goes to 0.
  A missed face has ``NME = inf``: it is a failure and adds 0 to the AUC.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceland.schemes import LandmarkScheme

__all__ = ["normalizing_distance", "nme", "failure_rate", "auc", "ced_curve", "plot_ced",
           "NORMALIZATIONS"]

NORMALIZATIONS = ("iod", "ipd", "box")


def normalizing_distance(gt: np.ndarray, scheme: LandmarkScheme, norm: str = "iod",
                         box: np.ndarray | None = None) -> np.ndarray:
    """Per-image normalising distance ``d_i`` (same units as ``gt``).

    Args:
        gt: ``(N, K, 2)`` or ``(K, 2)`` ground-truth landmarks.
        scheme: gives the IOD pair / IPD groups.
        norm: ``"iod"``, ``"ipd"`` or ``"box"``.
        box: optional ``(N, 4)`` boxes ``[x0, y0, x1, y1]`` for ``"box"``; default: the tight
            ground-truth landmark box.

    Raises:
        ValueError: unknown ``norm`` or a normalisation the scheme does not define.
    """
    g = np.asarray(gt, dtype=np.float64)
    single = g.ndim == 2
    g = g[None] if single else g
    if norm == "iod":
        if scheme.iod_pair is None:
            raise ValueError(f"scheme {scheme.name} has no inter-ocular pair; use norm='box'")
        a, b = scheme.iod_pair
        d = np.linalg.norm(g[:, a] - g[:, b], axis=-1)
    elif norm == "ipd":
        if scheme.ipd_groups is None:
            raise ValueError(f"scheme {scheme.name} has no pupil definition; use norm='box'")
        left, right = scheme.ipd_groups
        d = np.linalg.norm(g[:, list(left)].mean(1) - g[:, list(right)].mean(1), axis=-1)
    elif norm == "box":
        if box is None:
            wh = np.nanmax(g, axis=1) - np.nanmin(g, axis=1)
        else:
            bx = np.asarray(box, dtype=np.float64).reshape(-1, 4)
            wh = bx[:, 2:] - bx[:, :2]
        d = np.sqrt(wh[:, 0] * wh[:, 1])
    else:
        raise ValueError(f"unknown normalisation {norm!r}; expected one of {NORMALIZATIONS}")
    return d[0] if single else d


def nme(pred: np.ndarray, gt: np.ndarray, scheme: LandmarkScheme, norm: str = "iod",
        box: np.ndarray | None = None) -> np.ndarray:
    """Per-image normalised mean error (a fraction, not percent).

    Args:
        pred: ``(N, K, 2)`` predictions; a row with NaN (e.g. all NaN: "no face found") gives
            ``inf``, a failure.
        gt: ``(N, K, 2)`` ground truth in the same frame and units.
        scheme, norm, box: see :func:`normalizing_distance`.

    Returns:
        ``(N,)`` float64.

    Raises:
        ValueError: shape mismatch, empty input, non-finite ground truth or a zero normalising
            distance.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"pred and gt must both be (N, K, 2); got {p.shape} and {g.shape}")
    if len(g) == 0:
        raise ValueError("nme of an empty set of images")
    if not np.isfinite(g).all():
        bad = sorted(set(np.nonzero(~np.isfinite(g))[0].tolist()))[:5]
        raise ValueError(f"ground truth has non-finite landmarks (images {bad})")
    d = normalizing_distance(g, scheme, norm, box)
    if not (d > 0).all():
        bad = np.nonzero(~(d > 0))[0][:5].tolist()
        raise ValueError(f"zero {norm} normalising distance in the ground truth (images {bad})")
    err = np.linalg.norm(p - g, axis=-1).mean(axis=1) / d
    # A missed face (all-NaN row) or any non-finite prediction is a failure: NME = inf.
    err[~np.isfinite(err)] = np.inf
    return err


def _errors(errors: Sequence[float] | np.ndarray) -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    if e.size == 0:
        raise ValueError("no per-image errors given")
    if np.isnan(e).any():
        raise ValueError("per-image errors contain NaN (use inf for a missed face)")
    return e


def failure_rate(errors: Sequence[float] | np.ndarray, threshold: float = 0.1) -> float:
    """Share of images with NME strictly above ``threshold`` (inf counts as a failure).

    Source: the failure rate of the 300W / WFLW protocols (Wu et al., CVPR 2018, Sec. 5).

    Raises:
        ValueError: empty input or NaN errors.
    """
    return float((_errors(errors) > threshold).mean())


def auc(errors: Sequence[float] | np.ndarray, threshold: float = 0.1) -> float:
    """Area under the CED from 0 to ``threshold``, divided by ``threshold`` (exact step integral).

    Raises:
        ValueError: empty input or NaN errors.
    """
    e = _errors(errors)
    return float(np.clip(threshold - e, 0.0, None).mean() / threshold)


def ced_curve(errors: Sequence[float] | np.ndarray, threshold: float = 0.1,
              steps: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds, share of images with NME <= threshold)`` on a regular grid."""
    e = np.asarray(errors, dtype=np.float64)
    xs = np.linspace(0.0, threshold, steps)
    return xs, (e[None, :] <= xs[:, None]).mean(axis=1)


def plot_ced(curves: dict[str, Sequence[float] | np.ndarray], path: str | Path,
             threshold: float = 0.1, title: str = "Cumulative error distribution") -> Path:
    """Save a CED plot (PNG) of one or more per-image NME arrays; legend shows AUC and FR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, errs in curves.items():
        xs, ys = ced_curve(errs, threshold)
        ax.plot(xs * 100, ys, label=f"{name} (AUC {auc(errs, threshold):.3f}, "
                                    f"FR {failure_rate(errs, threshold) * 100:.2f}%)")
    ax.set_xlabel("NME (%)")
    ax.set_ylabel("share of images")
    ax.set_xlim(0, threshold * 100)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
