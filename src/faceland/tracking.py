"""Landmarks on video and live streams: a stateful landmarker with tracking and smoothing.

>>> from faceland.tracking import VideoLandmarker
>>> video = VideoLandmarker()                      # default model, detector, One Euro smoothing
>>> for i, frame in enumerate(frames):             # (H, W, 3) uint8 RGB
...     faces = video.process(frame, timestamp_ms=i * 1000 / fps)
...     faces[0].track, faces[0].landmarks, faces[0].point_scores

Frames come one at a time with increasing time stamps, as in MediaPipe's VIDEO / LIVE_STREAM
running modes, and the landmarker keeps state between them:

* **Tracking** (``tracking=True``, default). A face found once is followed by its landmarks: the
  next frame's crop is the landmark box of this frame's (unsmoothed) landmarks, which is the box
  the model was trained on. The face detector runs on the first frame, every ``detect_every``
  frames (to pick up new faces), and on any frame where a track's confidence (the mean of its
  per-landmark scores, see :attr:`faceland.inference.Face.point_scores`) falls below
  ``min_confidence``; a track the detector does not confirm then is dropped. Detections are
  matched to tracks by the IoU of their landmark boxes; an unmatched detection starts a new
  track with a new id. With ``tracking=False`` the detector runs on every frame (faceland's
  behaviour before 2026-12; track ids are still carried over by overlap).
* **Temporal smoothing** per track (:data:`SMOOTHERS`), online, in the face's own frame: the
  face's motion (centre, scale, angle) and its shape are filtered separately
  (:class:`faceland.smoothing.LandmarkSmoother`), so jitter falls without lag on a moving
  face. ``"kalman"`` (default): the shape by the One Euro filter (Casiez et al., CHI 2012), the
  motion by a constant-velocity Kalman filter with speed-adaptive noise; ``"one_euro"``: both
  by One Euro filters; ``"one_euro_points"``: the paper's filter on every coordinate;
  ``"none"``. Optionally the cut-off of a point is lowered while its confidence is below its
  own running mean (``confidence_weighting``). Offline zero-lag smoothing of whole tracks for
  files: :func:`smooth_tracks`.

Coordinates are image pixels, 0-based pixel centres, in the frame as given; time stamps are
milliseconds. The smoothers' parameters were chosen on the stability benchmark's validation
clips (rendered from the validation split of 300W train, ``benchmarks/bench_stability.py
--split val --tune``), see docs/video.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from faceland.geometry import box_iou, landmark_box
from faceland.inference import Face, FaceLandmarker, _check_image
from faceland.smoothing import LandmarkSmoother, smooth_track

__all__ = ["TrackedFace", "VideoLandmarker", "smooth_tracks", "SMOOTHERS",
           "SMOOTHER_PARAMS", "DEFAULT_SMOOTHING"]

#: Online smoothers of :class:`VideoLandmarker` (offline: :func:`smooth_tracks`), each a
#: :class:`faceland.smoothing.LandmarkSmoother` setting:
#:
#: * ``"kalman"`` (default): in the face's own frame, the shape One Euro filtered and the motion
#:   by a constant-velocity Kalman filter with speed-adaptive process noise;
#: * ``"one_euro"``: in the face's own frame, shape and motion both One Euro filtered;
#: * ``"one_euro_points"``: the paper's One Euro filter on every coordinate.
SMOOTHERS = ("none", "kalman", "one_euro", "one_euro_points")

#: Default :class:`faceland.smoothing.LandmarkSmoother` parameters per smoother (cut-offs in
#: Hz; shape and centre in face radii, scale as a log, angle in radians; Kalman ``q / r`` in
#: 1 / s^3). Each chosen on the validation clips of
#: ``benchmarks/bench_stability.py --split val --tune`` (docs/video.md).
SMOOTHER_PARAMS = {
    "kalman": {"mode": "aligned", "min_cutoff": 0.1, "beta": 0.0, "d_cutoff": 1.0,
               "motion_kalman": 1000.0, "motion_kalman_speed": 1e5},
    "one_euro": {"mode": "aligned", "min_cutoff": 0.1, "beta": 0.0, "d_cutoff": 1.0,
                 "motion_min_cutoff": 3.0, "motion_beta": 100.0, "motion_d_cutoff": 3.0},
    "one_euro_points": {"mode": "points", "min_cutoff": 3.0, "beta": 30.0, "d_cutoff": 1.0},
}

#: The smoother of ``faceland predict`` on videos and of :class:`VideoLandmarker`.
DEFAULT_SMOOTHING = "kalman"


@dataclass
class TrackedFace(Face):
    """A face in one video frame.

    Attributes (besides :class:`~faceland.inference.Face`'s ``box``, ``score``, ``landmarks``
    and ``point_scores``, all image pixels with 0-based pixel centres):
        track: the track id, stable while the face is followed (new faces get new ids).
        confidence: the mean per-landmark score of this frame (``nan`` for models without
            scores).

    ``box`` is the face's landmark box used for this frame's crop; ``score`` the confidence of
    the last detection matched to the track.
    """

    track: int = -1
    confidence: float = float("nan")

    def to_dict(self) -> dict:
        """``{"track": int, "box", "score", "landmarks", "point_scores"}`` (see
        :meth:`Face.to_dict`)."""
        return {"track": int(self.track), **super().to_dict()}


@dataclass
class _Track:
    id: int
    box: np.ndarray  # landmark box for the next crop (from unsmoothed landmarks)
    det_score: float
    raw: np.ndarray | None = None
    scores: np.ndarray | None = None
    smoother: LandmarkSmoother | None = None
    age: int = 0
    confirmed_at: int = -(10 ** 9)  # frame index of the last detection matched to the track


class VideoLandmarker:
    """Stateful landmarks on a stream of frames: tracking, detection schedule, smoothing.

    Args:
        landmarker: the :class:`~faceland.inference.FaceLandmarker` that runs the model (and
            holds the detector); default: ``FaceLandmarker()``.
        tracking: follow faces by their landmarks (see the module docstring); ``False`` runs
            the detector on every frame.
        detect_every: with tracking, run the detector every this many frames (>= 1) to find
            new faces.
        min_confidence: with tracking, a track whose mean point score is below this triggers
            the detector; unconfirmed, it is dropped (a track the detector confirmed within the
            last ``detect_every`` frames and scoring at least 0.8 of this is kept without asking
            again). Models without scores rely on the detection schedule alone. The default
            0.25 is below 99 % of detected wild faces (MTFL sample: 1st percentile 0.258,
            median 0.383 for the default model) and above background crops (the validation
            faces' boxes moved one face width right and 0.9 down: median 0.087, 95th
            percentile 0.143); ``benchmarks/bench_point_scores.py``.
        match_iou: least IoU of landmark boxes for a detection to continue a track.
        smoothing: one of :data:`SMOOTHERS` (default :data:`DEFAULT_SMOOTHING`).
        smoothing_params: :class:`faceland.smoothing.LandmarkSmoother` parameters overriding
            the smoother's :data:`SMOOTHER_PARAMS` (e.g. ``{"min_cutoff": 0.3}``).
        confidence_weighting: lower a point's One Euro cut-off while its score is below its
            own running mean (cut-off times ``score / mean``, at least 0.25).
        max_faces: keep at most this many tracks (the most confident detections start them).
        crop_from: with tracking, the next frame's crop is the landmark box of this frame's
            ``"smoothed"`` or ``"raw"`` landmarks.

    Attributes:
        detector_runs: how many frames the detector ran on since the last :meth:`reset`.
        frames: how many frames were processed since the last :meth:`reset`.

    Raises:
        ValueError: bad parameters; a landmarker without a detector.
    """

    def __init__(self, landmarker: FaceLandmarker | None = None, *, tracking: bool = True,
                 detect_every: int = 10, min_confidence: float = 0.25, match_iou: float = 0.3,
                 smoothing: str = DEFAULT_SMOOTHING, smoothing_params: dict | None = None,
                 confidence_weighting: bool = False, max_faces: int | None = None,
                 crop_from: str = "smoothed") -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if smoothing not in SMOOTHERS:
            raise ValueError(f"smoothing must be one of {SMOOTHERS}, not {smoothing!r} (offline "
                             "smoothing of whole tracks: faceland.tracking.smooth_tracks)")
        if not 0 < match_iou <= 1:
            raise ValueError(f"match_iou must be in (0, 1], got {match_iou}")
        self.landmarker = landmarker if landmarker is not None else FaceLandmarker()
        if self.landmarker.detector is None:
            raise ValueError("VideoLandmarker needs a landmarker with a face detector")
        self.tracking, self.detect_every = tracking, int(detect_every)
        self.min_confidence, self.match_iou = float(min_confidence), float(match_iou)
        self.smoothing, self.confidence_weighting = smoothing, confidence_weighting
        self.smoothing_params = {**SMOOTHER_PARAMS.get(smoothing, {}), **(smoothing_params or {})}
        self._new_smoother()  # validate now, not on the first face
        if crop_from not in ("smoothed", "raw"):
            raise ValueError(f"crop_from must be 'smoothed' or 'raw', not {crop_from!r}")
        self.max_faces, self.crop_from = max_faces, crop_from
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (e.g. at a cut, or before another video); ids restart at 0."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_t: float | None = None
        self.frames = 0
        self.detector_runs = 0

    # ------------------------------------------------------------------------------------------
    def process(self, frame: np.ndarray, timestamp_ms: float) -> list[TrackedFace]:
        """Landmarks of the faces in one frame.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB.
            timestamp_ms: the frame's time stamp in milliseconds; must increase from call to
                call (it sets the smoothing's time step).

        Returns:
            One :class:`TrackedFace` per followed face, ordered by track id (empty list when
            there is none); landmarks in image pixels, 0-based pixel centres, smoothed as
            configured.

        Raises:
            ValueError: a bad frame, or a time stamp that does not increase.
        """
        _check_image(frame)
        t = float(timestamp_ms) / 1000.0
        if self._last_t is not None and not t > self._last_t:
            raise ValueError(f"time stamps must increase: {self._last_t * 1000:g} ms, then "
                             f"{timestamp_ms:g} ms")
        detect = (not self.tracking or not self._tracks
                  or self.frames % self.detect_every == 0)
        confirmed = self._associate(frame, fresh=not self.tracking) if detect else set()
        pts, scores = self._landmarks(frame, self._tracks)
        if self.tracking and scores is not None and self._tracks:
            low = {tr.id for tr, s in zip(self._tracks, scores, strict=True)
                   if s.mean() < self.min_confidence}
            # A hard face (confidence between 0.8 min_confidence and min_confidence) that the
            # detector confirmed within the last detect_every frames is kept without asking the
            # detector again on every frame; below that, the detector is always asked.
            recent = {tr.id for tr, s in zip(self._tracks, scores, strict=True)
                      if self.frames - tr.confirmed_at < self.detect_every
                      and s.mean() >= 0.8 * self.min_confidence}
            if low - recent and not detect:  # confirm or re-seed the doubtful tracks with the detector
                confirmed = self._associate(frame, fresh=False, reseed=low)
                pts, scores = self._landmarks(frame, self._tracks)
                low = {tr.id for tr, s in zip(self._tracks, scores, strict=True)
                       if s.mean() < self.min_confidence}
            # Dropped: doubtful tracks the detector did not confirm in this frame, and new
            # detections the landmark model does not believe (e.g. a "face" on hair).
            keep = [i for i, tr in enumerate(self._tracks)
                    if tr.id not in low or (tr.age > 0 and (tr.id in confirmed or tr.id in recent))]
            self._tracks = [self._tracks[i] for i in keep]
            pts, scores = pts[keep], scores[keep]
        out = []
        for i, tr in enumerate(self._tracks):
            s = None if scores is None else scores[i]
            tr.raw, tr.scores, tr.age = pts[i], s, tr.age + 1
            box = landmark_box(pts[i])
            smoothed = self._smooth(tr, t)
            # the next crop: from the smoothed landmarks (a still face keeps a still crop, so
            # the tracking loop does not feed the model's noise back into its input)
            tr.box = landmark_box(smoothed) if self.crop_from == "smoothed" else box
            out.append(TrackedFace(box, tr.det_score, smoothed, s,
                                   track=tr.id,
                                   confidence=float("nan") if s is None else float(s.mean())))
        self._dedupe()
        keep_ids = {tr.id for tr in self._tracks}
        self._last_t = t
        self.frames += 1
        return sorted((f for f in out if f.track in keep_ids), key=lambda f: f.track)

    # ------------------------------------------------------------------------------------------
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

    def _new_smoother(self) -> LandmarkSmoother:
        return LandmarkSmoother(**{"mode": "aligned", **self.smoothing_params},
                                confidence_weighting=self.confidence_weighting)

    def _smooth(self, tr: _Track, t: float) -> np.ndarray:
        if self.smoothing == "none":
            return tr.raw.copy()
        if tr.smoother is None:
            tr.smoother = self._new_smoother()
        return tr.smoother(tr.raw, t, tr.scores)


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
        (image pixels, 0-based pixel centres); boxes, scores and ids unchanged.

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
