"""Temporal smoothing: One Euro filter (Casiez et al., CHI 2012) and offline Savitzky-Golay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceland.smoothing import ConstantVelocityKalman, LandmarkSmoother, OneEuroFilter, smooth_track


def test_one_euro_alpha_matches_the_paper() -> None:
    # The paper's smoothing factor alpha = 1 / (1 + tau / Te), tau = 1 / (2 pi fc): for fc 1 Hz
    # at 30 fps, 2 pi / 30 / (1 + 2 pi / 30) = 0.1731707 (a constant here: the expected values
    # must not come from the code under test).
    te, fc, alpha = 1 / 30, 1.0, 0.1731707
    assert OneEuroFilter._alpha(te, fc) == pytest.approx(alpha, abs=1e-6)
    f = OneEuroFilter(min_cutoff=fc, beta=0.0)
    assert f(np.array([0.0]), 0.0)[0] == 0.0  # the first observation is returned as is
    # beta = 0: the cut-off stays fc whatever the speed, so a unit step is followed as a
    # first-order low-pass: 1 - (1 - alpha)^n after n updates.
    for n in (1, 2, 3):
        out = f(np.array([1.0]), n * te)
        assert out[0] == pytest.approx(1 - (1 - alpha) ** n, abs=1e-5)
    # twice the frame interval at the same cut-off: a larger step, 4 pi / 30 / (1 + 4 pi / 30)
    g = OneEuroFilter(min_cutoff=fc, beta=0.0)
    g(np.array([0.0]), 0.0)
    assert g(np.array([1.0]), 2 * te)[0] == pytest.approx(0.2952183, abs=1e-6)


def test_still_noisy_landmarks_jitter_much_less() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 200, (68, 2))
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    raw, smooth = [], []
    for i in range(300):
        obs = truth + rng.normal(0, 1.0, truth.shape)
        raw.append(obs)
        smooth.append(f(obs, i / 30))
    jitter = lambda s: np.sqrt(np.mean(np.diff(np.array(s[50:]), axis=0) ** 2))  # noqa: E731
    assert jitter(smooth) < jitter(raw) / 3
    assert np.abs(np.array(smooth[50:]) - truth).mean() < 0.5


def test_beta_reduces_lag_in_fast_motion() -> None:
    lags = {}
    for beta in (0.0, 0.5):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        for i in range(60):
            out = f(np.array([10.0 * i]), i / 30)  # 300 px / s
        lags[beta] = 10.0 * 59 - out[0]
    assert lags[0.5] < lags[0.0] / 3


def test_one_euro_checks_and_reset() -> None:
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)
    f = OneEuroFilter()
    f(np.zeros((2, 2)), 0.0)
    with pytest.raises(ValueError, match="increase"):
        f(np.zeros((2, 2)), 0.0)
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(3), 1.0)
    f.reset()
    np.testing.assert_array_equal(f(np.ones(3), 5.0), np.ones(3))


def test_smooth_track_is_zero_lag_and_denoises() -> None:
    t = np.arange(40, dtype=np.float64)
    accel = np.stack([3 + 2 * t + 0.1 * t**2, 5 - t], axis=1)  # uniform acceleration
    np.testing.assert_allclose(smooth_track(accel), accel, atol=1e-9)
    rng = np.random.default_rng(1)
    noisy = accel + rng.normal(0, 1.0, accel.shape)
    assert np.abs(smooth_track(noisy) - accel).mean() < 0.6 * np.abs(noisy - accel).mean()
    np.testing.assert_array_equal(smooth_track(accel[:2]), accel[:2])
    with pytest.raises(ValueError):
        smooth_track(accel, window=8)


def _similarity(base: np.ndarray, t: int) -> np.ndarray:
    ang, s = 0.01 * t, 1 + 0.005 * t
    r = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    return (base - 200) @ r.T * s + 200 + [3.0 * t, 1.0 * t]


def test_aligned_smoother_follows_rigid_motion_without_lag() -> None:
    # A face that moves, turns and grows without changing shape: the shape filter may be as
    # hard as it likes, the motion (fast cut-off) is followed exactly.
    base = np.random.default_rng(0).normal(0, 30, (68, 2)) + 200
    sm = LandmarkSmoother(min_cutoff=0.01, motion_min_cutoff=1000.0)
    for t in range(50):
        out = sm(_similarity(base, t), t / 30)
    assert np.abs(out - _similarity(base, 49)).max() < 0.05
    # the paper's per-point filter with the same hard cut-off trails far behind
    pts = LandmarkSmoother("points", min_cutoff=0.01)
    for t in range(50):
        lag = pts(_similarity(base, t), t / 30)
    assert np.abs(lag - _similarity(base, 49)).max() > 50


def test_aligned_smoother_cuts_shape_noise_on_a_moving_face() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0, 30, (68, 2)) + 200
    sm = LandmarkSmoother(min_cutoff=0.3, motion_min_cutoff=3.0, motion_beta=100.0,
                          motion_d_cutoff=3.0)
    err_raw, err_out = [], []
    for t in range(90):
        truth = _similarity(base, t)
        obs = truth + rng.normal(0, 1.0, truth.shape)
        out = sm(obs, t / 30)
        if t > 30:
            err_raw.append(np.abs(obs - truth).mean())
            err_out.append(np.abs(out - truth).mean())
    assert np.mean(err_out) < 0.5 * np.mean(err_raw)


def test_landmark_smoother_bad_input() -> None:
    with pytest.raises(ValueError, match="mode"):
        LandmarkSmoother("kalman")
    sm = LandmarkSmoother()
    sm(np.zeros((68, 2)) + np.arange(68)[:, None], 0.0)
    with pytest.raises(ValueError, match="point count"):
        sm(np.zeros((5, 2)) + np.arange(5)[:, None], 0.1)


def test_confidence_weighting_holds_a_doubtful_point_back() -> None:
    base = np.random.default_rng(2).normal(0, 30, (68, 2)) + 200
    scores = np.full(68, 0.4)
    outs = {}
    for cw in (False, True):
        sm = LandmarkSmoother(min_cutoff=1.0, motion_min_cutoff=1000.0, confidence_weighting=cw)
        for t in range(10):
            sm(base, t / 30, scores)
        jumped = base.copy()
        jumped[30] += [10.0, 0.0]  # point 30 jumps while its score halves
        low = scores.copy()
        low[30] = 0.2
        outs[cw] = sm(jumped, 10 / 30, low)[30, 0] - base[30, 0]
    assert 0 < outs[True] < 0.75 * outs[False]


def test_constant_velocity_kalman_follows_a_ramp_without_lag() -> None:
    rng = np.random.default_rng(3)
    kf = ConstantVelocityKalman(q=100.0, r=1.0)
    one_euro = OneEuroFilter(min_cutoff=1.0)
    ek, eo, raw = [], [], []
    for t in range(300):
        truth = 3.0 * t / 30  # 3 units / s
        obs = np.array([truth + rng.normal(0, 0.1)])
        k, o = kf(obs, t / 30), one_euro(obs, t / 30)
        if t > 60:
            ek.append(k[0] - truth)
            eo.append(o[0] - truth)
            raw.append(obs[0] - truth)
    assert abs(np.mean(ek)) < 0.01  # no lag on uniform motion
    assert np.mean(eo) < -0.4  # a first-order low-pass trails by speed / (2 pi fc) = 0.48
    assert np.std(ek) < 0.6 * np.std(raw)


def test_speed_adaptive_kalman_smooths_still_and_follows_moving() -> None:
    rng = np.random.default_rng(4)
    out = {}
    for qs in (0.0, 1e4):
        kf = ConstantVelocityKalman(q=1.0, r=1.0, q_speed=qs)
        still, moving = [], []
        for t in range(240):
            truth = 0.0 if t < 120 else 5.0 * np.sin(2 * np.pi * 0.5 * (t - 120) / 30)
            est = kf(np.array([truth + rng.normal(0, 0.05)]), t / 30)[0]
            (still if 30 < t < 120 else moving if t > 150 else []).append(est - truth)
        out[qs] = (np.std(still), np.abs(moving).mean())
    assert out[1e4][0] < 0.05  # still: smoothed below the noise
    assert out[1e4][1] < 0.5 * out[0.0][1]  # moving: follows far better than fixed low q
    with pytest.raises(ValueError):
        ConstantVelocityKalman(q=0.0)


def _step_similarity(t0: float, t1: float) -> np.ndarray:
    """The (2, 3) map taking _similarity(base, t0) to _similarity(base, t1)."""
    def full(t: float) -> np.ndarray:
        ang, s = 0.01 * t, 1 + 0.005 * t
        a = s * np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        return np.vstack([np.hstack([a, (np.array([200.0, 200.0]) - a @ [200.0, 200.0]
                                          + [3.0 * t, 1.0 * t])[:, None]]), [0, 0, 1]])
    return (full(t1) @ np.linalg.inv(full(t0)))[:2]


@pytest.mark.parametrize("params", [
    {"min_cutoff": 0.3, "motion_min_cutoff": 0.3},                      # One Euro motion
    {"min_cutoff": 0.3, "motion_kalman": 1.0},                           # Kalman motion
    {"mode": "points", "min_cutoff": 0.3},                               # per point
])
def test_measured_motion_removes_the_lag_of_a_hard_filter(params) -> None:
    # A hard filter trails a face that moves back and forth; told the motion (as optical flow
    # measures it), the same filter follows it and still cuts the landmarks' noise.
    rng = np.random.default_rng(2)
    base = rng.normal(0, 30, (68, 2)) + 200
    def u(t: int) -> float:  # the face's pose parameter: a 0.5 Hz swing at 30 fps
        return 20.0 * math.sin(2 * math.pi * 0.5 * t / 30)
    blind, told = LandmarkSmoother(**params), LandmarkSmoother(**params)
    err = {"raw": [], "blind": [], "told": []}
    for t in range(150):
        truth = _similarity(base, u(t))
        obs = truth + rng.normal(0, 1.0, truth.shape)
        b = blind(obs, t / 30)
        k = told(obs, t / 30, motion=_step_similarity(u(t - 1), u(t)) if t else None)
        if t > 60:
            for name, v in (("raw", obs), ("blind", b), ("told", k)):
                err[name].append(np.abs(v - truth).mean())
    assert np.mean(err["blind"]) > 3 * np.mean(err["raw"])  # lag: worse than no filter
    assert np.mean(err["told"]) < 0.35 * np.mean(err["raw"])


def test_shift_moves_the_state_and_bad_motion_is_refused() -> None:
    for f in (OneEuroFilter(0.1), ConstantVelocityKalman(1.0)):
        assert f.value is None
        f.shift(np.ones(2))  # before the first observation: nothing to move
        assert f.value is None
        f(np.zeros(2), 0.0)
        f.shift(np.array([3.0, -1.0]))
        np.testing.assert_allclose(f.value, [3.0, -1.0])
        # a still observation at the shifted place is kept there
        np.testing.assert_allclose(f(np.array([3.0, -1.0]), 1 / 30), [3.0, -1.0], atol=1e-9)
    with pytest.raises(ValueError, match="motion must be a"):
        LandmarkSmoother()(np.zeros((68, 2)), 0.0, motion=np.eye(3))


def test_numpy_savitzky_golay_equals_scipy() -> None:
    """The core install has no SciPy: smooth_track's Savitzky-Golay must equal SciPy's
    ``mode="interp"`` filter, edges included, for short and long tracks."""
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(5)
    for n in (3, 4, 5, 8, 9, 31):
        p = rng.normal(size=(n, 68, 2))
        for window, order in ((9, 2), (5, 1), (7, 3)):
            w = min(window, n if n % 2 else n - 1)
            if w <= order:
                continue
            ref = signal.savgol_filter(p, w, order, axis=0, mode="interp")
            np.testing.assert_allclose(smooth_track(p, window, order), ref, atol=1e-9)
