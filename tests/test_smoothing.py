"""Temporal smoothing: One Euro filter (Casiez et al., CHI 2012) and offline Savitzky-Golay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceland.smoothing import OneEuroFilter, smooth_track


def test_one_euro_alpha_matches_the_paper() -> None:
    # alpha = 1 / (1 + tau / Te), tau = 1 / (2 pi fc): fc 1 Hz at 30 fps.
    te, fc = 1 / 30, 1.0
    assert OneEuroFilter._alpha(te, fc) == pytest.approx(1 / (1 + 1 / (2 * math.pi * fc) / te))
    f = OneEuroFilter(min_cutoff=fc, beta=0.0)
    f(np.array([0.0]), 0.0)
    # Zero speed estimate after a step: the first update moves by exactly alpha of the step.
    out = f(np.array([1.0]), te)
    assert out[0] == pytest.approx(OneEuroFilter._alpha(te, fc + 0.0))


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
