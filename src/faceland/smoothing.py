"""Temporal smoothing of landmark tracks: online One Euro filter, offline zero-lag smoothing.

Coordinates are whatever the caller passes (faceland passes image pixels, 0-based pixel
centres); time stamps are in seconds. Nothing here knows about models or detectors.

* :class:`OneEuroFilter`: Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based
  Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012. A first-order low-pass
  filter whose cut-off grows with the signal's speed: ``f_c = min_cutoff + beta * |dx/dt|``
  (eq. in section 3 of the paper), with the speed itself low-passed at ``d_cutoff``; the
  smoothing factor of a low-pass step of ``dt`` seconds is ``alpha = 1 / (1 + tau / dt)``,
  ``tau = 1 / (2 pi f_c)``. Slow motion is smoothed hard (little jitter), fast motion lightly
  (little lag). Tuning recipe (the paper's): set ``beta = 0`` and lower ``min_cutoff`` until a
  still face stops jittering; then raise ``beta`` until fast motion no longer lags.
* :func:`smooth_track`: offline, zero-lag Savitzky-Golay smoothing of a whole track
  (``scipy.signal.savgol_filter``), for files where the future frames are known.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter", "smooth_track"]


class OneEuroFilter:
    """One Euro filter over arrays of any fixed shape (e.g. ``(K, 2)`` landmarks).

    Every element is filtered independently with the same parameters; the speed that adapts
    the cut-off is taken per element.

    Args:
        min_cutoff: cut-off frequency at zero speed, Hz (lower: smoother, more lag).
        beta: speed coefficient, Hz per (unit / s) (higher: less lag in fast motion).
        d_cutoff: cut-off frequency of the speed estimate, Hz.

    Raises:
        ValueError: a non-positive ``min_cutoff`` / ``d_cutoff`` or a negative ``beta``.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, "
                             f"{d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past (e.g. when a track is lost)."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @staticmethod
    def _alpha(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter one observation ``x`` taken at time ``t`` (seconds); returns the filtered
        array (float64, same shape). The first call returns ``x`` unchanged.

        Raises:
            ValueError: ``x`` changed shape, or ``t`` does not increase.
        """
        x = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"shape changed from {self._x.shape} to {x.shape}; reset() first")
        dt = float(t) - self._t
        if not dt > 0:
            raise ValueError(f"time stamps must increase: {self._t} then {t}")
        dx = (x - self._x) / dt
        self._dx = self._dx + self._alpha(dt, self.d_cutoff) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + self._alpha(dt, cutoff) * (x - self._x)
        self._t = float(t)
        return self._x.copy()


def smooth_track(points: np.ndarray, window: int = 9, order: int = 2) -> np.ndarray:
    """Zero-lag smoothing of a whole track: Savitzky-Golay along time.

    Args:
        points: ``(T, ...)`` positions over ``T`` consecutive processed frames.
        window: odd window length in frames (shrunk to the track's length when shorter).
        order: polynomial order (< window); order 2 keeps uniform acceleration exactly.

    Returns:
        ``(T, ...)`` float64 smoothed positions (a track shorter than ``order + 2`` frames is
        returned unchanged).

    Raises:
        ValueError: an even ``window`` or ``order >= window``.
    """
    from scipy.signal import savgol_filter

    if window % 2 == 0 or order >= window:
        raise ValueError(f"need an odd window > order; got window={window}, order={order}")
    p = np.asarray(points, dtype=np.float64)
    n = len(p)
    w = min(window, n if n % 2 else n - 1)
    if w <= order:
        return p.copy()
    return savgol_filter(p, w, order, axis=0, mode="interp")
