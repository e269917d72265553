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
* ``NMJ`` (normalised mean jitter, video stability, after LDEQ, Micaelli et al., CVPR 2023): the
  RMS over consecutive frame pairs and points of the frame-to-frame change of the error,
  ``||(p_t - g_t) - (p_{t-1} - g_{t-1})|| / d_t``; the camera's own motion (in ``g``) is not
  counted as jitter.
* Per-landmark confidence quality (:func:`confidence_quality`): Spearman rank correlation
  between a point's score and its error, and the AUROC of the score for telling points with
  error above a threshold (e.g. 0.1 of the inter-ocular distance) from the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceland.schemes import LandmarkScheme

__all__ = ["normalizing_distance", "nme", "failure_rate", "auc", "ced_curve", "plot_ced",
           "nmj", "confidence_quality", "NORMALIZATIONS"]

#: The normalising distances of NME, FR and AUC by name, with their definition in words (the
#: ``normalisation`` card of every evaluation result, :class:`faceland.results.Protocol`).
NORMALIZATIONS = {"iod": "outer eye corners", "ipd": "eye-contour means",
                  "box": "sqrt(w*h) of the gt landmark box"}


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
        raise ValueError(f"unknown normalisation {norm!r}; expected one of {tuple(NORMALIZATIONS)}")
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


def nmj(pred: np.ndarray, gt: np.ndarray, scheme: LandmarkScheme, norm: str = "iod") -> float:
    """Normalised mean jitter of one face track (a fraction, not percent).

    ``NMJ = sqrt(mean_{t, k} (||e_tk - e_(t-1)k|| / d_t)^2)`` with ``e_t = p_t - g_t`` over the
    pairs of consecutive frames where both predictions are finite, ``d_t`` the normalising
    distance of frame ``t``'s ground truth (see the module docstring).

    Args:
        pred: ``(T, K, 2)`` predictions over consecutive frames (a missed frame is all NaN; its
            two pairs are left out).
        gt: ``(T, K, 2)`` ground truth, same frame and units.
        scheme, norm: see :func:`normalizing_distance`.

    Returns:
        The NMJ, or ``nan`` when no pair of consecutive frames has two predictions.

    Raises:
        ValueError: shapes differ or are not ``(T, K, 2)``.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"pred and gt must both be (T, K, 2); got {p.shape} and {g.shape}")
    e = p - g
    ok = np.isfinite(e).all(axis=(1, 2))
    pair = ok[1:] & ok[:-1]
    if not pair.any():
        return float("nan")
    d = normalizing_distance(g[1:][pair], scheme, norm)
    step = np.linalg.norm(e[1:][pair] - e[:-1][pair], axis=-1) / d[:, None]
    return float(np.sqrt((step ** 2).mean()))


def confidence_quality(scores: np.ndarray, errors: np.ndarray, threshold: float = 0.1) -> dict:
    """How well per-landmark scores predict per-landmark errors.

    Args:
        scores: per-point confidence (higher: more likely right), any shape.
        errors: per-point errors of the same shape (e.g. the point's distance to the ground
            truth over the inter-ocular distance); non-finite pairs are left out.
        threshold: an error above it is a "bad point".

    Returns:
        ``{"spearman": rho(score, error) (negative when the scores are useful), "auroc": P(a
        good point scores higher than a bad one) (ties count half; 0.5 is chance),
        "n_points": int, "n_bad": int}``; ``auroc`` is ``nan`` when one class is empty.

    Raises:
        ValueError: shapes differ or nothing is finite.
    """
    s = np.asarray(scores, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    if s.shape != e.shape:
        raise ValueError(f"scores and errors must have one shape; got {s.shape} and {e.shape}")
    ok = np.isfinite(s) & np.isfinite(e)
    s, e = s[ok], e[ok]
    if s.size < 2:
        raise ValueError("need at least two finite (score, error) pairs")
    bad = e > threshold
    n1, n0 = int(bad.sum()), int((~bad).sum())
    if n1 and n0:  # Mann-Whitney U of the good points' scores, mid-ranks for ties
        r = mid_ranks(s)
        auroc = float((r[~bad].sum() - n0 * (n0 + 1) / 2) / (n0 * n1))
    else:
        auroc = float("nan")
    return {"spearman": spearman(s, e), "auroc": auroc,
            "n_points": int(s.size), "n_bad": n1}


def mid_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, ties given the mean of their ranks (``scipy.stats.rankdata``'s
    ``"average"``; numpy only, so evaluation needs no SciPy)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_v)) + 1]
    ends = np.r_[starts[1:], v.size]
    ranks = np.empty(v.size)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two 1-D arrays (Pearson's r of their mid-ranks); ``nan``
    when either is constant."""
    ra, rb = mid_ranks(a) - (len(a) + 1) / 2, mid_ranks(b) - (len(b) + 1) / 2
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def ced_curve(errors: Sequence[float] | np.ndarray, threshold: float = 0.1,
              steps: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds, share of images with NME <= threshold)`` on a regular grid."""
    e = np.asarray(errors, dtype=np.float64)
    xs = np.linspace(0.0, threshold, steps)
    return xs, (e[None, :] <= xs[:, None]).mean(axis=1)


def plot_ced(curves: dict[str, Sequence[float] | np.ndarray], path: str | Path,
             threshold: float = 0.1, title: str = "Cumulative error distribution") -> Path:
    """Save a CED plot (PNG) of one or more per-image NME arrays; legend shows AUC and FR.

    Raises:
        ImportError: matplotlib is not installed (it is not part of faceland's core install:
            ``pip install 'faceland[plot]'``).
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the CED plot needs matplotlib: pip install 'faceland[plot]'") from None

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
