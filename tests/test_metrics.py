"""NME / failure rate / AUC / CED against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from faceland.metrics import (
    NORMALIZATIONS,
    auc,
    ced_curve,
    confidence_quality,
    failure_rate,
    nme,
    nmj,
    normalizing_distance,
    plot_ced,
)
from faceland.schemes import get_scheme

S68 = get_scheme("68")


def _gt68() -> np.ndarray:
    """A 68-point shape with outer eye corners (0, 0) and (100, 0), eye contours known."""
    rng = np.random.default_rng(0)
    g = rng.uniform(-20, 120, size=(68, 2))
    g[36] = (0.0, 0.0)
    g[45] = (100.0, 0.0)
    # eye contours: means at (10, 5) and (80, 5) -> inter-pupil distance 70
    g[36:42] = np.array([[0, 0], [10, -5], [20, -5], [30, 0], [10, 25], [-10, 15]], float)
    g[42:48] = np.array([[70, 0], [80, -5], [90, -5], [100, 0], [80, 25], [60, 15]], float)
    return g


def test_nme_iod_hand_computed() -> None:
    g = _gt68()
    p = g + np.array([3.0, 4.0])  # every point off by 5 px
    e = nme(p[None], g[None], S68, "iod")
    assert e.shape == (1,)
    assert e[0] == pytest.approx(5.0 / 100.0)


def test_nme_ipd_and_box_hand_computed() -> None:
    g = _gt68()
    p = g + np.array([3.0, 4.0])
    assert normalizing_distance(g, S68, "ipd") == pytest.approx(70.0)
    assert nme(p[None], g[None], S68, "ipd")[0] == pytest.approx(5.0 / 70.0)
    w, h = np.ptp(g[:, 0]), np.ptp(g[:, 1])
    assert nme(p[None], g[None], S68, "box")[0] == pytest.approx(5.0 / np.sqrt(w * h))
    # an explicit box overrides the landmark box: sqrt(40 * 90) = 60
    box = np.array([[0.0, 0.0, 40.0, 90.0]])
    assert nme(p[None], g[None], S68, "box", box=box)[0] == pytest.approx(5.0 / 60.0)


def test_nme_per_image_and_mixed_errors() -> None:
    g = np.stack([_gt68(), _gt68() * 2.0])  # second face twice as large: IOD 200
    p = g.copy()
    p[0, :34] += (6.0, 8.0)  # half the points off by 10 px -> mean 5 px over IOD 100
    p[1, 0] += (0.0, 68.0)  # one point off by 68 px -> mean 1 px over IOD 200
    np.testing.assert_allclose(nme(p, g, S68, "iod"), [0.05, 0.005])


def test_missed_face_is_inf_and_a_failure() -> None:
    g = np.stack([_gt68(), _gt68()])
    p = g.copy()
    p[1] = np.nan
    e = nme(p, g, S68)
    assert e[0] == 0.0 and np.isinf(e[1])
    assert failure_rate(e, 0.1) == 0.5
    assert auc(e, 0.1) == pytest.approx(0.5)  # the perfect face gives 1, the missed one 0


def test_nme_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        nme(np.zeros((2, 68, 2)), np.zeros((1, 68, 2)), S68)
    with pytest.raises(ValueError):
        nme(np.zeros((68, 2)), np.zeros((68, 2)), S68)


def test_failure_rate_is_strictly_greater() -> None:
    assert failure_rate([0.1, 0.1, 0.1], 0.1) == 0.0
    assert failure_rate([0.05, 0.1, 0.1000001, np.inf], 0.1) == 0.5
    assert failure_rate([0.08, 0.09], 0.08) == 0.5


def test_auc_hand_computed() -> None:
    # (0.1 - 0) + (0.1 - 0.05) + 0 over 3 images, divided by 0.1
    assert auc([0.0, 0.05, 0.2], 0.1) == pytest.approx((0.1 + 0.05 + 0.0) / 3 / 0.1)
    assert auc([0.0, 0.05, 0.2], 0.1) == pytest.approx(0.5)
    assert auc([0.0], 0.1) == pytest.approx(1.0)
    assert auc([0.1, 0.3], 0.1) == 0.0


def test_auc_matches_trapezoid_integration_of_ced() -> None:
    rng = np.random.default_rng(3)
    errors = np.concatenate([rng.gamma(4.0, 0.01, size=300), [np.inf, 0.5]])
    xs, ys = ced_curve(errors, 0.1, steps=20001)
    assert xs[0] == 0.0 and xs[-1] == pytest.approx(0.1)
    assert np.all(np.diff(ys) >= 0) and ys[-1] <= 1.0
    numeric = np.trapezoid(ys, xs) / 0.1
    assert auc(errors, 0.1) == pytest.approx(numeric, abs=1e-3)


def test_ced_curve_values() -> None:
    xs, ys = ced_curve([0.0, 0.05, 0.2, np.inf], 0.1, steps=11)
    np.testing.assert_allclose(xs, np.linspace(0, 0.1, 11))
    assert ys[0] == 0.25  # NME <= 0
    assert ys[5] == 0.5  # NME <= 0.05 (inclusive)
    assert ys[-1] == 0.5


def test_plot_ced_writes_png(tmp_path) -> None:
    out = plot_ced({"a": [0.01, 0.02, 0.2], "b": [0.03, np.inf]}, tmp_path / "sub" / "ced.png")
    assert out == tmp_path / "sub" / "ced.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1000


def test_iod_requires_a_scheme_with_eye_corners() -> None:
    s19 = get_scheme("19")
    g = np.random.default_rng(0).uniform(0, 100, size=(1, 19, 2))
    with pytest.raises(ValueError, match="box"):
        nme(g + 1, g, s19, "iod")
    with pytest.raises(ValueError):
        nme(g + 1, g, s19, "ipd")
    assert nme(g + 1, g, s19, "box")[0] > 0
    with pytest.raises(ValueError, match="unknown normalisation 'diag'; expected one of "
                                         r"\('iod', 'ipd', 'box'\)"):
        nme(g + 1, g, s19, "diag")


def test_normalizations_are_the_names_nme_takes_and_the_protocol_card() -> None:
    """One table of normalisations: the names ``nme`` takes, each defined in words, and the
    ``normalisation`` card every evaluation result carries."""
    from faceland.results import Protocol

    assert list(NORMALIZATIONS) == ["iod", "ipd", "box"]
    g = _gt68()[None]
    for norm, definition in NORMALIZATIONS.items():
        assert isinstance(definition, str) and definition
        assert nme(g + 1.0, g, S68, norm)[0] > 0
    card = Protocol(box_source="gt", box_definition="tight", enlarge=1.25, input_size=128,
                    fr_auc_normalisation="iod", threshold=0.1, flip_test=False, model="m",
                    weights_sha256=None, faceland_version="0", hardware="cpu")
    assert card.normalisation == NORMALIZATIONS and card.normalisation is not NORMALIZATIONS
    assert card.to_dict()["normalisation"] == {
        "iod": "outer eye corners", "ipd": "eye-contour means",
        "box": "sqrt(w*h) of the gt landmark box"}  # the JSON every result file holds


def test_non_finite_predictions_are_failures_and_bad_input_raises() -> None:
    from faceland.metrics import auc, failure_rate, nme
    from faceland.schemes import get_scheme

    s68 = get_scheme("68")
    gt = np.zeros((2, 68, 2))
    gt[:, :, 0] = np.arange(68)
    gt[:, :, 1] = np.arange(68) % 7
    pred = gt.copy()
    pred[0, 3] = np.nan  # one bad point in image 0
    e = nme(pred, gt, s68)
    assert np.isinf(e[0]) and e[1] == 0
    assert failure_rate(e) == 0.5 and auc(e) == 0.5
    with pytest.raises(ValueError, match="non-finite"):
        nme(gt, pred, s68)
    with pytest.raises(ValueError, match="empty"):
        nme(np.zeros((0, 68, 2)), np.zeros((0, 68, 2)), s68)
    with pytest.raises(ValueError):
        auc([])
    with pytest.raises(ValueError, match="NaN"):
        failure_rate([0.01, np.nan])


def test_numpy_ranks_and_spearman_equal_scipy() -> None:
    """The core install has no SciPy: faceland's mid-ranks and Spearman must equal SciPy's."""
    stats = pytest.importorskip("scipy.stats")
    from faceland.metrics import mid_ranks, spearman

    rng = np.random.default_rng(3)
    for x in (rng.integers(0, 6, 300).astype(float), rng.normal(size=50), np.ones(4)):
        y = rng.normal(size=x.size)
        np.testing.assert_allclose(mid_ranks(x), stats.rankdata(x))
        ref = stats.spearmanr(x, y).statistic
        assert (np.isnan(ref) and np.isnan(spearman(x, y))) or abs(spearman(x, y) - ref) < 1e-12


def test_confidence_quality_known_values() -> None:
    err = np.array([0.01, 0.02, 0.05, 0.2, 0.3])
    good = confidence_quality(-err, err)  # score falls as error grows
    assert good["auroc"] == 1.0 and good["spearman"] == pytest.approx(-1.0) and good["n_bad"] == 2
    assert confidence_quality(err, err)["auroc"] == 0.0
    const = confidence_quality(np.ones(5), err)  # constant scores: no rank correlation
    assert const["auroc"] == 0.5 and np.isnan(const["spearman"])  # ties: chance
    with pytest.raises(ValueError, match="one shape"):
        confidence_quality(np.ones(3), err)


def test_nmj_known_values() -> None:
    gt = np.zeros((4, 68, 2))
    gt[:, 36] = [0.0, 0.0]
    gt[:, 45] = [100.0, 0.0]  # IOD 100 px
    moving = gt + np.arange(4)[:, None, None] * 5.0  # the camera moves: not jitter
    assert nmj(moving + 3.0, moving, S68) == 0.0  # a constant bias is not jitter either
    pred = moving.copy()
    pred[1::2, :, 0] += 2.0  # +-2 px flicker in x: every step changes the error by 2 px
    assert nmj(pred, moving, S68) == pytest.approx(0.02)
    pred[2] = np.nan  # a missed frame drops its two pairs
    assert nmj(pred, moving, S68) == pytest.approx(0.02)
