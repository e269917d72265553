"""Face detectors: the default detector on real photos, box calibration, the interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceland.data.datasets import load_300w
from faceland.data.formats import read_image
from faceland.detectors import BoxCalibration, create_detector
from faceland.geometry import landmark_box

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def detector():
    return create_detector()


def test_astronaut_one_face(detector) -> None:
    img = read_image(ASSETS / "astronaut.jpg")
    dets = detector.detect(img)
    assert len(dets) == 1
    x0, y0, x1, y1 = dets[0].box
    assert 0.5 < dets[0].score <= 1
    # The face of the public-domain NASA portrait is around x 180-270, y 60-180 (512 x 512).
    assert 150 < (x0 + x1) / 2 < 300 and 60 < (y0 + y1) / 2 < 200


def test_blank_image_no_face(detector) -> None:
    assert detector.detect(np.full((240, 320, 3), 90, np.uint8)) == []


def test_calibrated_box_matches_landmark_box_on_real_faces(detector, data_root) -> None:
    """On test faces (not used for the fit) the calibrated box is close to the landmark box."""
    recs = load_300w(data_root / "300w", "common")[::50]
    rel_centre, rel_size = [], []
    for r in recs:
        gt = landmark_box(r.points)
        dets = detector.detect(read_image(r.image))
        assert dets, r.image
        side = max(gt[2] - gt[0], gt[3] - gt[1])
        b = min((detector.to_landmark_box(d.box) for d in dets),
                key=lambda b: np.linalg.norm((b[:2] + b[2:]) / 2 - (gt[:2] + gt[2:]) / 2))
        rel_centre.append(np.linalg.norm((b[:2] + b[2:]) / 2 - (gt[:2] + gt[2:]) / 2) / side)
        rel_size.append((b[2] - b[0]) / side)
    assert np.median(rel_centre) < 0.1
    assert 0.85 < np.median(rel_size) < 1.15


def test_box_calibration_math() -> None:
    cal = BoxCalibration(dx=0.1, dy=-0.2, scale=0.5)
    out = cal.apply(np.array([0.0, 0.0, 100.0, 400.0]))
    # centre (50 + 10, 200 - 80), side 0.5 * sqrt(100 * 400) = 100
    np.testing.assert_allclose(out, [10.0, 70.0, 110.0, 170.0])


def test_unknown_detector() -> None:
    with pytest.raises(KeyError, match="res10_ssd"):
        create_detector("retinaface")


def test_box_calibration_invert_round_trip() -> None:
    cal = BoxCalibration(dx=0.05, dy=0.13, scale=0.9)
    det = np.array([40.0, 60.0, 140.0, 160.0])  # square detector box
    np.testing.assert_allclose(cal.invert(cal.apply(det)), det, atol=1e-9)


def test_dlib_adapter_on_real_faces(data_root) -> None:
    """dlib's 68-point predictor through the same harness (skipped without faceland[dlib])."""
    import importlib.util

    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:  # its __init__ needs setuptools
        pytest.skip("face_recognition_models not installed")
    from faceland.evaluation import evaluate_records
    from faceland.external import create_external
    from faceland.schemes import get_scheme

    recs = load_300w(data_root / "300w", "common")[::60]
    lm = create_external("dlib")
    res = evaluate_records(lm, recs, get_scheme("68"), boxes="gt")
    assert res["n_images"] == len(recs) and res["protocol"]["model"] == "dlib-ert-68"
    assert res["nme_iod"] < 8.0
