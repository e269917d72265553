"""Adapters that let other landmark systems run through faceland's evaluation harness.

Each adapter offers the calls :func:`faceland.evaluation.evaluate_records` uses
(``num_points``, ``detector``, ``detect``, ``landmarks_from_boxes``, ``protocol``) and states
the box convention it was trained with, so that both box sources (``gt`` and ``detector``) are
fed the way the system expects. All coordinates are image pixels, 0-based pixel centres.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceland.detectors import Detection, _import_dlib, create_detector

__all__ = ["DlibLandmarker", "create_external"]


class DlibLandmarker:
    """dlib's 68-point shape predictor: an ensemble of regression trees (Kazemi and Sullivan,
    "One Millisecond Face Alignment with an Ensemble of Regression Trees", CVPR 2014), the
    ``shape_predictor_68_face_landmarks.dat`` model of the ``face_recognition_models`` package,
    trained on iBUG 300-W (non-commercial terms) with dlib HOG detector boxes.

    Box convention: the predictor expects dlib HOG boxes. With ``box_type="landmark"`` (the
    ``gt`` protocol) a landmark box is converted to the dlib box that the HOG detector's
    calibration maps onto it (:meth:`faceland.detectors.BoxCalibration.invert`); with
    ``"detector"`` the boxes are used as dlib boxes. dlib returns integer pixel indices (0-based
    pixel centres), used unchanged.

    Raises:
        ImportError: dlib or face_recognition_models is not installed (``faceland[dlib]``).
    """

    name = "dlib-ert-68"
    num_points = 68
    flip_test = False

    def __init__(self) -> None:
        self._dlib = _import_dlib()
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("dlib's 68-point model needs face_recognition_models: "
                              "pip install 'faceland[dlib]'")
        self.weights = (Path(next(iter(spec.submodule_search_locations))) / "models"
                        / "shape_predictor_68_face_landmarks.dat")
        self.predictor = self._dlib.shape_predictor(str(self.weights))
        self.detector = create_detector("dlib_hog")

    def detect(self, image: np.ndarray) -> list[Detection]:
        """dlib HOG detections (see :class:`faceland.detectors.DlibHogDetector`)."""
        return self.detector.detect(image)

    def landmarks_from_boxes(self, image: np.ndarray, boxes: Sequence[Sequence[float]],
                             box_type: str = "landmark") -> np.ndarray:
        """``(F, 68, 2)`` landmarks (pixels, 0-based pixel centres) for ``(F, 4)`` boxes."""
        img = np.ascontiguousarray(image)
        out = []
        for b in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            if box_type == "landmark":
                b = self.detector.calibration.invert(b)
            elif box_type != "detector":
                raise ValueError(f"box_type must be 'landmark' or 'detector', not {box_type!r}")
            rect = self._dlib.rectangle(*(int(round(v)) for v in b))
            shape = self.predictor(img, rect)
            out.append([(p.x, p.y) for p in shape.parts()])
        return np.asarray(out, dtype=np.float64).reshape(-1, 68, 2)

    def protocol(self) -> dict:
        """What the evaluation card records about this system."""
        from faceland.checkpoint import weights_hash

        return {"model": self.name, "weights_sha256": weights_hash(self.weights),
                "enlarge": None, "input_size": None, "flip_test": False,
                "box_note": "gt boxes converted to dlib HOG boxes via the inverse calibration"}


def create_external(name: str):
    """An external system by name: ``"dlib"``.

    Raises:
        faceland.errors.UnknownNameError: unknown name.
    """
    from faceland.errors import UnknownNameError

    if name == "dlib":
        return DlibLandmarker()
    raise UnknownNameError(f"unknown external system {name!r}; available: ['dlib']")
