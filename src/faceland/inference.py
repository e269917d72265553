"""Landmarks on real images: detector + crop + model + mapping back, in one facade.

>>> from faceland import FaceLandmarker
>>> faces = FaceLandmarker().predict(image_rgb)   # list of Face, landmarks in image pixels

Every coordinate returned here is in **image pixels, 0-based pixel centres** (the centre of the
top-left pixel is ``(0, 0)``), in the frame of the image as displayed (EXIF rotation applied when
the image was read with :func:`faceland.read_image`).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from faceland.checkpoint import ModelCard, load_model, read_card
from faceland.data.formats import read_image
from faceland.detectors import Detection, FaceDetector, create_detector
from faceland.errors import FormatError
from faceland.face_analysis import head_pose
from faceland.face_analysis import landmarks5 as _landmarks5
from faceland.face_analysis import openness as _openness
from faceland.geometry import (
    apply_affine,
    crop_affine,
    invert_affine_batch,
    landmark_box,
    normalized_to_crop,
    warp_crop,
)
from faceland.schemes import LandmarkScheme, get_scheme

if TYPE_CHECKING:  # the ONNX Runtime path never imports torch (start-up: ~5 s less)
    from faceland.models import LandmarkModel
    from faceland.runtimes import LandmarkRunner

__all__ = ["Face", "FaceLandmarker", "FaceLandmarkerOptions", "Landmarker", "result_json",
           "check_boxes", "box_problem", "MIN_BOX_SIDE", "MAX_BOX_DIAGONALS", "COLORS", "as_rgb",
           "check_color", "open_landmark_model"]

log = logging.getLogger(__name__)


@dataclass
class Face:
    """One face in an image.

    Attributes:
        box: ``[x0, y0, x1, y1]`` the **face box** (image pixels, 0-based pixel centres): the
            detector's box in its own convention (RetinaFace: mid-forehead to below the chin),
            or the box given to :meth:`FaceLandmarker.predict`. A tracked face
            (:class:`faceland.tracking.TrackedFace`) carries the same kind of box, mapped from
            its landmarks. The tight box of the landmarks is :attr:`landmark_box`.
        score: detector confidence (1.0 for user-supplied boxes).
        landmarks: ``(K, 2)`` float64 ``(x, y)`` in image pixels, 0-based pixel centres.
        point_scores: ``(K,)`` per-landmark confidence in ``[0, 1]`` from the model's heatmaps
            (higher: more likely right), or ``None`` for models without one.
        image_size: ``(width, height)`` in pixels of the image the face lies in (set by
            :class:`FaceLandmarker` and :class:`faceland.tracking.VideoLandmarker`; it gives the
            camera intrinsics of :attr:`pose`), or ``None``.

    For 68-point (iBUG 300-W) landmarks, three properties are computed from :attr:`landmarks`
    when read (:mod:`faceland.face_analysis`; ``None`` for other markups):
    :attr:`landmarks5`, :attr:`pose` and :attr:`openness`.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    point_scores: np.ndarray | None = None
    image_size: tuple[int, int] | None = field(default=None, repr=False, compare=False)

    def _is68(self) -> bool:
        return np.shape(self.landmarks) == (68, 2)

    @property
    def landmark_box(self) -> np.ndarray:
        """``[x0, y0, x1, y1]`` the tight box of the finite :attr:`landmarks` (image pixels,
        0-based pixel centres; :func:`faceland.geometry.landmark_box`): the box kind the
        landmark models' crops are built from (``box_type="landmark"``)."""
        return landmark_box(self.landmarks)

    @property
    def landmarks5(self) -> np.ndarray | None:
        """``(5, 2)`` ArcFace-order points (left eye centre, right eye centre, nose tip, left and
        right mouth corner; image left first), image pixels, 0-based pixel centres
        (:func:`faceland.face_analysis.landmarks5`); ``None`` unless 68 points."""
        return _landmarks5(self.landmarks) if self._is68() else None

    @property
    def pose(self) -> dict[str, float] | None:
        """Head pose ``{"yaw", "pitch", "roll"}`` in degrees (0, 0, 0 frontal upright; yaw > 0:
        nose toward larger x; pitch > 0: face up; roll > 0: clockwise in the image), fitted to the
        nose and eye points with the image size's camera
        (:func:`faceland.face_analysis.head_pose`); ``None`` unless 68 points and
        :attr:`image_size` are known, or when the fit fails."""
        if not self._is68() or self.image_size is None:
            return None
        key = (np.asarray(self.landmarks, dtype=np.float64).tobytes(), tuple(self.image_size))
        cached = self.__dict__.get("_pose_cache")
        if cached is None or cached[0] != key:  # ~0.1 ms a fit: once per landmarks
            cached = (key, head_pose(self.landmarks, self.image_size))
            self.__dict__["_pose_cache"] = cached
        return None if cached[1] is None else dict(cached[1])

    @property
    def openness(self) -> dict[str, float] | None:
        """``{"ear_left", "ear_right", "mar"}``: eye aspect ratio of the image-left (36-41) and
        image-right (42-47) eye (Soukupova and Cech, CVWW 2016, eq. 1) and the inner-lip mouth
        aspect ratio (unitless; :func:`faceland.face_analysis.openness`); ``None`` unless 68
        points."""
        return _openness(self.landmarks) if self._is68() else None

    def to_dict(self) -> dict:
        """JSON-ready dict: ``{"box": [4 floats], "score": float, "landmarks": [[x, y], ...],
        "point_scores": [K floats] or null, "landmarks5": [[x, y] x 5] or null, "pose": {"yaw",
        "pitch", "roll"} (degrees) or null, "openness": {"ear_left", "ear_right", "mar"} or
        null}`` (the last three are null unless 68 points; ``pose`` also without
        :attr:`image_size`)."""
        five, pose, opened = self.landmarks5, self.pose, self.openness
        return {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 4),
                "landmarks": [[round(float(x), 3), round(float(y), 3)] for x, y in self.landmarks],
                "point_scores": None if self.point_scores is None else
                [round(float(v), 4) for v in self.point_scores],
                "landmarks5": None if five is None else
                [[round(float(x), 3), round(float(y), 3)] for x, y in five],
                "pose": None if pose is None else {k: _rounded(v, 2) for k, v in pose.items()},
                "openness": None if opened is None else
                {k: _rounded(v, 4) for k, v in opened.items()}}


def _rounded(value: float, digits: int) -> float | None:
    """``value`` rounded, or ``None`` (JSON null) when it is not finite."""
    v = float(value)
    return round(v, digits) if math.isfinite(v) else None


#: Colour orders the API accepts (``color=``): faceland works in RGB; ``"bgr"`` (OpenCV's
#: ``cv2.imread`` / ``VideoCapture`` order) is converted.
COLORS = ("rgb", "bgr")


def as_rgb(image: np.ndarray, color: str) -> np.ndarray:
    """``image`` in RGB order: itself for ``color="rgb"``, its channels reversed (a contiguous
    copy) for ``"bgr"``.

    Raises:
        ValueError: ``color`` is not ``"rgb"`` or ``"bgr"``, or (for ``"bgr"``) the image is not
            an ``(H, W, 3)`` uint8 array.
    """
    check_color(color)
    if color == "rgb":
        return image
    _check_image(image)
    return np.ascontiguousarray(image[..., ::-1])


def check_color(color: str) -> None:
    """Raises ``ValueError`` unless ``color`` is one of :data:`COLORS`."""
    if not isinstance(color, str) or color not in COLORS:
        raise ValueError(f"color must be 'rgb' or 'bgr', not {color!r}")


#: Model-card ``training`` fields copied into evaluation protocol cards.
TRAINING_SUMMARY_KEYS = ("model", "dataset", "split", "n_train", "n_val", "input_size", "epochs",
                         "epochs_done", "max_time_minutes", "train_wall_minutes_total",
                         "best_val_nme_iod_percent", "hardware", "command")


@runtime_checkable
class Landmarker(Protocol):
    """What the evaluation harness needs of a landmark system (torch-free): faceland's
    :class:`FaceLandmarker` and the adapters of other systems (:mod:`faceland.external`) have it.

    Attributes:
        num_points: K, the landmarks it predicts.
        detector: its face detector (``to_landmark_box`` converts a detection), for
            ``boxes="detector"`` evaluations.
    """

    num_points: int
    detector: object

    def detect(self, image: np.ndarray) -> list:
        """Faces (with ``.box``, image pixels) in an ``(H, W, 3)`` uint8 RGB image."""

    def landmarks_from_boxes(self, image: np.ndarray, boxes: Sequence[Sequence[float]] | np.ndarray,
                             box_type: str = "landmark", return_scores: bool = False
                             ) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
        """``(N, K, 2)`` landmarks, image pixels (0-based pixel centres), one per box."""

    def protocol(self) -> dict:
        """What an evaluation card records about the system (``model``, ``weights_sha256``,
        ``enlarge``, ``input_size``, ``flip_test``, ...)."""


class _Unset:
    """The default of a convenience keyword of :class:`FaceLandmarker` and
    :class:`faceland.tracking.VideoLandmarker`: not given, so the options dataclass's default
    applies."""

    def __repr__(self) -> str:
        return "<default>"


#: "Keyword not given" (see :class:`_Unset`); typed ``Any`` so that each keyword keeps its own
#: type hint.
_UNSET: Any = _Unset()

_Options = TypeVar("_Options")


def _options_from(cls: type[_Options], options: _Options | None, keywords: dict[str, Any],
                  owner: str) -> _Options:
    """The options a constructor runs with: ``options``, or ``cls(**keywords)`` built from the
    keywords that were given (those not :data:`_UNSET`).

    Raises:
        TypeError: ``options`` is not a ``cls``.
        ValueError: ``options`` and a keyword both given (the message names the keywords), or a
            bad keyword value (``cls.__post_init__``).
    """
    given = {k: v for k, v in keywords.items() if v is not _UNSET}
    if options is None:
        return cls(**given)
    if not isinstance(options, cls):
        raise TypeError(f"{owner}: options must be a {cls.__name__}, not "
                        f"{type(options).__name__}")
    if given:
        raise ValueError(f"{owner}: got options= and the keyword(s) {', '.join(given)}: pass "
                         f"either a {cls.__name__} or keywords, not both (to change an option, "
                         f"pass dataclasses.replace(options, {next(iter(given))}=...))")
    return options


def _in_memory(model: object) -> bool:
    """Whether ``model`` is an in-memory :class:`~faceland.models.LandmarkModel` (only possible
    when torch and :mod:`faceland.models` are loaded, so this never imports torch)."""
    models = sys.modules.get("faceland.models")
    return models is not None and isinstance(model, models.LandmarkModel)


@dataclass(frozen=True)
class FaceLandmarkerOptions:
    """How a :class:`FaceLandmarker` is built (the options-dataclass style of MediaPipe's Tasks
    API): ``FaceLandmarker(options=FaceLandmarkerOptions(runtime="onnx", flip_test=True))``.
    The values are checked when the options are made (also by ``dataclasses.replace``).

    Attributes:
        model: a :class:`~faceland.models.LandmarkModel`, a path to saved weights
            (``.safetensors``), an exported ``.onnx`` file (its card JSON beside it gives
            scheme and crop enlargement), a model name in the package's ``weights/`` folder,
            or ``None`` / ``"default"`` for the shipped default model.
        detector: a :class:`~faceland.detectors.FaceDetector`, a detector name, or ``None`` to
            require boxes in every call.
        device: torch device string (``runtime="torch"`` only).
        flip_test: average the prediction with that of the mirrored crop (test-time
            augmentation); the mirrored one is mapped back respecting the labels' left-right
            bias the model was trained with (its card's ``flip_x_offset``).
        enlarge: crop enlargement, crop side / landmark-box side (> 0; ``None``: the model
            card's, else 1.25).
        runtime: ``"onnx"``: ONNX Runtime (saved weights run through their shipped or cached
            ONNX graph, see :func:`faceland.export.onnx_for_weights`); ``"openvino"``: the same
            graph through OpenVINO (the ``openvino`` extra; bf16 on CPUs with bf16 units, see
            :mod:`faceland.runtimes`); ``"torch"``: eager PyTorch (the ``train`` extra);
            ``"auto"`` (default): ONNX Runtime for saved weights
            and ``.onnx`` files, PyTorch for an in-memory :class:`~faceland.models.LandmarkModel`.
            A detector given by name runs on the same graph runtime.
        threads: intra-op threads of the graph runtime (>= 1; ``None``: ``min(2, cores)``).

    Raises:
        ValueError: an unknown runtime; a graph runtime (``"onnx"``, ``"openvino"``) with an
            in-memory model; ``runtime="torch"`` with an ``.onnx`` file; an ``enlarge`` that
            is not a finite number > 0; a ``threads`` that is not an integer >= 1.
    """

    model: LandmarkModel | str | Path | None = None
    detector: FaceDetector | str | None = "default"
    device: str = "cpu"
    flip_test: bool = False
    enlarge: float | None = None
    runtime: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        from faceland.runtimes import GRAPH_RUNTIMES

        runtime, model = self.runtime, self.model
        if runtime not in ("auto", "torch", *GRAPH_RUNTIMES):
            raise ValueError(f"runtime must be 'auto', {', '.join(map(repr, GRAPH_RUNTIMES))} "
                             f"or 'torch', not {runtime!r}")
        if _in_memory(model):
            if runtime in GRAPH_RUNTIMES:
                raise ValueError(f"runtime={runtime!r} needs saved weights or an .onnx file; "
                                 "export an in-memory model with faceland.export.export_onnx "
                                 "first")
        elif model is not None and str(model).endswith(".onnx") and runtime == "torch":
            raise ValueError(f"{model}: an .onnx file runs with a graph runtime "
                             f"({', '.join(GRAPH_RUNTIMES)}) or 'auto'")
        e = self.enlarge
        if e is not None and (isinstance(e, bool) or not isinstance(e, numbers.Real)
                              or not math.isfinite(e) or e <= 0):
            raise ValueError(f"enlarge must be a finite number > 0 (crop side / box side) or "
                             f"None (the model card's), not {e!r}")
        t = self.threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, numbers.Integral)
                              or t < 1):
            raise ValueError(f"threads must be an integer >= 1 or None (min(2, cores)), "
                             f"not {t!r}")


class FaceLandmarker:
    """Face detection + landmark localisation.

    Build it from a :class:`FaceLandmarkerOptions` (``FaceLandmarker(options=...)``) or, as a
    convenience, from the same fields as keywords (``FaceLandmarker("default", flip_test=True)``;
    a keyword left out takes the options' default), not both.

    Args:
        model, detector, device, flip_test, enlarge, runtime, threads: see
            :class:`FaceLandmarkerOptions`.
        options: all of them in one :class:`FaceLandmarkerOptions`.

    Attributes:
        options: the :class:`FaceLandmarkerOptions` it was built with.
        model: the :class:`faceland.runtimes.LandmarkRunner` that runs the landmark model
            (:func:`open_landmark_model`); ``runtime`` names what runs it (``"onnx"``,
            ``"openvino"`` or ``"torch"``).
        card: the model's :class:`faceland.checkpoint.ModelCard`.

    Raises:
        FileNotFoundError: model weights not found.
        ValueError: a bad option (see :class:`FaceLandmarkerOptions`), or ``options`` given
            together with a keyword (the message names it).
        TypeError: ``options`` is not a :class:`FaceLandmarkerOptions`.
        faceland.errors.FormatError: the card JSON beside an ``.onnx`` file is unreadable, not
            JSON, not a JSON object, or has a malformed ``config`` (the message names the card).
    """

    def __init__(self, model: LandmarkModel | str | Path | None = _UNSET,
                 detector: FaceDetector | str | None = _UNSET, device: str = _UNSET,
                 flip_test: bool = _UNSET, enlarge: float | None = _UNSET, runtime: str = _UNSET,
                 threads: int | None = _UNSET, *, options: FaceLandmarkerOptions | None = None
                 ) -> None:
        from faceland.runtimes import resolve_runtime

        opts = _options_from(FaceLandmarkerOptions, options,
                             {"model": model, "detector": detector, "device": device,
                              "flip_test": flip_test, "enlarge": enlarge, "runtime": runtime,
                              "threads": threads}, "FaceLandmarker")
        self.options = opts
        model, detector, device, flip_test = opts.model, opts.detector, opts.device, opts.flip_test
        enlarge, runtime, threads = opts.enlarge, opts.runtime, opts.threads
        graph = resolve_runtime("auto" if runtime == "torch" else runtime)
        self.model, self.card = open_landmark_model(model, runtime, threads, device)
        self.runtime = self.model.runtime
        self.device = device
        self.input_size = int(self.model.input_size)
        self.enlarge = float(enlarge or self.card.enlarge or 1.25)
        self.flip_test = flip_test
        self._flip_perm: list[int] | None = None
        if flip_test:
            self._flip_perm = list(self.scheme.flip_permutation)
        # Labels' left-right bias the model was trained with (normalised crop units, see
        # faceland.transforms.AugmentConfig.flip_x_offset): a mirrored prediction is mapped back
        # with +2b so that flip test keeps the annotation convention instead of averaging it out.
        self.flip_x_offset = self.card.flip_x_offset
        self.detector = (create_detector(detector, runtime=graph) if isinstance(detector, str)
                         else detector)

    @property
    def num_points(self) -> int:
        """K, the number of landmarks the model predicts."""
        return int(self.model.num_points)

    def protocol(self) -> dict:
        """What an evaluation card records about this landmarker (crop, model, weights)."""
        from faceland.checkpoint import weights_hash

        path = self.card.path
        info = {"model": self.card.name or self.card.architecture,
                "weights_sha256": weights_hash(path) if path else None,
                "enlarge": self.enlarge, "input_size": self.input_size,
                "flip_test": self.flip_test, "runtime": self.runtime}
        tr = self.card.training
        if tr:  # how the weights were trained, for accuracy-per-training-time tables
            info["training"] = {k: tr.get(k) for k in TRAINING_SUMMARY_KEYS}
        return info

    @property
    def scheme(self) -> LandmarkScheme:
        """The model's landmark scheme: from its card, else the full markup with its point count.

        Raises:
            KeyError: no known scheme has the model's point count.
        """
        name = self.card.scheme or str(self.model.num_points)
        return get_scheme(name)

    def detect(self, image: np.ndarray, *, color: str = "rgb") -> list[Detection]:
        """Faces in an ``(H, W, 3)`` uint8 image (empty list when there is none).

        Args:
            image: ``(H, W, 3)`` uint8, channels in the order ``color`` names.
            color: ``"rgb"`` (default, as :func:`faceland.read_image` returns) or ``"bgr"``
                (OpenCV's ``cv2.imread`` order; converted).

        Raises:
            RuntimeError: the landmarker was built without a detector.
            ValueError: ``color`` is not ``"rgb"`` or ``"bgr"``.
        """
        image = as_rgb(image, color)
        if self.detector is None:
            raise RuntimeError("no face detector configured: pass boxes, or detector='default'")
        return self.detector.detect(image)

    def landmarks_from_boxes(self, image: np.ndarray, boxes: Sequence[Sequence[float]] | np.ndarray,
                             box_type: str = "landmark", return_scores: bool = False, *,
                             color: str = "rgb"
                             ) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
        """Landmarks for given boxes.

        Args:
            image: ``(H, W, 3)`` uint8, channels in the order ``color`` names.
            boxes: ``(F, 4)`` ``[x0, y0, x1, y1]`` (pixels, 0-based pixel centres).
            box_type: ``"landmark"``: the boxes are landmark boxes (e.g. from ground truth);
                ``"detector"``: they are face-detector boxes, converted with the detector's
                calibration.
            return_scores: also return the per-landmark confidence.
            color: ``"rgb"`` (default, as :func:`faceland.read_image` returns) or ``"bgr"``
                (OpenCV's ``cv2.imread`` / ``VideoCapture`` order; converted).

        Returns:
            ``(F, K, 2)`` float64 landmarks, image pixels, 0-based pixel centres; with
            ``return_scores``, the tuple ``(landmarks, scores)``, ``scores`` ``(F, K)`` float64 in
            ``[0, 1]`` or ``None`` for models without a confidence.

        Raises:
            ValueError: ``color`` not ``"rgb"`` or ``"bgr"``; bad or empty image array, bad box
                shape, or a box outside the bounds of
                :func:`check_boxes` (not finite, not ``x1 > x0`` and ``y1 > y0``, longer side
                below 1 px or above 10 image diagonals, a corner more than 10 image diagonals
                outside the image); the message names the box. A box entirely outside the image
                (but within those bounds) gives a ``UserWarning`` (its landmarks are guesses on a
                black crop).
        """
        check_color(color)
        _check_image(image)
        image = as_rgb(image, color)
        b = check_boxes(boxes, image.shape)
        if len(b) == 0:
            empty = np.zeros((0, self.model.num_points, 2))
            return (empty, np.zeros((0, self.model.num_points))) if return_scores else empty
        h, w = image.shape[:2]
        outside = (b[:, 2] < -0.5) | (b[:, 0] > w - 0.5) | (b[:, 3] < -0.5) | (b[:, 1] > h - 0.5)
        for x in b[outside]:
            warnings.warn(f"box {np.round(x, 1).tolist()} lies entirely outside the {w} x {h} "
                          "image: its landmarks are guesses on a black crop", stacklevel=2)
        if box_type == "detector":
            if self.detector is None:
                raise ValueError("box_type='detector' needs a detector for its box calibration")
            b = np.stack([self.detector.to_landmark_box(x) for x in b])
        elif box_type != "landmark":
            raise ValueError(f"box_type must be 'landmark' or 'detector', not {box_type!r}")
        pts, scores = self._landmarks_in_crops([(image, x) for x in b])
        return (pts, scores) if return_scores else pts

    def _landmarks_in_crops(self, faces: Sequence[tuple[np.ndarray, np.ndarray]],
                            max_batch: int = 32) -> tuple[np.ndarray, np.ndarray | None]:
        """``(image, landmark box)`` pairs -> ``(F, K, 2)`` image-pixel landmarks and ``(F, K)``
        scores (or ``None``): one affine warp per face, the crops through the model in batches
        of up to ``max_batch``, mapped back with the exact inverse."""
        n = self.input_size
        affines = np.stack([crop_affine(b, n, self.enlarge) for _, b in faces])
        crops = np.stack([warp_crop(im, a, n) for (im, _), a in zip(faces, affines, strict=True)])
        parts = [self._infer(crops[i:i + max_batch]) for i in range(0, len(crops), max_batch)]
        coords = np.concatenate([c for c, _ in parts])
        scores = None if parts[0][1] is None else np.concatenate([s for _, s in parts])
        return apply_affine(normalized_to_crop(coords, n), invert_affine_batch(affines)), scores

    def _infer(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Crops -> normalised coordinates and scores, with the flip test when configured."""
        coords, scores = self._coords(crops)
        if self.flip_test:
            flipped, fscores = self._coords(np.ascontiguousarray(crops[:, :, ::-1]))
            # mirror in normalised coordinates, with the labels' bias re-applied
            flipped = self.scheme.flip_normalized(flipped, self.flip_x_offset)
            coords = (coords + flipped) / 2
            if scores is not None:
                scores = (scores + fscores[:, self._flip_perm]) / 2
        return coords, scores

    def predict_batch(self, images: Iterable[np.ndarray], max_batch: int = 32, *,
                      color: str = "rgb") -> list[list[Face]]:
        """:meth:`predict` for several images, with the faces of all of them run through the
        landmark model together (batches of up to ``max_batch`` crops: fewer, larger model
        calls).

        Args:
            images: ``(H, W, 3)`` uint8 images, channels in the order ``color`` names: any
                iterable (a list, a tuple, a generator; it is read once, into a list, before
                anything runs).
            max_batch: most crops per model call.
            color: ``"rgb"`` (default, as :func:`faceland.read_image` returns) or ``"bgr"``
                (OpenCV's ``cv2.imread`` order; converted).

        Returns:
            Per image, its faces (image pixels, 0-based pixel centres), as :meth:`predict`.

        Raises:
            ValueError: ``color`` not ``"rgb"`` or ``"bgr"``; a bad image (the message gives its
                index). RuntimeError: no detector.
        """
        check_color(color)
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise ValueError("predict_batch takes several images (a list of (H, W, 3) arrays); "
                             f"got one array of shape {images.shape}: use predict")
        images = list(images)
        for i, im in enumerate(images):
            try:
                _check_image(im)
            except ValueError as e:
                raise ValueError(f"image {i}: {e}") from None
        images = [as_rgb(im, color) for im in images]
        dets = [self.detect(im) for im in images]
        faces = [(im, self.detector.to_landmark_box(d.box))
                 for im, ds in zip(images, dets, strict=True) for d in ds]
        if not faces:
            return [[] for _ in images]
        pts, scores = self._landmarks_in_crops(faces, max_batch)
        out, k = [], 0
        for im, ds in zip(images, dets, strict=True):
            size = (int(im.shape[1]), int(im.shape[0]))
            out.append([Face(d.box, d.score, pts[k + i], None if scores is None else scores[k + i],
                             image_size=size) for i, d in enumerate(ds)])
            k += len(ds)
        return out

    def _coords(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(F, N, N, 3)`` uint8 RGB crops -> ``(F, K, 2)`` normalised crop coordinates and
        ``(F, K)`` scores (or ``None``), one batch through the runtime."""
        c, s = self.model.predict_crops_with_scores(crops)
        return c.astype(np.float64), (None if s is None else s.astype(np.float64))

    def predict(self, image: np.ndarray, boxes: Sequence[Sequence[float]] | None = None,
                box_type: str | None = None, *, color: str = "rgb") -> list[Face]:
        """Detect faces (unless ``boxes`` are given) and localise their landmarks.

        Args:
            image: ``(H, W, 3)`` uint8, channels in the order ``color`` names (RGB as returned
                by :func:`faceland.read_image`).
            boxes: optional ``(F, 4)`` boxes ``[x0, y0, x1, y1]`` (image pixels, 0-based pixel
                centres), within the bounds of :func:`check_boxes`.
            box_type: see :meth:`landmarks_from_boxes`; default: ``"detector"`` (face-detector
                style boxes, converted with the detector's calibration) when the landmarker has a
                detector, else ``"landmark"``.
            color: ``"rgb"`` (default) or ``"bgr"`` (OpenCV's ``cv2.imread`` /
                ``VideoCapture`` order; converted).

        Returns:
            One :class:`Face` per face (empty list when no face is found), with its
            :attr:`Face.image_size` set (so 68-point faces have :attr:`Face.pose`).

        Raises:
            ValueError: ``color`` not ``"rgb"`` or ``"bgr"``, a bad image, or a bad box (see
                :meth:`landmarks_from_boxes`).
        """
        check_color(color)
        _check_image(image)
        image = as_rgb(image, color)
        if boxes is None:
            dets = self.detect(image)
            box_type = "detector"
        else:
            dets = [Detection(b, 1.0) for b in check_boxes(boxes, image.shape)]
            if box_type is None:
                box_type = "detector" if self.detector is not None else "landmark"
        pts, scores = self.landmarks_from_boxes(image, [d.box for d in dets], box_type,
                                                return_scores=True)
        if scores is None:
            scores = [None] * len(pts)
        size = (int(image.shape[1]), int(image.shape[0]))
        return [Face(d.box, d.score, p, s, image_size=size)
                for d, p, s in zip(dets, pts, scores, strict=True)]

    def predict_file(self, path: str | Path) -> tuple[np.ndarray, list[Face]]:
        """Read an image file (EXIF rotation applied) and return ``(image, faces)``.

        Raises:
            faceland.data.formats.FormatError: missing, unreadable or corrupt image.
        """
        img = read_image(path)
        return img, self.predict(img)

    def predict_video(self, path: str | Path, every: int = 1
                      ) -> Iterator[tuple[int, np.ndarray, list[Face]]]:
        """Landmarks on the frames of a video file, each frame on its own (detector on every
        frame, no tracking or smoothing: :class:`faceland.tracking.VideoLandmarker` does both).

        Args:
            path: a video file OpenCV can decode (mp4, avi, mov, mkv, ...).
            every: process every ``every``-th frame.

        Yields:
            ``(frame_index, frame, faces)``: the 0-based frame index, the ``(H, W, 3)`` uint8 RGB
            frame and its faces (image pixels, 0-based pixel centres). Afterwards
            :attr:`last_video_frames` holds how many frames were decoded (compare it with the
            header's frame count to detect a truncated file).

        Raises:
            faceland.data.formats.FormatError: missing file or not a decodable video.
            ValueError: ``every < 1``.
        """
        from faceland.data.formats import VideoReader

        self.last_video_frames = 0
        with VideoReader(path, every) as video:
            for i, frame in video:
                self.last_video_frames = video.decoded
                yield i, frame, self.predict(frame)
            self.last_video_frames = video.decoded


def result_json(path: str | Path, image: np.ndarray, faces: Sequence[Face]) -> dict:
    """The per-image JSON written by ``faceland predict``: ``{"image": str, "width": int,
    "height": int, "faces": [{"box", "score", "landmarks", "point_scores", "landmarks5", "pose",
    "openness"}]}`` (image pixels, 0-based pixel centres; see :meth:`Face.to_dict`)."""
    return {"image": str(path), "width": int(image.shape[1]), "height": int(image.shape[0]),
            "faces": [f.to_dict() for f in faces]}


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 \
            or image.dtype != np.uint8:
        desc = f"{type(image).__name__} {getattr(image, 'shape', '')} " \
               f"{getattr(image, 'dtype', '')}"
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {desc}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image ({image.shape[1]} x {image.shape[0]} pixels)")


#: The smallest longer side of a box, image pixels (a crop of a sub-pixel box holds no face).
MIN_BOX_SIDE = 1.0
#: The largest longer side of a box, and the farthest a box coordinate may lie outside the image,
#: both in image diagonals (beyond that the crop's arithmetic and memory run away, and the
#: face would cover a few crop pixels at most).
MAX_BOX_DIAGONALS = 10.0


def box_problem(box: np.ndarray, width: int, height: int) -> str | None:
    """Why ``box`` cannot be cropped from a ``width x height`` image, or ``None`` when it can.

    Args:
        box: ``[x0, y0, x1, y1]``, image pixels, 0-based pixel centres.
        width, height: the image's size in pixels.

    Returns:
        ``None`` for a box within the bounds of :func:`check_boxes`, else the problem in words
        (naming the box).
    """
    b = np.asarray(box, dtype=np.float64)
    shown = b.tolist()
    if not (np.isfinite(b).all() and b[2] > b[0] and b[3] > b[1]):
        return f"box {shown} is not a finite [x0, y0, x1, y1] with x1 > x0 and y1 > y0"
    with np.errstate(over="ignore"):  # a side that overflows is inf: too large, below
        side = float(max(b[2] - b[0], b[3] - b[1]))
    limit = MAX_BOX_DIAGONALS * float(np.hypot(width, height))
    if side < MIN_BOX_SIDE:
        return (f"box {shown} is too small: its longer side is {side:.3g} px, the least is "
                f"{MIN_BOX_SIDE:g} px")
    if not side <= limit:  # also catches a side that overflowed to inf
        return (f"box {shown} is too large: its longer side is {side:.3g} px, the most is "
                f"{MAX_BOX_DIAGONALS:g} image diagonals ({limit:.0f} px for the {width} x "
                f"{height} image)")
    if (min(b[0], b[2]) < -limit or max(b[0], b[2]) > width - 1 + limit
            or min(b[1], b[3]) < -limit or max(b[1], b[3]) > height - 1 + limit):
        return (f"box {shown} lies too far outside the {width} x {height} image: more than "
                f"{MAX_BOX_DIAGONALS:g} image diagonals ({limit:.0f} px)")
    return None


def check_boxes(boxes: Sequence[Sequence[float]] | np.ndarray | Iterable,
                image_shape: tuple[int, ...]) -> np.ndarray:
    """Boxes as an ``(F, 4)`` float64 array, checked against the image they are cropped from.

    A box is ``[x0, y0, x1, y1]`` in image pixels, 0-based pixel centres. It must be finite with
    ``x1 > x0`` and ``y1 > y0``; its longer side (the crop is a square of that side times the
    enlargement) must be at least :data:`MIN_BOX_SIDE` (1 px: small faces of a few pixels
    still work) and at most :data:`MAX_BOX_DIAGONALS` (10) times the image diagonal; and no
    coordinate may lie more than that many image diagonals outside the image (the pixel-centre
    extent ``[0, W - 1] x [0, H - 1]``). A box partly or wholly outside the image within these
    bounds is accepted (the crop is padded with black).

    Args:
        boxes: ``(F, 4)`` array-like or any iterable of 4-sequences (a single flat
            ``[x0, y0, x1, y1]`` is one box).
        image_shape: the image's ``shape`` (``(H, W, ...)``).

    Raises:
        ValueError: not ``(F, 4)`` numbers, or the first box out of bounds (the message names
            it and the bound).
    """
    rows = boxes
    try:
        if not isinstance(boxes, np.ndarray):
            rows = [np.asarray(x, dtype=np.float64) for x in boxes]  # any iterable, read once
            b = np.stack(rows) if rows else np.zeros((0, 4))
        else:
            b = boxes.astype(np.float64)
        b = b.reshape(-1, 4)
    except (TypeError, ValueError):
        shown = [x.tolist() for x in rows] if isinstance(rows, list) else rows
        raise ValueError(f"boxes must be (F, 4) [x0, y0, x1, y1] numbers, got {shown!r}") from None
    h, w = int(image_shape[0]), int(image_shape[1])
    for x in b:
        problem = box_problem(x, w, h)
        if problem is not None:
            raise ValueError(problem)
    return b


def open_landmark_model(model: LandmarkModel | str | Path | None, runtime: str = "auto",
                        threads: int | None = None, device: str = "cpu"
                        ) -> tuple[LandmarkRunner, ModelCard]:
    """The one place a landmark model is opened with a runtime (see
    :class:`FaceLandmarkerOptions` for the arguments): ``(runner, card)``, where ``runner`` is
    a :class:`faceland.runtimes.LandmarkRunner` whose ``runtime`` says what runs it.

    - an in-memory :class:`LandmarkModel`: eager PyTorch on ``device`` (``runtime`` "auto" or
      "torch"), card from its ``config``;
    - an ``.onnx`` file: the graph runtime (card from the JSON beside it, if any);
    - saved weights with ``runtime="torch"``: eager PyTorch (the ``train`` extra);
    - saved weights otherwise: their shipped or cached ONNX graph on the graph runtime; with
      ``"auto"``, a model that does not export runs in eager PyTorch with a warning.

    Raises:
        FileNotFoundError, faceland.errors.FormatError: see :class:`FaceLandmarker`;
        ImportError: the runtime's package (or torch for ``"torch"``) is missing.
    """
    from faceland.export import onnx_for_weights
    from faceland.runtimes import GRAPH_RUNTIMES, OnnxLandmarkModel, resolve_runtime

    graph = resolve_runtime("auto" if runtime == "torch" else runtime)
    if _in_memory(model):
        return model.eval().to(device), ModelCard(config=dict(getattr(model, "config", {})))
    if model is not None and str(model).endswith(".onnx"):
        return OnnxLandmarkModel(model, threads, graph), _onnx_card(Path(model))
    if runtime == "torch":
        from faceland.errors import require_extra

        require_extra("runtime='torch'")
        net, card = load_model(model)
        return net.to(device), card
    path, card = read_card(model)
    try:
        return OnnxLandmarkModel(onnx_for_weights(path, card), threads, graph), card
    except RuntimeError as e:  # incl. torch.onnx.errors.OnnxExporterError
        if runtime in GRAPH_RUNTIMES:
            raise
        log.warning("%s: no ONNX graph (%s); running eager PyTorch", path,
                    str(e).splitlines()[0] if str(e) else type(e).__name__)
        net, card = load_model(path)
        return net.to(device), card


def _onnx_card(model: Path) -> ModelCard:
    """The card JSON beside an ``.onnx`` file (``model.with_suffix(".json")``), or an empty card
    when there is none.

    Raises:
        faceland.errors.FormatError: the card exists but is not readable UTF-8 JSON holding an
            object, or its ``config`` is malformed (the message names the card file).
    """
    card_path = model.with_suffix(".json")
    if not card_path.exists():
        return ModelCard(config={}, path=model)
    try:
        raw = json.loads(card_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise FormatError(f"{card_path}: cannot read the model card beside {model.name} "
                          f"({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise FormatError(f"{card_path}: the model card beside {model.name} is not valid JSON "
                          f"({e})") from None
    if not isinstance(raw, dict):
        raise FormatError(f"{card_path}: the model card beside {model.name} must be a JSON "
                          f"object, not {type(raw).__name__}")
    if isinstance(raw.get("config"), dict):
        card = ModelCard.from_dict(raw, card_path)
        card.path = model
        return card
    return ModelCard(config={}, extra=raw, path=model)
