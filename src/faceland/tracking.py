"""Landmarks on video and live streams: a stateful landmarker with tracking and smoothing.

>>> from faceland.tracking import VideoLandmarker
>>> video = VideoLandmarker()                      # default model, detector, One Euro smoothing
>>> for i, frame in enumerate(frames):             # (H, W, 3) uint8 RGB (color="bgr": BGR)
...     faces = video.process(frame, timestamp_ms=i * 1000 / fps)
...     faces[0].track, faces[0].landmarks, faces[0].point_scores
...     faces[0].pose, faces[0].openness, faces[0].blink, faces[0].blinks   # 68-point models

Frames come one at a time with increasing time stamps, as in MediaPipe's VIDEO / LIVE_STREAM
running modes, and the landmarker keeps state between them:

* **Tracking** (``tracking=True``, default). A face found once is followed by its landmarks: the
  next frame's crop is the landmark box of this frame's (smoothed) landmarks, moved by the
  face's measured motion, which is the kind of box the model was trained on. The face
  detector runs on the first frame, every ``detect_every`` frames (to pick up new faces), and
  on any frame where a track's confidence (the mean of its per-landmark scores, see
  :attr:`faceland.inference.Face.point_scores`) falls below ``min_confidence``; a track the
  detector does not confirm then is dropped. Detections are matched to tracks by the IoU of
  their landmark boxes; an unmatched detection starts a new track with a new id. With
  ``tracking=False`` the detector runs on every frame (faceland's behaviour before 2026-12;
  track ids are still carried over by overlap).
* **Motion by optical flow** (``flow=True``, default). Each face's frame-to-frame motion is
  measured from the image (sparse Lucas-Kanade flow of corners in the face region and a robust
  similarity fit, :class:`FaceFlow`, about 0.3 ms per face). It moves the next crop with the
  face and is given to the smoother.
* **Temporal smoothing** per track (:data:`SMOOTHERS`), online, in the face's own frame: the
  face's motion (centre, scale, angle) and its shape are filtered separately
  (:class:`faceland.smoothing.LandmarkSmoother`), and the filters' state is first moved by the
  measured motion, so jitter falls without lag on a moving face. ``"one_euro"`` (default):
  shape and motion by One Euro filters (Casiez et al., CHI 2012); ``"kalman"``: the motion by
  a constant-velocity Kalman filter with speed-adaptive noise; ``"one_euro_points"``: the
  paper's filter on every coordinate; ``"none"``. Optionally the cut-off of a point is lowered
  while its confidence is below its own running mean (``confidence_weighting``). Offline
  zero-lag smoothing of whole tracks for files: :func:`smooth_tracks`.

Coordinates are image pixels, 0-based pixel centres, in the frame as given; time stamps are
milliseconds. A frame whose size differs from the previous frame's starts a new scene: all tracks
(and their flow and smoothing state) are dropped with one ``UserWarning``, the detector runs on
that frame and new tracks get new ids. The smoothers' parameters were chosen on the stability
benchmark's validation clips (rendered from the validation split of 300W train,
``benchmarks/bench_stability.py --split val --tune``), see docs/video.md.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from faceland.face_analysis import BlinkDetector, openness
from faceland.geometry import apply_affine, box_iou, landmark_box
from faceland.inference import (
    _UNSET,
    Face,
    FaceLandmarker,
    _check_image,
    _options_from,
    box_problem,
    check_color,
)
from faceland.smoothing import LandmarkSmoother, smooth_track

__all__ = ["TrackedFace", "VideoLandmarker", "VideoLandmarkerOptions", "FaceFlow", "smooth_tracks",
           "SMOOTHERS", "SMOOTHER_PARAMS", "SMOOTHER_PARAMS_NO_FLOW", "DEFAULT_SMOOTHING"]

#: Online smoothers of :class:`VideoLandmarker` (offline: :func:`smooth_tracks`), each a
#: :class:`faceland.smoothing.LandmarkSmoother` setting:
#:
#: * ``"one_euro"`` (default): in the face's own frame, shape and motion both One Euro filtered;
#: * ``"kalman"``: in the face's own frame, the shape One Euro filtered and the motion by a
#:   constant-velocity Kalman filter with speed-adaptive process noise;
#: * ``"one_euro_points"``: the paper's One Euro filter on every coordinate.
SMOOTHERS = ("none", "one_euro", "kalman", "one_euro_points")

#: Default :class:`faceland.smoothing.LandmarkSmoother` parameters per smoother when the face's
#: motion is measured by optical flow (``VideoLandmarker(flow=True)``, the default): cut-offs in
#: Hz; shape and centre in face radii, scale as a log, angle in radians; Kalman ``q / r`` in
#: 1 / s^3. Each chosen on the validation clips of ``benchmarks/bench_stability.py --split val
#: --tune`` (docs/video.md) under a rule that keeps NME within 0.05 pp of unsmoothed tracking
#: also when the flow misses half of the motion.
SMOOTHER_PARAMS = {
    "one_euro": {"mode": "aligned", "min_cutoff": 0.1, "beta": 0.0, "d_cutoff": 1.0,
                 "motion_min_cutoff": 0.1, "motion_beta": 100.0, "motion_d_cutoff": 1.0},
    "kalman": {"mode": "aligned", "min_cutoff": 0.1, "beta": 0.0, "d_cutoff": 1.0,
               "motion_kalman": 1.0, "motion_kalman_speed": 1e5},
    "one_euro_points": {"mode": "points", "min_cutoff": 3.0, "beta": 30.0, "d_cutoff": 1.0},
}

#: The same without optical flow (``VideoLandmarker(flow=False)``), chosen on the same clips
#: by the same rule: the motion filters must then follow the motion by themselves.
SMOOTHER_PARAMS_NO_FLOW = {
    "one_euro": {"mode": "aligned", "min_cutoff": 0.1, "beta": 0.0, "d_cutoff": 1.0,
                 "motion_min_cutoff": 3.0, "motion_beta": 100.0, "motion_d_cutoff": 3.0},
    "kalman": {"mode": "aligned", "min_cutoff": 0.1, "beta": 0.0, "d_cutoff": 1.0,
               "motion_kalman": 1000.0, "motion_kalman_speed": 1e5},
    "one_euro_points": {"mode": "points", "min_cutoff": 3.0, "beta": 30.0, "d_cutoff": 1.0},
}

#: The smoother of ``faceland predict`` on videos and of :class:`VideoLandmarker`.
DEFAULT_SMOOTHING = "one_euro"


@dataclass
class TrackedFace(Face):
    """A face in one video frame.

    Attributes (besides :class:`~faceland.inference.Face`'s ``box``, ``score``, ``landmarks``
    and ``point_scores``, all image pixels with 0-based pixel centres):
        track: the track id, stable while the face is followed (new faces get new ids).
        confidence: the mean per-landmark score of this frame (``nan`` for models without
            scores).
        motion: the ``(2, 3)`` similarity of the face region from the previous frame to this
            one measured by optical flow (:class:`FaceFlow`; image pixels), or ``None`` (flow
            off, a new track, or too few corners followed). Not written to JSON.
        blink: ``True`` on the frame a blink of this track ends (the eyes reopen), else
            ``False``; ``None`` unless 68 points.
        blinks: the track's blinks so far, this one included; ``None`` unless 68 points.
        raw_landmarks: ``(K, 2)`` this frame's unsmoothed landmarks (image pixels, 0-based
            pixel centres), or ``None``. Not written to JSON.

    ``box`` is the face box in the detector's convention, as in a photo's
    :class:`~faceland.inference.Face` (the detector's calibration inverted on the tight box of
    this frame's unsmoothed landmarks, :meth:`~faceland.detectors.FaceDetector.from_landmark_box`:
    a tracked frame runs no detector);
    :attr:`~faceland.inference.Face.landmark_box` is the tight box of the (smoothed)
    landmarks. ``score`` is the confidence of the last detection matched to the track.
    ``pose`` and ``landmarks5`` (see
    :class:`~faceland.inference.Face`) are computed from the smoothed :attr:`landmarks`;
    ``openness`` and blinks from the **unsmoothed** ones (blinks: their mean eye aspect ratio,
    :class:`faceland.face_analysis.BlinkDetector`, per track), because the online smoothers
    filter the face's shape at a low cut-off (0.1 Hz for ``"one_euro"``), which flattens a
    blink of a few frames (the smoothed EAR dropped 1.1 % during real blinks against 14 % for
    the unsmoothed one, docs/analysis.md).
    """

    track: int = -1
    confidence: float = float("nan")
    motion: np.ndarray | None = None
    blink: bool | None = None
    blinks: int | None = None
    raw_landmarks: np.ndarray | None = None

    @property
    def openness(self) -> dict[str, float] | None:
        """:attr:`Face.openness` of the unsmoothed landmarks (when known): eye and mouth aspect
        ratios, which a blink changes within a few frames."""
        if self.raw_landmarks is None or not self._is68():
            return super().openness
        return openness(self.raw_landmarks)

    def to_dict(self) -> dict:
        """``{"track": int, "box", "score", "landmarks", "point_scores", "landmarks5", "pose",
        "openness", "blink": bool or null, "blinks": int or null}`` (see
        :meth:`Face.to_dict`)."""
        return {"track": int(self.track), **super().to_dict(),
                "blink": None if self.blink is None else bool(self.blink),
                "blinks": None if self.blinks is None else int(self.blinks)}


class FaceFlow:
    """Frame-to-frame motion of one face region, measured by sparse optical flow.

    :meth:`reference` remembers a face region of one frame: its grey image, reduced by an
    integer factor so that its longer side is at most ``max_side`` px (which bounds the cost
    whatever the face's size), and up to ``max_corners`` Shi-Tomasi corners in it
    (``cv2.goodFeaturesToTrack``). Called
    with the next frame, the same region is cut from it, the corners are followed by pyramidal
    Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``), kept when the backward flow returns within
    ``fb_max`` reduced pixels (forward-backward check, Kalal, Mikolajczyk and Matas, ICPR
    2010), and a similarity (translation, scale, in-plane rotation) is fitted to them robustly
    (``cv2.estimateAffinePartial2D``, RANSAC, threshold 1 reduced pixel).

    The similarity moves the smoother's state before each frame's landmarks are filtered
    (:meth:`faceland.smoothing.LandmarkSmoother.__call__`, ``motion``): the part of the motion
    that the image explains is followed without lag, so the landmarks' own noise can be
    smoothed hard on a moving face too. A face's rigid in-plane motion is exactly a
    similarity; head turns and expressions are not, and what they leave is followed by the
    smoother's measurement update.

    Args:
        max_side: longer side of the reduced region, pixels.
        margin: the region is the face's landmark box grown by this fraction of its size on
            every side.
        max_corners: most corners followed.
        min_points: fewer corners surviving the checks give no motion (``None``).
        fb_max: forward-backward tolerance, reduced pixels.
        window, levels: Lucas-Kanade window side (reduced pixels) and pyramid levels above
            the base; the defaults follow motions of up to about 20 reduced pixels per frame
            (a fifth of the region).

    Raises:
        ValueError: a ``max_side`` below 16 or a ``min_points`` below 3.
    """

    def __init__(self, max_side: int = 96, margin: float = 0.1, max_corners: int = 40,
                 min_points: int = 8, fb_max: float = 0.5, window: int = 9, levels: int = 2
                 ) -> None:
        if max_side < 16 or min_points < 3:
            raise ValueError(f"need max_side >= 16 and min_points >= 3; got {max_side}, "
                             f"{min_points}")
        self.max_side, self.margin, self.max_corners = int(max_side), float(margin), max_corners
        self.min_points, self.fb_max = int(min_points), float(fb_max)
        self.window, self.levels = int(window), int(levels)
        self._ref: tuple | None = None

    def _region(self, frame: np.ndarray, rect: tuple[int, int, int, int], k: int
                ) -> np.ndarray:
        import cv2

        x0, y0, x1, y1 = rect
        grey = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        if k > 1:  # an integer factor: OpenCV's fast path for area averaging
            grey = cv2.resize(grey, ((x1 - x0) // k, (y1 - y0) // k),
                              interpolation=cv2.INTER_AREA)
        return grey

    def reference(self, frame: np.ndarray, box: np.ndarray) -> None:
        """Remember the region around ``box`` (``[x0, y0, x1, y1]`` image pixels, 0-based pixel
        centres) of ``frame`` (``(H, W, 3)`` uint8 RGB) for the next call."""
        import cv2

        b = np.asarray(box, dtype=np.float64)
        grow = self.margin * max(b[2] - b[0], b[3] - b[1])
        h, w = frame.shape[:2]
        x0, y0 = max(0, int(np.floor(b[0] - grow))), max(0, int(np.floor(b[1] - grow)))
        x1, y1 = min(w, int(np.ceil(b[2] + grow)) + 1), min(h, int(np.ceil(b[3] + grow)) + 1)
        self._ref = None
        if not (np.isfinite(b).all() and x1 - x0 >= 16 and y1 - y0 >= 16):
            return
        k = -(-max(x1 - x0, y1 - y0) // self.max_side)  # reduction factor, ceil
        x1, y1 = x0 + (x1 - x0) // k * k, y0 + (y1 - y0) // k * k
        grey = self._region(frame, (x0, y0, x1, y1), k)
        corners = cv2.goodFeaturesToTrack(grey, self.max_corners, 0.01, 3, blockSize=5)
        if corners is not None and len(corners) >= self.min_points:
            self._ref = ((x0, y0, x1, y1), k, grey, corners.astype(np.float32), (h, w))

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """The ``(2, 3)`` similarity mapping the referenced frame's pixels to ``frame``'s
        (image pixels, 0-based pixel centres), or ``None`` when too few corners could be
        followed (or nothing was referenced). The reference is used once; a frame of another
        size than the referenced one gives ``None`` (its pixels do not correspond)."""
        import cv2

        if self._ref is None:
            return None
        rect, k, grey0, p0, size = self._ref
        self._ref = None
        if frame.shape[:2] != size:
            return None
        grey1 = self._region(frame, rect, k)
        if grey1.shape != grey0.shape:
            return None
        lk = {"winSize": (self.window, self.window), "maxLevel": self.levels,
              "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
        p1, st, _ = cv2.calcOpticalFlowPyrLK(grey0, grey1, p0, None, **lk)
        back, st_b, _ = cv2.calcOpticalFlowPyrLK(grey1, grey0, p1, None, **lk)
        ok = (st[:, 0] == 1) & (st_b[:, 0] == 1) & (
            np.linalg.norm((back - p0)[:, 0], axis=1) < self.fb_max)
        if ok.sum() < self.min_points:
            return None
        m, inliers = cv2.estimateAffinePartial2D(p0[ok], p1[ok], method=cv2.RANSAC,
                                                 ransacReprojThreshold=1.0)
        if m is None or inliers is None or inliers.sum() < self.min_points:
            return None
        # reduced region -> image: u = f (x - x0 + 0.5) - 0.5 (0-based pixel centres)
        x0, y0, f = rect[0], rect[1], 1.0 / k
        s = np.array([[f, 0.0, f * (0.5 - x0) - 0.5], [0.0, f, f * (0.5 - y0) - 0.5],
                      [0.0, 0.0, 1.0]])
        full = np.linalg.inv(s) @ np.vstack([m, [0.0, 0.0, 1.0]]) @ s
        return full[:2]


@dataclass
class _Track:
    id: int
    box: np.ndarray  # landmark box of the next crop (from the crop_from landmarks)
    det_score: float
    raw: np.ndarray | None = None
    scores: np.ndarray | None = None
    smoother: LandmarkSmoother | None = None
    flow: FaceFlow | None = None
    motion: np.ndarray | None = None  # (2, 3) flow similarity, previous frame -> this one
    crop_points: np.ndarray | None = None  # the landmarks whose box is tr.box
    blink_detector: BlinkDetector | None = None  # 68-point models: on the unsmoothed EAR
    age: int = 0
    confirmed_at: int = -(10 ** 9)  # frame index of the last detection matched to the track


def _smoother(params: dict, confidence_weighting: bool) -> LandmarkSmoother:
    """A track's :class:`faceland.smoothing.LandmarkSmoother` (mode ``"aligned"`` unless
    ``params`` names another)."""
    return LandmarkSmoother(**{"mode": "aligned", **params},
                            confidence_weighting=confidence_weighting)


@dataclass(frozen=True)
class VideoLandmarkerOptions:
    """How a :class:`VideoLandmarker` follows and smooths faces (the options-dataclass style of
    MediaPipe's Tasks API): ``VideoLandmarker(landmarker, options=VideoLandmarkerOptions(
    detect_every=5, smoothing="kalman"))``. The values are checked when the options are made
    (also by ``dataclasses.replace``).

    Attributes:
        tracking: follow faces by their landmarks (see the module docstring); ``False`` runs
            the detector on every frame.
        detect_every: with tracking, run the detector every this many frames (>= 1) to find
            new faces.
        min_confidence: with tracking, a track whose mean point score (in ``[0, 1]``) is below
            this triggers the detector; unconfirmed, it is dropped (a track the detector
            confirmed within the last ``detect_every`` frames and scoring at least 0.8 of this
            is kept without asking again). Models without scores rely on the detection schedule
            alone. The default 0.25 is below 99 % of detected wild faces (MTFL sample: 1st
            percentile 0.258, median 0.383 for the default model) and above background crops
            (the validation faces' boxes moved one face width right and 0.9 down: median 0.087,
            95th percentile 0.143); ``benchmarks/bench_point_scores.py``.
        match_iou: least IoU of landmark boxes for a detection to continue a track, in
            ``(0, 1]``.
        smoothing: one of :data:`SMOOTHERS` (default :data:`DEFAULT_SMOOTHING`).
        smoothing_params: :class:`faceland.smoothing.LandmarkSmoother` parameters overriding
            the smoother's :data:`SMOOTHER_PARAMS` (:data:`SMOOTHER_PARAMS_NO_FLOW` with
            ``flow=False``), e.g. ``{"min_cutoff": 0.3}`` (cut-offs in Hz).
        confidence_weighting: lower a point's One Euro cut-off while its score is below its
            own running mean (cut-off times ``score / mean``, at least 0.25).
        max_faces: keep at most this many tracks (>= 1; the most confident detections start
            them), or ``None``: no limit.
        crop_from: with tracking, the next frame's crop is the landmark box of this frame's
            ``"smoothed"`` or ``"raw"`` landmarks.
        flow: measure each face's frame-to-frame motion by sparse optical flow
            (:class:`FaceFlow`, about 0.3 ms per face) and give it to the smoother, which then
            follows that motion without lag and smooths only the rest.
        flow_crops: with ``flow`` and tracking, the next crop's landmarks are first moved by
            the measured motion, so the crop does not trail a moving face by a frame.
        blink_params: :class:`faceland.face_analysis.BlinkDetector` parameters of each track's
            blink detector (68-point models), e.g. ``{"t_low": 0.75, "min_frames": 2}``.

    Raises:
        ValueError: ``detect_every < 1``, an unknown ``smoothing`` or ``crop_from``,
            ``match_iou`` outside ``(0, 1]``, a ``min_confidence`` that is not a finite number,
            a ``max_faces`` that is not an integer >= 1, or smoothing or blink parameters that
            :class:`~faceland.smoothing.LandmarkSmoother` or
            :class:`~faceland.face_analysis.BlinkDetector` refuse.
        TypeError: a smoothing or blink parameter those classes do not take.
    """

    tracking: bool = True
    detect_every: int = 10
    min_confidence: float = 0.25
    match_iou: float = 0.3
    smoothing: str = DEFAULT_SMOOTHING
    smoothing_params: dict | None = None
    confidence_weighting: bool = False
    max_faces: int | None = None
    crop_from: str = "smoothed"
    flow: bool = True
    flow_crops: bool = True
    blink_params: dict | None = None

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")
        if self.smoothing not in SMOOTHERS:
            raise ValueError(f"smoothing must be one of {SMOOTHERS}, not {self.smoothing!r} "
                             "(offline smoothing of whole tracks: faceland.tracking.smooth_tracks)")
        if not 0 < self.match_iou <= 1:
            raise ValueError(f"match_iou must be in (0, 1], got {self.match_iou}")
        c = self.min_confidence
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not math.isfinite(c):
            raise ValueError(f"min_confidence must be a finite number (a mean point score in "
                             f"[0, 1]), got {c!r}")
        m = self.max_faces
        if m is not None and (isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1):
            raise ValueError(f"max_faces must be an integer >= 1 or None (no limit), got {m!r}")
        if self.crop_from not in ("smoothed", "raw"):
            raise ValueError(f"crop_from must be 'smoothed' or 'raw', not {self.crop_from!r}")
        _smoother(self.resolved_smoothing_params(), self.confidence_weighting)  # check them
        BlinkDetector(**(self.blink_params or {}))  # check them

    def resolved_smoothing_params(self) -> dict:
        """The :class:`faceland.smoothing.LandmarkSmoother` parameters each track's smoother
        gets: the smoother's row of :data:`SMOOTHER_PARAMS` (:data:`SMOOTHER_PARAMS_NO_FLOW`
        without ``flow``; empty for ``"none"``) updated by :attr:`smoothing_params`."""
        table = SMOOTHER_PARAMS if self.flow else SMOOTHER_PARAMS_NO_FLOW
        return {**table.get(self.smoothing, {}), **(self.smoothing_params or {})}


class VideoLandmarker:
    """Stateful landmarks on a stream of frames: tracking, detection schedule, smoothing.

    Build it from a landmarker and a :class:`VideoLandmarkerOptions`
    (``VideoLandmarker(landmarker, options=...)``) or, as a convenience, from the same fields as
    keywords (``VideoLandmarker(landmarker, smoothing="kalman")``; a keyword left out takes the
    options' default), not both.

    Args:
        landmarker: the :class:`~faceland.inference.FaceLandmarker` that runs the model (and
            holds the detector); default: ``FaceLandmarker()``.
        tracking, detect_every, min_confidence, match_iou, smoothing, smoothing_params,
            confidence_weighting, max_faces, crop_from, flow, flow_crops, blink_params: see
            :class:`VideoLandmarkerOptions`.
        options: all of them in one :class:`VideoLandmarkerOptions`.

    Attributes:
        options: the :class:`VideoLandmarkerOptions` it was built with.
        smoothing_params: the parameters of each track's smoother
            (:meth:`VideoLandmarkerOptions.resolved_smoothing_params`).
        detector_runs: how many frames the detector ran on since the last :meth:`reset`.
        frames: how many frames were processed since the last :meth:`reset`.
        scene_resets: how many times a change of frame size dropped the tracks since the last
            :meth:`reset` (each one warned).

    Raises:
        ValueError: a bad option (see :class:`VideoLandmarkerOptions`); ``options`` given
            together with a keyword (the message names it); a landmarker without a detector.
        TypeError: ``options`` is not a :class:`VideoLandmarkerOptions`.
    """

    def __init__(self, landmarker: FaceLandmarker | None = None, *,
                 options: VideoLandmarkerOptions | None = None, tracking: bool = _UNSET,
                 detect_every: int = _UNSET, min_confidence: float = _UNSET,
                 match_iou: float = _UNSET, smoothing: str = _UNSET,
                 smoothing_params: dict | None = _UNSET, confidence_weighting: bool = _UNSET,
                 max_faces: int | None = _UNSET, crop_from: str = _UNSET, flow: bool = _UNSET,
                 flow_crops: bool = _UNSET, blink_params: dict | None = _UNSET) -> None:
        o = _options_from(VideoLandmarkerOptions, options,
                          {"tracking": tracking, "detect_every": detect_every,
                           "min_confidence": min_confidence, "match_iou": match_iou,
                           "smoothing": smoothing, "smoothing_params": smoothing_params,
                           "confidence_weighting": confidence_weighting, "max_faces": max_faces,
                           "crop_from": crop_from, "flow": flow, "flow_crops": flow_crops,
                           "blink_params": blink_params}, "VideoLandmarker")
        self.options = o
        self.landmarker = landmarker if landmarker is not None else FaceLandmarker()
        if self.landmarker.detector is None:
            raise ValueError("VideoLandmarker needs a landmarker with a face detector")
        self.tracking, self.detect_every = o.tracking, int(o.detect_every)
        self.min_confidence, self.match_iou = float(o.min_confidence), float(o.match_iou)
        self.smoothing, self.confidence_weighting = o.smoothing, o.confidence_weighting
        self.smoothing_params = o.resolved_smoothing_params()
        self.max_faces, self.crop_from = o.max_faces, o.crop_from
        self.flow, self.flow_crops = bool(o.flow), bool(o.flow_crops)
        # the motion is used by a smoother, or to move the crops
        self._use_flow = self.flow and (o.smoothing != "none" or (o.tracking and self.flow_crops))
        self.blink_params = dict(o.blink_params or {})
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (e.g. at a cut, or before another video); ids restart at 0."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_t: float | None = None
        self._size: tuple[int, int] | None = None  # (H, W) of the last frame
        self.frames = 0
        self.detector_runs = 0
        self.scene_resets = 0

    # ------------------------------------------------------------------------------------------
    def process(self, frame: np.ndarray, timestamp_ms: float, *, color: str = "rgb"
                ) -> list[TrackedFace]:
        """Landmarks of the faces in one frame.

        Args:
            frame: ``(H, W, 3)`` uint8, channels in the order ``color`` names. A frame of
                another size than the previous one starts a new scene: the tracks are dropped
                with a ``UserWarning`` and the detector runs (track ids keep counting up).
            timestamp_ms: the frame's time stamp in milliseconds, a finite number; must increase
                from call to call (it sets the smoothing's time step).
            color: ``"rgb"`` (default, as :func:`faceland.read_image` and faceland's video
                reader return) or ``"bgr"`` (OpenCV's ``VideoCapture`` order; converted).

        Returns:
            One :class:`TrackedFace` per followed face, ordered by track id (empty list when
            there is none); landmarks in image pixels, 0-based pixel centres, smoothed as
            configured; for 68-point models with pose, openness, five points and blinks.

        Raises:
            ValueError: ``color`` not ``"rgb"`` or ``"bgr"``; a frame that is not an
                ``(H, W, 3)`` uint8 array (or is empty), a time stamp that is not a finite
                number, or one that does not increase; the message names the frame by its
                index in the stream.
        """
        frame, t = self._check_frame(frame, timestamp_ms, color)
        size = (int(frame.shape[0]), int(frame.shape[1]))
        if self._size is not None and size != self._size:
            warnings.warn(f"frame {self.frames}: frame size changed from {self._size[1]} x "
                          f"{self._size[0]} to {size[1]} x {size[0]} pixels; tracking restarts "
                          f"(dropped {len(self._tracks)} track(s), the detector runs on this "
                          "frame)", stacklevel=2)
            self._tracks = []
            self.scene_resets += 1
        self._size = size
        detect = (not self.tracking or not self._tracks
                  or self.frames % self.detect_every == 0)
        for tr in self._tracks:  # the motion since the last frame, before any crop moves
            tr.motion = tr.flow(frame) if tr.flow is not None else None
            if tr.motion is not None and self.tracking and self.flow_crops:
                tr.box = landmark_box(apply_affine(tr.crop_points, tr.motion))
        self._drop_lost(frame)
        if self.tracking and not self._tracks:
            detect = True  # every track was lost: look for faces now
        confirmed = self._associate(frame, fresh=not self.tracking) if detect else set()
        pts, scores = self._landmarks(frame, self._tracks)
        if self.tracking and scores is not None and self._tracks:
            pts, scores = self._keep_believed(frame, pts, scores, confirmed, detect)
        out = [self._face(tr, pts[i], None if scores is None else scores[i], t, size)
               for i, tr in enumerate(self._tracks)]
        self._dedupe()
        if self._use_flow:
            for tr in self._tracks:
                if tr.flow is None:
                    tr.flow = FaceFlow()
                tr.flow.reference(frame, tr.box)
        keep_ids = {tr.id for tr in self._tracks}
        self._last_t = t
        self.frames += 1
        return sorted((f for f in out if f.track in keep_ids), key=lambda f: f.track)

    def _check_frame(self, frame: np.ndarray, timestamp_ms: float, color: str
                     ) -> tuple[np.ndarray, float]:
        """``(RGB frame, time in seconds)``, or the ``ValueError`` of :meth:`process`."""
        check_color(color)
        try:
            _check_image(frame)
        except ValueError as e:
            raise ValueError(f"frame {self.frames}: {e}") from None
        if color == "bgr":
            frame = np.ascontiguousarray(frame[..., ::-1])
        if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, numbers.Real) \
                or not math.isfinite(timestamp_ms):
            raise ValueError(f"frame {self.frames}: timestamp_ms must be a finite number of "
                             f"milliseconds, got {timestamp_ms!r}")
        t = float(timestamp_ms) / 1000.0
        if self._last_t is not None and not t > self._last_t:
            raise ValueError(f"frame {self.frames}: time stamps must increase: "
                             f"{self._last_t * 1000:g} ms, then {timestamp_ms:g} ms")
        return frame, t

    def _keep_believed(self, frame: np.ndarray, pts: np.ndarray, scores: np.ndarray,
                       confirmed: set[int], detected: bool) -> tuple[np.ndarray, np.ndarray]:
        """Drop the tracks the landmark model does not believe (mean score below
        ``min_confidence``) unless the detector vouches for them; returns the kept tracks'
        ``(pts, scores)``."""
        low = {tr.id for tr, s in zip(self._tracks, scores, strict=True)
               if s.mean() < self.min_confidence}
        # A hard face (confidence between 0.8 min_confidence and min_confidence) that the
        # detector confirmed within the last detect_every frames is kept without asking the
        # detector again on every frame; below that, the detector is always asked.
        recent = {tr.id for tr, s in zip(self._tracks, scores, strict=True)
                  if self.frames - tr.confirmed_at < self.detect_every
                  and s.mean() >= 0.8 * self.min_confidence}
        if low - recent and not detected:  # confirm or re-seed the doubtful tracks
            confirmed = self._associate(frame, fresh=False, reseed=low)
            pts, scores = self._landmarks(frame, self._tracks)
            low = {tr.id for tr, s in zip(self._tracks, scores, strict=True)
                   if s.mean() < self.min_confidence}
        # Dropped: doubtful tracks the detector did not confirm in this frame, and new
        # detections the landmark model does not believe (e.g. a "face" on hair).
        keep = [i for i, tr in enumerate(self._tracks)
                if tr.id not in low or (tr.age > 0 and (tr.id in confirmed or tr.id in recent))]
        self._tracks = [self._tracks[i] for i in keep]
        return pts[keep], scores[keep]

    def _face(self, tr: _Track, pts: np.ndarray, s: np.ndarray | None, t: float,
              size: tuple[int, int]) -> TrackedFace:
        """Update a track with this frame's landmarks (smoothing, next crop, blinks) and
        return its :class:`TrackedFace`."""
        tr.raw, tr.scores, tr.age = pts, s, tr.age + 1
        # the face box, in the detector's convention like a photo's Face.box (a detector
        # without the inverse map, e.g. a duck-typed one: the landmark box)
        box = landmark_box(pts)
        to_face_box = getattr(self.landmarker.detector, "from_landmark_box", None)
        if to_face_box is not None:
            box = to_face_box(box)
        smoothed = self._smooth(tr, t)
        # the next crop: from the smoothed landmarks (a still face keeps a still crop, so
        # the tracking loop does not feed the model's noise back into its input)
        tr.crop_points = smoothed if self.crop_from == "smoothed" else pts
        tr.box = landmark_box(tr.crop_points)
        blink, blinks = self._blink(tr)
        return TrackedFace(box, tr.det_score, smoothed, s, image_size=(size[1], size[0]),
                           track=tr.id, motion=tr.motion,
                           confidence=float("nan") if s is None else float(s.mean()),
                           blink=blink, blinks=blinks, raw_landmarks=pts)

    # ------------------------------------------------------------------------------------------
    def _drop_lost(self, frame: np.ndarray) -> None:
        """Drop tracks whose crop box ran out of the bounds a crop can be made from
        (:func:`faceland.inference.check_boxes`): the face is lost."""
        h, w = frame.shape[:2]
        self._tracks = [tr for tr in self._tracks if box_problem(tr.box, w, h) is None]

    def _landmarks(self, frame: np.ndarray, tracks: Sequence[_Track]
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        k = self.landmarker.num_points
        if not tracks:
            return np.zeros((0, k, 2)), np.zeros((0, k))
        return self.landmarker.landmarks_from_boxes(frame, np.stack([tr.box for tr in tracks]),
                                                    "landmark", return_scores=True)

    def _associate(self, frame: np.ndarray, fresh: bool, reseed: set[int] | None = None
                   ) -> set[int]:
        """Run the detector and match its faces to the tracks.

        ``fresh`` (no tracking): every track takes its matched detection's box, unmatched
        tracks end. Tracking: a matched track keeps its landmark box unless the overlap is
        weak (IoU < 0.5) or it is in ``reseed``; unmatched tracks stay. Unmatched detections
        start tracks. Returns the ids of the existing tracks a detection matched.
        """
        det = self.landmarker.detector
        dets = self.landmarker.detect(frame)
        self.detector_runs += 1
        boxes = np.stack([det.to_landmark_box(d.box) for d in dets]) if dets else np.zeros((0, 4))
        matched_t, matched_d = set(), set()
        if self._tracks and len(boxes):
            iou = box_iou(np.stack([tr.box for tr in self._tracks]), boxes)
            for ti, di in sorted(np.argwhere(iou >= self.match_iou).tolist(),
                                 key=lambda p: -iou[p[0], p[1]]):
                if ti in matched_t or di in matched_d:
                    continue
                matched_t.add(ti)
                matched_d.add(di)
                tr = self._tracks[ti]
                tr.det_score, tr.confirmed_at = float(dets[di].score), self.frames
                if fresh or iou[ti, di] < 0.5 or (reseed and tr.id in reseed):
                    tr.box = boxes[di]
        confirmed = {self._tracks[i].id for i in matched_t}
        if fresh:
            self._tracks = [tr for i, tr in enumerate(self._tracks) if i in matched_t]
        for di in sorted(set(range(len(dets))) - matched_d, key=lambda i: -dets[i].score):
            if self.max_faces is not None and len(self._tracks) >= self.max_faces:
                break
            self._tracks.append(_Track(self._next_id, boxes[di], float(dets[di].score),
                                       confirmed_at=self.frames))
            self._next_id += 1
        return confirmed

    def _dedupe(self) -> None:
        """Two tracks that converged on one face: keep the older."""
        if len(self._tracks) < 2:
            return
        iou = box_iou(np.stack([tr.box for tr in self._tracks]),
                      np.stack([tr.box for tr in self._tracks]))
        drop = set()
        for i in range(len(self._tracks)):
            for j in range(i + 1, len(self._tracks)):
                if iou[i, j] > 0.5 and i not in drop and j not in drop:
                    drop.add(j if self._tracks[i].id < self._tracks[j].id else i)
        self._tracks = [tr for i, tr in enumerate(self._tracks) if i not in drop]

    def _blink(self, tr: _Track) -> tuple[bool | None, int | None]:
        """This frame's blink event and the track's count, from its unsmoothed landmarks'
        mean eye aspect ratio; ``(None, None)`` unless 68 points."""
        if tr.raw is None or tr.raw.shape != (68, 2):
            return None, None
        if tr.blink_detector is None:
            tr.blink_detector = BlinkDetector(**self.blink_params)
        o = openness(tr.raw)
        event = tr.blink_detector.update((o["ear_left"] + o["ear_right"]) / 2)
        return event, tr.blink_detector.count

    def _new_smoother(self) -> LandmarkSmoother:
        return _smoother(self.smoothing_params, self.confidence_weighting)

    def _smooth(self, tr: _Track, t: float) -> np.ndarray:
        if self.smoothing == "none":
            return tr.raw.copy()
        if tr.smoother is None:
            tr.smoother = self._new_smoother()
        return tr.smoother(tr.raw, t, tr.scores, motion=tr.motion)


def smooth_tracks(frames: Sequence[Sequence[TrackedFace]], window: int = 9, order: int = 2
                  ) -> list[list[TrackedFace]]:
    """Offline zero-lag smoothing of whole tracks (for files, where later frames are known).

    Each track's landmarks are smoothed along time with :func:`faceland.smoothing.smooth_track`
    (Savitzky-Golay), separately over each run of consecutive processed frames in which the
    track appears.

    Args:
        frames: per processed frame, its faces (as returned by :meth:`VideoLandmarker.process`,
            ideally with ``smoothing="none"``).
        window: odd window length in frames; order: polynomial order.

    Returns:
        The same structure with new :class:`TrackedFace` objects whose landmarks are smoothed
        (image pixels, 0-based pixel centres; their ``pose``, ``openness`` and ``landmarks5``
        follow); boxes, scores, ids and blink events (found on the unsmoothed landmarks)
        unchanged.

    Raises:
        ValueError: an even ``window`` or ``order >= window``.
    """
    if window % 2 == 0 or order >= window:
        raise ValueError(f"need an odd window > order; got window={window}, order={order}")
    out = [list(fs) for fs in frames]
    runs: dict[int, list[list[tuple[int, int]]]] = {}
    for fi, faces in enumerate(out):
        for j, f in enumerate(faces):
            r = runs.setdefault(f.track, [])
            if r and r[-1][-1][0] == fi - 1:
                r[-1].append((fi, j))
            else:
                r.append([(fi, j)])
    for track_runs in runs.values():
        for run in track_runs:
            sm = smooth_track(np.stack([out[fi][j].landmarks for fi, j in run]), window, order)
            for (fi, j), p in zip(run, sm, strict=True):
                out[fi][j] = replace(out[fi][j], landmarks=p)
    return out
