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


@pytest.fixture(scope="module", params=["default", "res10_ssd"])
def detector(request):
    return create_detector(request.param)


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
    with pytest.raises(KeyError, match="retinaface"):
        create_detector("yunet")


def test_default_is_retinaface_and_scale_rule() -> None:
    det = create_detector()
    assert det.name == "retinaface"
    assert det.input_scale(640, 480) == 0.5  # 320 x 240: a photo runs small
    assert det.fine_scale(640, 480) is None
    assert det.input_scale(4000, 3000) == pytest.approx(0.08)  # big faces
    assert det.fine_scale(4000, 3000) == pytest.approx(0.75)  # 40 px faces at 30 px
    assert det.input_scale(200, 150) == 1.0  # never upsampled
    assert det.detect(np.zeros((0, 0, 3), np.uint8)) == []


def _paste_face(canvas_hw: tuple[int, int], face_px: int, at: tuple[int, int]) -> np.ndarray:
    """The astronaut's face scaled to ``face_px`` wide (detector box width) on a grey canvas."""
    import cv2

    img = read_image(ASSETS / "astronaut.jpg")
    face = img[30:230, 130:330]  # 200 px square around the face (box about 95 px wide)
    k = face_px / 95
    small = cv2.resize(face, (round(200 * k), round(200 * k)), interpolation=cv2.INTER_AREA)
    canvas = np.full((*canvas_hw, 3), 110, np.uint8)
    y, x = at
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


@pytest.mark.slow
def test_default_detector_finds_40px_face_in_4000x3000_photo() -> None:
    canvas = _paste_face((3000, 4000), 40, (1500, 2500))
    dets = create_detector().detect(canvas)
    assert len(dets) == 1, [d.box for d in dets]
    x0, y0, x1, y1 = dets[0].box
    assert 25 < x1 - x0 < 60 and 2500 < (x0 + x1) / 2 < 2590 and 1500 < (y0 + y1) / 2 < 1590


def test_default_detector_finds_92px_face_in_1080p_frame() -> None:
    canvas = _paste_face((1080, 1920), 92, (500, 1200))
    dets = create_detector().detect(canvas)
    assert len(dets) == 1 and 1200 < dets[0].box[0] < 1330


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
    assert res.n_images == len(recs) and res.protocol.model == "dlib-ert-68"
    assert res.nme_iod < 8.0


def test_small_faces_in_a_webcam_frame_are_found(data_root) -> None:
    """Issue 30, goal 6: a 1280 x 720 frame gets the small-face pass; real faces whose landmark
    box is 48 px are found (the whole-image pass at 320 px alone resolves ~120 px faces)."""
    import cv2

    from faceland.detectors import RetinaFaceDetector

    frame = np.full((720, 1280, 3), 128, np.uint8)
    centres = []
    for k, rec in enumerate(load_300w(data_root / "300w", "common")[::90][:6]):
        img = read_image(rec.image)
        x0, y0, x1, y1 = landmark_box(rec.points)
        s = 48 / max(x1 - x0, y1 - y0)
        small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        cx, cy = (x0 + x1) / 2 * s, (y0 + y1) / 2 * s
        tx, ty = 1280 * (1 + 2 * (k % 3)) / 6, 720 * (1 + 2 * (k // 3)) / 4
        a = np.float32([[1, 0, tx - cx], [0, 1, ty - cy]])
        mask = cv2.warpAffine(np.ones(small.shape[:2], np.uint8), a, (1280, 720),
                              flags=cv2.INTER_NEAREST)
        pasted = cv2.warpAffine(small, a, (1280, 720))
        r = 60  # keep a 120 px square of context around each face only
        keep = np.zeros_like(mask)
        keep[int(ty) - r:int(ty) + r, int(tx) - r:int(tx) + r] = 1
        frame[(mask & keep) > 0] = pasted[(mask & keep) > 0]
        centres.append(np.array([tx, ty]))
    det = RetinaFaceDetector()
    assert det.fine_scale(1280, 720) is not None and det.fine_scale(640, 480) is None
    found = det.detect(frame)
    hits = sum(any(np.hypot(*((d.box[:2] + d.box[2:]) / 2 - c)) < 24 for d in found)
               for c in centres)
    assert hits >= 5 and len(found) <= 6 + 1, (hits, len(found))


def test_from_landmark_box_inverts_to_landmark_box() -> None:
    """The tracker reports face boxes through the inverse map: a landmark box (square, as the
    calibration returns) maps to a face box of the detector's aspect that maps back onto it."""
    import numpy as np

    from faceland.detectors import RetinaFaceDetector

    det = RetinaFaceDetector()
    lm_box = np.array([100.0, 80.0, 260.0, 240.0])
    face = det.from_landmark_box(lm_box)
    np.testing.assert_allclose(det.to_landmark_box(face), lm_box, atol=1e-9)
    w, h = face[2] - face[0], face[3] - face[1]
    assert h / w == pytest.approx(det.calibration.aspect) and h / w > 1.2  # RetinaFace: taller
    assert face[1] < lm_box[1] - 0.1 * h  # reaches up to the forehead
