"""Video landmarks: tracking, detector schedule, smoothing, optical flow, options, JSONL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceland.cli import main
from faceland.data.datasets import load_300w
from faceland.data.formats import read_image
from faceland.geometry import apply_affine, landmark_box
from faceland.inference import FaceLandmarker
from faceland.metrics import nme, nmj
from faceland.schemes import get_scheme
from faceland.tracking import (
    DEFAULT_SMOOTHING,
    SMOOTHER_PARAMS,
    SMOOTHER_PARAMS_NO_FLOW,
    FaceFlow,
    TrackedFace,
    VideoLandmarker,
    VideoLandmarkerOptions,
    smooth_tracks,
)

ASTRO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"
S68 = get_scheme("68")


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def _clip(img: np.ndarray, pts: np.ndarray, n: int, step: float = 0.0, noise: float = 0.0,
          size: tuple[int, int] = (480, 360), seed: int = 0):
    """Frames of ``img`` moved right by ``step`` px per frame (sub-pixel, warpAffine) with
    Gaussian noise, and the ground truth mapped through the same warp."""
    rng = np.random.default_rng(seed)
    c = landmark_box(pts)
    m0 = np.array([[1.0, 0, size[0] / 2 - (c[0] + c[2]) / 2 - n * step / 2],
                   [0, 1.0, size[1] / 2 - (c[1] + c[3]) / 2]])
    frames, gts = [], []
    for t in range(n):
        m = m0.copy()
        m[0, 2] += step * t
        f = cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if noise:
            f = np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)
        frames.append(f)
        gts.append(pts @ m[:, :2].T + m[:, 2])
    return frames, np.stack(gts)


def _run(video: VideoLandmarker, frames, fps: float = 30.0) -> list[list[TrackedFace]]:
    return [video.process(f, timestamp_ms=i * 1000.0 / fps) for i, f in enumerate(frames)]


def _track_points(out, gt) -> np.ndarray:
    pred = np.full(gt.shape, np.nan)
    for i, faces in enumerate(out):
        if faces:
            pred[i] = min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0)
                                                              - gt[i].mean(0))).landmarks
    return pred


@pytest.fixture(scope="module")
def real_face(data_root):
    r = load_300w(data_root / "300w", "common")[5]
    return read_image(r.image), r.points


# --- tracking ---------------------------------------------------------------------------------

def test_tracking_follows_a_moving_face_with_one_id_and_few_detections(landmarker) -> None:
    img = read_image(ASTRO)
    ref = landmarker.predict(img)[0].landmarks
    frames, ref_t = _clip(img, ref, 25, step=1.7)
    video = VideoLandmarker(landmarker, detect_every=10, smoothing="none")
    out = _run(video, frames)
    assert all(len(f) == 1 and f[0].track == 0 for f in out)
    assert video.detector_runs == 3  # frames 0, 10, 20 only
    pred = _track_points(out, ref_t)
    # against the model's own prediction on the still, moved exactly: tracking adds no error
    assert nme(pred, ref_t, S68).max() < 0.03
    assert np.polyfit(range(25), pred[:, :, 0].mean(1), 1)[0] == pytest.approx(1.7, abs=0.15)
    raw = VideoLandmarker(landmarker, tracking=False, smoothing="none")
    _run(raw, frames[:5])
    assert raw.detector_runs == 5


def test_one_euro_cuts_jitter_on_a_still_noisy_face(landmarker) -> None:
    img = read_image(ASTRO)
    ref = landmarker.predict(img)[0].landmarks
    frames, gt = _clip(img, ref, 30, noise=8.0)
    raw = _track_points(_run(VideoLandmarker(landmarker, smoothing="none"), frames), gt)
    smooth = _track_points(_run(VideoLandmarker(landmarker), frames), gt)
    assert nmj(smooth, gt, S68) < nmj(raw, gt, S68) / 3
    assert abs(nme(smooth, gt, S68).mean() - nme(raw, gt, S68).mean()) < 0.005


def test_track_ends_when_the_face_leaves_and_no_face_gives_empty_frames(landmarker) -> None:
    img = read_image(ASTRO)
    black = np.zeros_like(img)
    video = VideoLandmarker(landmarker, detect_every=30)
    out = _run(video, [img] * 3 + [black] * 3 + [img] * 2)
    assert [len(f) for f in out] == [1, 1, 1, 0, 0, 0, 1, 1]
    assert out[0][0].track == 0 and out[-1][0].track == 1  # a new face gets a new id
    assert video.detector_runs >= 5  # the lost track and the empty frames asked the detector


def test_two_faces_two_tracks(landmarker) -> None:
    img = read_image(ASTRO)
    pair = np.concatenate([img, img[:, ::-1]], axis=1)
    out = _run(VideoLandmarker(landmarker), [pair] * 4)
    assert all(sorted(f.track for f in faces) == [0, 1] for faces in out)
    xs = {f.track: f.landmarks[:, 0].mean() for f in out[-1]}
    assert abs(xs[0] - xs[1]) > 300


def test_bad_calls() -> None:
    lm = FaceLandmarker(detector=None)
    with pytest.raises(ValueError, match="detector"):
        VideoLandmarker(lm)
    video = VideoLandmarker(FaceLandmarker(), smoothing="none")
    video.process(read_image(ASTRO), 10.0)
    with pytest.raises(ValueError, match="increase"):
        video.process(read_image(ASTRO), 10.0)
    with pytest.raises(ValueError, match="smoothing"):
        VideoLandmarker(FaceLandmarker(), smoothing="savgol")
    with pytest.raises(ValueError, match="uint8"):
        video.process(np.zeros((4, 4)), 20.0)


def test_smooth_tracks_per_run_zero_lag() -> None:
    rng = np.random.default_rng(0)
    truth = np.arange(40)[:, None, None] * np.array([2.0, 0.5]) + np.zeros((1, 5, 2))
    frames = []
    for t in range(40):
        faces = [] if t == 20 else [TrackedFace(np.zeros(4), 1.0,
                                                truth[t] + rng.normal(0, 1, (5, 2)), track=7)]
        frames.append(faces)
    out = smooth_tracks(frames)
    assert out[20] == [] and len(out[21]) == 1
    got = np.stack([out[t][0].landmarks for t in range(40) if t != 20])
    want = np.stack([truth[t] for t in range(40) if t != 20])
    noisy = np.stack([frames[t][0].landmarks for t in range(40) if t != 20])
    assert np.abs(got - want).mean() < 0.6 * np.abs(noisy - want).mean()
    assert abs((got - want)[..., 0].mean()) < 0.15  # no lag on uniform motion


@pytest.mark.slow
def test_tracking_on_a_real_annotated_face(real_face, landmarker) -> None:
    img, pts = real_face
    frames, gt = _clip(img, pts, 30, step=2.5, noise=3.0)
    raw = _track_points(_run(VideoLandmarker(landmarker, tracking=False, smoothing="none"),
                             frames), gt)
    tracked = _track_points(_run(VideoLandmarker(landmarker), frames), gt)
    assert np.isfinite(tracked).all()
    assert nme(tracked, gt, S68).mean() < nme(raw, gt, S68).mean() + 0.002
    assert nmj(tracked, gt, S68) < nmj(raw, gt, S68) / 2


# --- options (VideoLandmarkerOptions) ---------------------------------------------------------

#: Every option away from its default (flow on, so the flow-tuned table applies).
_OPTIONS = {"tracking": True, "detect_every": 3, "min_confidence": 0.2, "match_iou": 0.4,
            "smoothing": "kalman", "smoothing_params": {"min_cutoff": 0.3},
            "confidence_weighting": True, "max_faces": 1, "crop_from": "raw", "flow": True,
            "flow_crops": False, "blink_params": {"t_low": 0.75, "min_frames": 2}}


def test_video_options_and_keywords_give_identical_tracks(landmarker) -> None:
    img = read_image(ASTRO)
    frames, _ = _clip(img, landmarker.predict(img)[0].landmarks, 8, step=2.0, noise=2.0)
    opts = VideoLandmarkerOptions(**_OPTIONS)
    by_options, by_keywords = (VideoLandmarker(landmarker, options=opts),
                               VideoLandmarker(landmarker, **_OPTIONS))
    assert by_options.options is opts and by_keywords.options == opts
    a, b = _run(by_options, frames), _run(by_keywords, frames)
    assert [[f.track for f in fs] for fs in a] == [[f.track for f in fs] for fs in b]
    assert all(len(fs) == 1 for fs in a)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa[0].landmarks, fb[0].landmarks)
        np.testing.assert_array_equal(fa[0].raw_landmarks, fb[0].raw_landmarks)
    assert by_options.detector_runs == by_keywords.detector_runs == 3  # frames 0, 3, 6
    assert by_options.smoothing_params == {**SMOOTHER_PARAMS["kalman"], "min_cutoff": 0.3}
    # the options' defaults are the keywords' defaults
    plain = VideoLandmarker(landmarker)
    assert plain.options == VideoLandmarkerOptions()
    assert plain.smoothing_params == SMOOTHER_PARAMS[DEFAULT_SMOOTHING]
    assert (VideoLandmarkerOptions(flow=False).resolved_smoothing_params()
            == SMOOTHER_PARAMS_NO_FLOW[DEFAULT_SMOOTHING])


def test_video_options_with_a_keyword_is_an_error_naming_the_clash(landmarker) -> None:
    opts = VideoLandmarkerOptions(smoothing="none")
    with pytest.raises(ValueError, match=r"got options= and the keyword\(s\) detect_every, flow"):
        VideoLandmarker(landmarker, options=opts, detect_every=5, flow=False)
    with pytest.raises(ValueError, match="smoothing"):  # even when the values agree
        VideoLandmarker(landmarker, options=opts, smoothing="none")
    with pytest.raises(TypeError, match="options must be a VideoLandmarkerOptions"):
        VideoLandmarker(landmarker, options=landmarker.options)


@pytest.mark.parametrize(("options", "error", "problem"), [
    ({"detect_every": 0}, ValueError, "detect_every must be >= 1"),
    ({"smoothing": "savgol"}, ValueError, "smoothing must be one of"),
    ({"match_iou": 0.0}, ValueError, "match_iou must be in (0, 1]"),
    ({"match_iou": 1.5}, ValueError, "match_iou must be in (0, 1]"),
    ({"min_confidence": float("nan")}, ValueError, "min_confidence must be a finite number"),
    ({"max_faces": 0}, ValueError, "max_faces must be an integer >= 1"),
    ({"crop_from": "box"}, ValueError, "crop_from must be 'smoothed' or 'raw'"),
    ({"smoothing_params": {"min_cutoff": 0.0}}, ValueError, "min_cutoff"),
    ({"smoothing_params": {"no_such": 1.0}}, TypeError, "no_such"),
    ({"blink_params": {"t_low": 2.0, "t_high": 1.0}}, ValueError, "t_low"),
])
def test_bad_video_option_values_are_refused_before_a_model_loads(options, error, problem,
                                                                  monkeypatch) -> None:
    import dataclasses

    import faceland.tracking

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(faceland.tracking, "FaceLandmarker", no_model)
    with pytest.raises(error, match=re.escape(problem)):
        VideoLandmarkerOptions(**options)
    with pytest.raises(error, match=re.escape(problem)):
        VideoLandmarker(**options)  # landmarker None: the default one would be built after
    with pytest.raises(error, match=re.escape(problem)):
        dataclasses.replace(VideoLandmarkerOptions(), **options)


# --- CLI --------------------------------------------------------------------------------------

def _write_video(path: Path, frames, fps: float = 10.0) -> None:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        vw.write(np.ascontiguousarray(f[..., ::-1]))
    vw.release()


def test_cli_video_jsonl_format_and_smoothers(tmp_path, capsys) -> None:
    img = cv2.resize(read_image(ASTRO), (256, 256))
    frames = [np.roll(img, k, axis=1) for k in range(8)] + [np.zeros_like(img)] * 2
    _write_video(tmp_path / "clip.avi", frames)
    for smoothing in ("kalman", "one_euro", "savgol", "none"):
        out = tmp_path / smoothing
        assert main(["predict", str(tmp_path / "clip.avi"), "--out", str(out),
                     "--smoothing", smoothing]) == 0
        lines = [json.loads(x) for x in (out / "clip.jsonl").read_text().splitlines()]
        assert [x["frame"] for x in lines] == list(range(10))
        assert lines[3]["time_ms"] == pytest.approx(300.0)
        face = lines[0]["faces"][0]
        assert set(face) == {"track", "box", "score", "landmarks", "point_scores", "landmarks5",
                             "pose", "openness", "blink", "blinks"}
        assert len(face["landmarks"]) == 68 and len(face["point_scores"]) == 68
        assert lines[-1]["faces"] == []  # no face: the frame is still written
        assert (out / "clip.mp4").stat().st_size > 0
    assert "frames/s" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "clip.avi"), "--out", str(tmp_path / "no_flow"),
                 "--no-flow"]) == 0
    flow, no_flow = ([json.loads(x)["faces"] for x in (tmp_path / d / "clip.jsonl")
                      .read_text().splitlines()] for d in ("one_euro", "no_flow"))
    assert flow[0] == no_flow[0]  # the first frame has no motion to measure
    assert flow[5][0]["landmarks"] != no_flow[5][0]["landmarks"]


def test_cli_camera_that_cannot_be_opened(tmp_path, capsys) -> None:
    rc = main(["predict", "--camera", "97", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "camera 97: cannot be opened" in err and "Traceback" not in err
    assert main(["predict", "--camera", "0", "--smoothing", "savgol", "--out",
                 str(tmp_path)]) == 2
    assert main(["predict", "--out", str(tmp_path)]) == 2


def test_cli_camera_stream_with_a_fake_device(tmp_path, monkeypatch) -> None:
    import faceland.data.formats as formats

    img = read_image(ASTRO)

    class FakeCamera:  # what cv2.VideoCapture(0) gives: frames until released
        def __init__(self, index):
            self.index, self.n = index, 0

        def isOpened(self):
            return self.index == 0

        def get(self, prop):
            return 0.0

        def read(self):
            self.n += 1
            return True, np.ascontiguousarray(np.roll(img, self.n, axis=1)[..., ::-1])

        def release(self):
            pass

    monkeypatch.setattr(formats.cv2, "VideoCapture", FakeCamera)
    assert main(["predict", "--camera", "0", "--max-frames", "4", "--out", str(tmp_path)]) == 0
    lines = [json.loads(x) for x in (tmp_path / "camera0.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines] == [0, 1, 2, 3]
    times = [x["time_ms"] for x in lines]
    assert times == sorted(times) and len(set(times)) == 4
    assert all(x["faces"][0]["track"] == 0 for x in lines)
    assert (tmp_path / "camera0.mp4").stat().st_size > 0


def test_a_false_detection_on_background_is_not_tracked(landmarker) -> None:
    from faceland.detectors import Detection

    img = read_image(ASTRO)
    real = landmarker.detector

    class WithFalsePositive:  # the real detector plus a "face" on the plain background
        name = "test"

        def detect(self, image):
            return [*real.detect(image), Detection(np.array([20.0, 380.0, 110.0, 490.0]), 0.9)]

        def to_landmark_box(self, box):
            return real.to_landmark_box(box)

    lm = FaceLandmarker(detector=None)
    lm.detector = WithFalsePositive()
    out = _run(VideoLandmarker(lm), [img] * 3)
    assert [len(f) for f in out] == [1, 1, 1]
    assert out[0][0].landmarks[:, 0].mean() > 150  # the real face, not the corner


# --- optical flow -----------------------------------------------------------------------------
def test_face_flow_measures_a_known_similarity_on_a_real_face(landmarker) -> None:
    img = read_image(ASTRO)
    pts = landmarker.predict(img)[0].landmarks
    c = landmark_box(pts).reshape(2, 2).mean(0)
    rng = np.random.default_rng(3)
    flow = FaceFlow()
    errs = []
    for _ in range(5):
        m = cv2.getRotationMatrix2D(tuple(map(float, c)), float(rng.uniform(-4, 4)),
                                    float(rng.uniform(0.95, 1.05)))
        m[:, 2] += rng.uniform(-6, 6, 2)
        moved = cv2.warpAffine(img, m, img.shape[1::-1], flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        flow.reference(img, landmark_box(pts))
        got = flow(moved)
        assert got is not None
        errs.append(np.abs(apply_affine(pts, got) - apply_affine(pts, m)).max())
        assert flow(moved) is None  # a reference is used once
    assert max(errs) < 0.5, errs  # pixels, on a ~100 px wide face reduced to 96 px
    flat = np.full((200, 200, 3), 128, np.uint8)
    flow.reference(flat, np.array([50.0, 50.0, 150.0, 150.0]))  # no corners to follow
    assert flow(flat) is None
    with pytest.raises(ValueError, match="max_side"):
        FaceFlow(max_side=8)


def test_video_landmarker_reports_the_measured_motion(landmarker) -> None:
    img = read_image(ASTRO)
    ref = landmarker.predict(img)[0].landmarks
    frames, gt = _clip(img, ref, 6, step=2.0)
    out = _run(VideoLandmarker(landmarker), frames)
    assert out[0][0].motion is None  # a new track has no previous frame
    for faces in out[1:]:
        m = faces[0].motion
        np.testing.assert_allclose(m[:, :2], np.eye(2), atol=0.01)
        assert m[0, 2] == pytest.approx(2.0, abs=0.2) and abs(m[1, 2]) < 0.2
    assert all(f[0].motion is None for f in _run(VideoLandmarker(landmarker, flow=False),
                                                  frames))


# --- frames that change size, bad frames, bad time stamps --------------------------------------

def test_frame_size_change_restarts_tracking_with_one_warning(landmarker) -> None:
    """A stream whose frames change size (a camera switching resolution, clips spliced
    together): before, a cv2 traceback from the optical flow of the old face region. Now the
    old tracks are dropped with one warning per change and the face is found again in the new
    frames, with a new track id."""
    import warnings

    img = read_image(ASTRO)
    ref = landmarker.predict(img)[0].landmarks
    wide, wide_gt = _clip(img, ref, 4, step=1.5, size=(1280, 720))  # the face near x = 640
    small_img = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)
    small_ref = (ref + 0.5) * 0.5 - 0.5  # the same face at half size, pixel centres
    small, small_gt = _clip(small_img, small_ref, 4, step=1.0, size=(320, 240))
    frames = [*wide, *small, *wide]
    gt = np.concatenate([wide_gt, small_gt, wide_gt])
    video = VideoLandmarker(landmarker, detect_every=30)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = _run(video, frames)
    changes = [str(w.message) for w in rec if "frame size changed" in str(w.message)]
    assert changes == [
        "frame 4: frame size changed from 1280 x 720 to 320 x 240 pixels; tracking restarts "
        "(dropped 1 track(s), the detector runs on this frame)",
        "frame 8: frame size changed from 320 x 240 to 1280 x 720 pixels; tracking restarts "
        "(dropped 1 track(s), the detector runs on this frame)"]
    assert [len(f) for f in out] == [1] * 12
    assert [f[0].track for f in out] == [0] * 4 + [1] * 4 + [2] * 4  # a new scene, new ids
    assert video.scene_resets == 2 and video.detector_runs == 3  # frames 0, 4 and 8 only
    err = nme(_track_points(out, gt), gt, S68)
    assert err.max() < 0.08, err  # on the face in every frame, small frames included


def test_face_flow_gives_no_motion_across_a_size_change(landmarker) -> None:
    img = read_image(ASTRO)
    box = landmark_box(landmarker.predict(img)[0].landmarks)
    big = np.zeros((720, 1280, 3), np.uint8)
    big[100:612, 700:1212] = img
    flow = FaceFlow()
    flow.reference(big, box + [700, 100, 700, 100])
    assert flow(cv2.resize(img, (160, 120))) is None  # before: cv2.error on an empty region
    flow.reference(img, box)
    assert flow(img) is not None  # the same size still measures the motion


@pytest.mark.parametrize(("frame", "problem"), [
    (np.zeros((48, 64, 3), np.float32), r"\(48, 64, 3\) float32"),
    (np.zeros((48, 64, 3), np.uint16), "uint16"),
    (np.zeros((48, 64, 4), np.uint8), r"\(48, 64, 4\) uint8"),
    (np.zeros((48, 64), np.uint8), r"\(48, 64\) uint8"),
    (np.zeros((3, 48, 64), np.uint8), r"\(3, 48, 64\) uint8"),
    (np.zeros((0, 64, 3), np.uint8), "empty image"),
    ([[1, 2, 3]], "got list"),
])
def test_bad_frame_is_a_value_error_naming_the_frame(landmarker, frame, problem) -> None:
    video = VideoLandmarker(landmarker)
    video.process(read_image(ASTRO), 0.0)
    with pytest.raises(ValueError, match=f"^frame 1: .*{problem}"):
        video.process(frame, 40.0)
    assert len(video.process(read_image(ASTRO), 80.0)) == 1  # the stream goes on


@pytest.mark.parametrize("stamp", [float("nan"), float("inf"), -float("inf"), None, "40",
                                   True])
def test_bad_time_stamp_is_a_value_error(landmarker, stamp) -> None:
    """Before: a NaN first time stamp was taken, and every later one then 'did not increase';
    None gave a TypeError."""
    video = VideoLandmarker(landmarker)
    with pytest.raises(ValueError, match="frame 0: timestamp_ms must be a finite number"):
        video.process(read_image(ASTRO), stamp)
    video.process(read_image(ASTRO), np.float32(10.0))  # numpy numbers are numbers
    video.process(read_image(ASTRO), 20)
    assert video.frames == 2


def test_a_tracked_face_box_is_the_same_kind_as_a_photo_face_box(landmarker) -> None:
    """TrackedFace.box is a face box in the detector's convention, as Face.box of a photo is
    (issue 28: one name, one meaning), not the tight landmark box; landmark_box is that."""
    img = read_image(ASTRO)
    photo = landmarker.predict(img)[0]
    video = VideoLandmarker(landmarker, options=VideoLandmarkerOptions(smoothing="none"))
    tracked = _run(video, [img] * 4)
    iou = []
    for faces in tracked:
        (f,) = faces
        iou.append(_iou(f.box, photo.box))
        np.testing.assert_allclose(f.landmark_box, landmark_box(f.landmarks))
    assert min(iou) > 0.9, iou  # the same box kind (0.94 on 2026-12-06; the tight box: 0.74)
    # ...and clearly not the tight landmark box (RetinaFace's box reaches the forehead)
    assert _iou(photo.landmark_box, photo.box) < 0.8


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    from faceland.geometry import box_iou

    return float(box_iou(np.asarray(a)[None], np.asarray(b)[None])[0, 0])
