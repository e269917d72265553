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
* :class:`LandmarkSmoother`: One Euro filtering of one face's landmarks, either per point (the
  paper's filter on every coordinate) or, faceland's default, **in the face's own frame**: each
  frame's landmarks are split by a least-squares similarity fit (Procrustes) against the track's
  first shape into the face's motion (centre, scale, in-plane angle: four numbers fitted to all
  points, so their noise is far below one point's) and its shape in the face frame (which does
  not move when only the camera or the head moves). Both are One Euro filtered, the shape hard
  and the motion with a speed-adaptive cut-off, and recombined: jitter falls without the lag a
  hard per-point filter has on a moving face.
* :func:`smooth_track`: offline, zero-lag Savitzky-Golay smoothing of a whole track
  (``scipy.signal.savgol_filter``), for files where the future frames are known.
"""

from __future__ import annotations

import math

import numpy as np

from faceland.geometry import apply_affine

__all__ = ["OneEuroFilter", "ConstantVelocityKalman", "LandmarkSmoother", "smooth_track",
           "SMOOTHER_MODES"]

#: :class:`LandmarkSmoother` modes.
SMOOTHER_MODES = ("aligned", "points")


def _time_step(prev: np.ndarray, x: np.ndarray, t_prev: float, t: float) -> float:
    """Seconds since the last observation; checks the shape and that time goes forward."""
    if x.shape != prev.shape:
        raise ValueError(f"shape changed from {prev.shape} to {x.shape}; reset() first")
    dt = float(t) - t_prev
    if not dt > 0:
        raise ValueError(f"time stamps must increase: {t_prev} then {t}")
    return dt


class _Filter:
    """State shared by the online filters: ``_x``, the filtered value (``None`` before the
    first observation)."""

    _x: np.ndarray | None

    @property
    def value(self) -> np.ndarray | None:
        """The filtered state after the last observation (``None`` before the first)."""
        return None if self._x is None else self._x.copy()

    def shift(self, delta: np.ndarray) -> None:
        """Move the state by a known change ``delta`` (shape of an observation) since the last
        observation, e.g. the face's motion measured by optical flow: that part of the change
        is then neither smoothed nor lagged, only the rest. No-op before the first call."""
        if self._x is not None:
            self._x = self._x + np.asarray(delta, dtype=np.float64)


class OneEuroFilter(_Filter):
    """One Euro filter over arrays of any fixed shape (e.g. ``(K, 2)`` landmarks).

    Every element is filtered independently with the same parameters. The speed that adapts
    the cut-off is taken per element (the paper's filter), or, with ``shared_speed``, as the
    mean absolute speed of all elements: for a face's landmarks that is the speed of the face,
    an estimate far less noisy than one point's, so a large ``beta`` follows motion without
    letting per-point noise through (faceland's video default).

    Args:
        min_cutoff: cut-off frequency at zero speed, Hz (lower: smoother, more lag).
        beta: speed coefficient, Hz per (unit / s) (higher: less lag in fast motion).
        d_cutoff: cut-off frequency of the speed estimate, Hz.
        shared_speed: one speed (the mean over elements) for all elements.
        compensate_lag: return ``x_f + tau * dx_f`` instead of ``x_f``: a first-order low-pass
            trails a uniform motion of speed ``v`` by ``v * tau`` (``tau = 1 / (2 pi f_c)``);
            adding the filtered speed times ``tau`` removes that lag, so a low cut-off can
            smooth a moving signal (faceland uses it for the face's motion).

    Raises:
        ValueError: a non-positive ``min_cutoff`` / ``d_cutoff`` or a negative ``beta``.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0,
                 shared_speed: bool = False, compensate_lag: bool = False) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, "
                             f"{d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.shared_speed, self.compensate_lag = bool(shared_speed), bool(compensate_lag)
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

    def __call__(self, x: np.ndarray, t: float, speed_scale: float = 1.0,
                 cutoff_weight: np.ndarray | float | None = None) -> np.ndarray:
        """Filter one observation ``x`` taken at time ``t`` (seconds); returns the filtered
        array (float64, same shape). The first call returns ``x`` unchanged.

        Args:
            x: the observation.
            t: its time stamp, seconds.
            speed_scale: the speed is divided by it before it raises the cut-off, so that
                ``beta`` is in scale units (faceland passes the face size in pixels: ``beta``
                then reads "per face size per second", independent of the face's size in the
                image; MediaPipe's ``velocity_scale`` plays this role).
            cutoff_weight: multiplies the cut-off, per element (broadcast to ``x``); below 1
                smooths that element harder (faceland: low-confidence points).

        Raises:
            ValueError: ``x`` changed shape, ``t`` does not increase, or ``speed_scale <= 0``.
        """
        if not speed_scale > 0:
            raise ValueError(f"speed_scale must be > 0, got {speed_scale}")
        x = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = _time_step(self._x, x, self._t, t)
        dx = (x - self._x) / dt
        self._dx = self._dx + self._alpha(dt, self.d_cutoff) * (dx - self._dx)
        speed = np.abs(self._dx)
        if self.shared_speed:
            speed = speed.mean()
        cutoff = self.min_cutoff + self.beta * speed / speed_scale
        if cutoff_weight is not None:
            cutoff = cutoff * np.asarray(cutoff_weight, dtype=np.float64)
        self._x = self._x + self._alpha(dt, cutoff) * (x - self._x)
        self._t = float(t)
        if self.compensate_lag:
            return self._x + self._dx / (2.0 * math.pi * cutoff)
        return self._x.copy()


class ConstantVelocityKalman(_Filter):
    """Kalman filter with a constant-velocity model, independently per element of an array.

    State per element: position and velocity; the process noise is white acceleration of
    spectral density ``q`` (units^2 / s^3), the measurement noise variance ``r`` (units^2).
    Only the ratio ``q / r`` shapes the output: higher follows faster, lower smooths more. It
    tracks a uniform motion without lag (a first-order low-pass such as the One Euro filter
    trails by ``speed / (2 pi f_c)``); faceland uses it for a face's motion.

    Args:
        q: acceleration noise spectral density.
        r: measurement noise variance.
        q_speed: speed adaptation in the One Euro spirit: the process noise of an element is
            ``q + q_speed * v^2`` with ``v`` its estimated speed, so a still signal is smoothed
            hard and a moving one followed closely.

    Raises:
        ValueError: a non-positive ``q`` or ``r``, or a negative ``q_speed``.
    """

    def __init__(self, q: float = 1.0, r: float = 1.0, q_speed: float = 0.0) -> None:
        if not (q > 0 and r > 0 and q_speed >= 0):
            raise ValueError(f"need q > 0, r > 0, q_speed >= 0; got {q}, {r}, {q_speed}")
        self.q, self.r, self.q_speed = float(q), float(r), float(q_speed)
        self.reset()

    def reset(self) -> None:
        """Forget the past."""
        self._x: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter one observation taken at time ``t`` (seconds); the first is returned as is.

        Raises:
            ValueError: ``x`` changed shape, or ``t`` does not increase.
        """
        z = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x, self._v = z.copy(), np.zeros_like(z)
            big = 1e6 * self.r
            self._p = [np.full_like(z, self.r), np.zeros_like(z), np.full_like(z, big)]
            self._t = float(t)
            return z.copy()
        dt = _time_step(self._x, z, self._t, t)
        p00, p01, p11 = self._p
        q = self.q + self.q_speed * self._v ** 2
        # predict: x += v dt; P = F P F' + Q (white-acceleration Q)
        x = self._x + self._v * dt
        p00 = p00 + 2 * dt * p01 + dt * dt * p11 + q * dt ** 3 / 3
        p01 = p01 + dt * p11 + q * dt ** 2 / 2
        p11 = p11 + q * dt
        # update with the measured position
        s = p00 + self.r
        k0, k1 = p00 / s, p01 / s
        innov = z - x
        self._x, self._v = x + k0 * innov, self._v + k1 * innov
        self._p = [(1 - k0) * p00, (1 - k0) * p01, p11 - k1 * p01]
        self._t = float(t)
        return self._x.copy()


class LandmarkSmoother:
    """Online One Euro smoothing of one face's ``(K, 2)`` landmarks (see the module docstring).

    Args:
        mode: ``"aligned"`` (default): shape and motion filtered separately in the face's own
            frame; ``"points"``: the paper's filter on every coordinate, with the speed in face
            sizes per second.
        min_cutoff, beta, d_cutoff: One Euro parameters of the shape (``"aligned"``: shape in
            units of the face's RMS radius; ``"points"``: the points, speed in face sizes / s).
        motion_min_cutoff, motion_beta, motion_d_cutoff: One Euro parameters of the motion
            (``"aligned"`` only; centre in face radii, log scale, angle in radians).
        compensate_lag: lag compensation of the motion filter (see :class:`OneEuroFilter`).
        motion_kalman: filter the motion with :class:`ConstantVelocityKalman` of this ``q / r``
            ratio (1 / s^3) instead of a One Euro filter; ``motion_kalman_speed`` its
            ``q_speed / r``.
        confidence_weighting: lower a point's cut-off while its score is below its own running
            mean (cut-off times ``score / mean``, at least 0.25).

    Raises:
        ValueError: an unknown mode or bad One Euro parameters.
    """

    def __init__(self, mode: str = "aligned", min_cutoff: float = 1.0, beta: float = 0.0,
                 d_cutoff: float = 1.0, motion_min_cutoff: float = 1.0, motion_beta: float = 0.0,
                 motion_d_cutoff: float = 1.0, compensate_lag: bool = False,
                 confidence_weighting: bool = False, motion_kalman: float | None = None,
                 motion_kalman_speed: float = 0.0) -> None:
        if mode not in SMOOTHER_MODES:
            raise ValueError(f"mode must be one of {SMOOTHER_MODES}, not {mode!r}")
        self.mode, self.confidence_weighting = mode, confidence_weighting
        self._shape = OneEuroFilter(min_cutoff, beta, d_cutoff, shared_speed=mode == "aligned")
        self._motion = OneEuroFilter(motion_min_cutoff, motion_beta, motion_d_cutoff,
                                     compensate_lag=compensate_lag) if motion_kalman is None \
            else ConstantVelocityKalman(float(motion_kalman), 1.0, float(motion_kalman_speed))
        self.reset()

    def reset(self) -> None:
        """Forget the track (a new face)."""
        self._shape.reset()
        self._motion.reset()
        self._ref: np.ndarray | None = None
        self._size = 1.0
        self._angle = 0.0
        self._mean_scores: np.ndarray | None = None

    def _weight(self, scores: np.ndarray | None) -> np.ndarray | None:
        if not self.confidence_weighting or scores is None:
            return None
        s = np.asarray(scores, dtype=np.float64)
        if self._mean_scores is None:
            self._mean_scores = s.copy()
        w = np.clip(s / np.maximum(self._mean_scores, 1e-6), 0.25, 1.0)[:, None]
        self._mean_scores = 0.9 * self._mean_scores + 0.1 * s
        return w

    def __call__(self, points: np.ndarray, t: float, scores: np.ndarray | None = None,
                 motion: np.ndarray | None = None) -> np.ndarray:
        """Smooth one frame's landmarks.

        Args:
            points: ``(K, 2)`` landmarks (faceland: image pixels, 0-based pixel centres).
            t: time stamp, seconds (increasing).
            scores: optional ``(K,)`` per-landmark confidence (``confidence_weighting``).
            motion: optional ``(2, 3)`` affine map (a similarity) of the face region from the
                previous call's frame to this one, in the same pixel frame, measured apart from
                the landmarks (faceland: sparse optical flow, :class:`faceland.tracking.FaceFlow`).
                The filters' state is moved by it before filtering, so the known motion is
                followed without lag and only the landmarks' residual is smoothed.

        Returns:
            ``(K, 2)`` float64 smoothed landmarks, same units.

        Raises:
            ValueError: a time stamp that does not increase, a changed point count, or a
                ``motion`` that is not ``(2, 3)``.
        """
        p = np.asarray(points, dtype=np.float64)
        weight = self._weight(scores)
        if motion is not None:
            motion = np.asarray(motion, dtype=np.float64)
            if motion.shape != (2, 3):
                raise ValueError(f"motion must be a (2, 3) affine map, got shape {motion.shape}")
        if self.mode == "points":
            x = p - p.mean(axis=0)
            size = max(float(np.sqrt((x ** 2).sum(axis=1).mean())), 1.0)
            prev = self._shape.value
            if motion is not None and prev is not None and prev.shape == p.shape:
                self._shape.shift(apply_affine(prev, motion) - prev)
            return self._shape(p, t, speed_scale=size, cutoff_weight=weight)
        if self._ref is None:
            c = p.mean(axis=0)
            z = (p[:, 0] - c[0]) + 1j * (p[:, 1] - c[1])
            self._size = max(float(np.sqrt((np.abs(z) ** 2).mean())), 1e-6)
            self._ref = z / self._size
        elif len(p) != len(self._ref):
            raise ValueError(f"point count changed from {len(self._ref)} to {len(p)}; reset()")
        # Least-squares similarity ref -> points (Procrustes, Umeyama 1991, in complex form):
        # p - mu ~ a * ref with a = scale * exp(i angle); ref is centred
        mu = p.mean(axis=0)
        x = (p[:, 0] - mu[0]) + 1j * (p[:, 1] - mu[1])
        a = np.vdot(self._ref, x) / (np.abs(self._ref) ** 2).sum()
        angle = float(np.angle(a))
        angle += 2 * np.pi * round((self._angle - angle) / (2 * np.pi))  # unwrap
        self._angle = angle
        state = np.array([mu[0] / self._size, mu[1] / self._size,
                          np.log(max(abs(a), 1e-9) / self._size), angle])
        shape = x / a  # the points in the face frame (units of the first frame's RMS radius)
        prev = self._motion.value
        if motion is not None and prev is not None:
            self._motion.shift(self._motion_delta(prev, motion))
        m = self._motion(state, t)
        q = self._shape(np.stack([shape.real, shape.imag], axis=-1), t, cutoff_weight=weight)
        z = self._size * np.exp(m[2] + 1j * m[3]) * (q[:, 0] + 1j * q[:, 1])
        return np.stack([z.real + m[0] * self._size, z.imag + m[1] * self._size], axis=-1)

    def _motion_delta(self, prev: np.ndarray, warp: np.ndarray) -> np.ndarray:
        """Change of the motion state (centre in face radii, log scale, angle) that the
        similarity ``warp`` (previous frame -> this frame, pixels) causes."""
        c = prev[:2] * self._size
        c_new = warp[:, :2] @ c + warp[:, 2]
        zoom = math.hypot(warp[0, 0], warp[1, 0])
        turn = math.atan2(warp[1, 0], warp[0, 0])
        return np.array([(c_new[0] - c[0]) / self._size, (c_new[1] - c[1]) / self._size,
                         math.log(max(zoom, 1e-9)), turn])


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
    if window % 2 == 0 or order >= window:
        raise ValueError(f"need an odd window > order; got window={window}, order={order}")
    p = np.asarray(points, dtype=np.float64)
    n = len(p)
    w = min(window, n if n % 2 else n - 1)
    if w <= order:
        return p.copy()
    return _savgol(p, w, order)


def _savgol(p: np.ndarray, w: int, order: int) -> np.ndarray:
    """Savitzky-Golay along axis 0 (numpy only; equals ``scipy.signal.savgol_filter(p, w, order,
    axis=0, mode="interp")``): the least-squares polynomial of ``order`` over each centred window
    of ``w`` frames, evaluated at its centre; the first and last ``w // 2`` frames take the
    polynomial fitted to the first / last window, evaluated at their own positions."""
    n, half = len(p), w // 2
    flat = p.reshape(n, -1)
    t = np.arange(-half, half + 1, dtype=np.float64)
    vander = t[:, None] ** np.arange(order + 1)[None, :]  # (w, order + 1)
    fit = np.linalg.pinv(vander)  # (order + 1, w): window -> polynomial coefficients
    out = np.empty_like(flat)
    windows = np.lib.stride_tricks.sliding_window_view(flat, w, axis=0)  # (n - w + 1, D, w)
    out[half:n - half] = windows @ fit[0]
    for idx, sl in ((np.arange(half), slice(0, w)), (np.arange(n - half, n), slice(n - w, n))):
        coef = fit @ flat[sl]  # (order + 1, D), the edge window's polynomial
        pos = idx - (sl.start + half)
        out[idx] = (pos[:, None] ** np.arange(order + 1)[None, :]) @ coef
    return out.reshape(p.shape)
