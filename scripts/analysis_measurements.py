"""Measurements of faceland.face_analysis on real faces (issue 27): head pose, openness, blinks,
alignment, and what they cost. Prints the numbers and writes them to
``benchmarks/results/analysis.json`` (documented in docs/analysis.md).

    python scripts/analysis_measurements.py [--data ../shared/data] [--out benchmarks/results]

Sections (each on real, annotated public data; the default model through ONNX Runtime):

(a) roll: 300W common faces (554) rotated in-plane about the image centre by known angles
    (-30 .. 30 deg, same canvas, black border), default detector + model: the change of the
    measured roll against the rotation (exact ground truth), and the roll of the annotated points
    rotated the same way (exactness of the fit's convention).
(b) MTFL pose classes (1 left profile .. 5 right profile): yaw thresholds between adjacent
    classes chosen on MTFL train (all faces of classes 1, 2, 4, 5 and 1000 of class 3, seed 0),
    then yaw sign and class agreement on all 2995 MTFL test faces (default detector).
(c) pose from predicted points against pose from the annotated points, 300W common, boxes from
    the annotations (landmark box, x1.25 crop): median absolute difference per angle.
(d) EAR / MAR from predicted against annotated points on 300W common (and YouTube-Faces frames):
    Pearson r and mean absolute error.
(e) blinks: the real closed-eye faces of 300W common and YouTube-Faces (annotated mean EAR
    < 0.15) against open ones; blink clips built from real YouTube-Faces frames of one video
    (an open frame 15 times, a closed frame 4 times, the open frame 15 times; no real blink
    video is in the data) through VideoLandmarker; a synthetic EAR sequence for the detector.
(f) alignment: eye centres predicted on the 112 px ArcFace chips of 300W common faces against
    the template's.
(g) cost per face of pose + openness + five points, and of a blink update.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from faceland.data.datasets import load_300w, load_mtfl, load_ytf
from faceland.data.formats import read_image
from faceland.face_analysis import (
    ARCFACE_TEMPLATE_112,
    BlinkDetector,
    align_face,
    detect_blinks,
    head_pose,
    landmarks5,
    openness,
)
from faceland.geometry import apply_affine, landmark_box
from faceland.inference import FaceLandmarker
from faceland.metrics import mid_ranks
from faceland.profiling import benchmark_metadata
from faceland.tracking import VideoLandmarker

REPO = Path(__file__).resolve().parents[1]
ANGLES = ("yaw", "pitch", "roll")


def _pose_array(p: dict | None) -> np.ndarray:
    return np.array([p[a] for a in ANGLES]) if p is not None else np.full(3, np.nan)


def _nearest(faces, points: np.ndarray):
    """The face whose landmarks' mean is nearest the annotated points' mean, if it lies within
    half the annotated box's size (else ``None``: a miss)."""
    if not faces:
        return None
    c = points.mean(0)
    f = min(faces, key=lambda f: float(np.linalg.norm(f.landmarks.mean(0) - c)))
    b = landmark_box(points)
    return f if np.linalg.norm(f.landmarks.mean(0) - c) < 0.5 * max(b[2] - b[0], b[3] - b[1]) else None


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float) - np.mean(a), np.asarray(b, float) - np.mean(b)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties count half (Mann-Whitney)."""
    r = mid_ranks(np.concatenate([pos, neg]))
    n1, n0 = len(pos), len(neg)
    return float((r[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _stats(x: np.ndarray) -> dict:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return {"n": int(len(x)), "median": round(float(np.median(x)), 3),
            "p90": round(float(np.percentile(x, 90)), 3), "mean": round(float(x.mean()), 3),
            "max": round(float(x.max()), 3)}


# --------------------------------------------------------------------------------------------
def roll_section(lm: FaceLandmarker, recs, angles: list[float]) -> dict:
    """(a) in-plane rotations by known angles (clockwise as displayed for > 0)."""
    per_angle: dict[float, list] = {a: [] for a in angles}
    exact = []
    misses = {a: 0 for a in angles}
    for r in recs:
        img = read_image(r.image)
        h, w = img.shape[:2]
        centre = ((w - 1) / 2, (h - 1) / 2)
        base_gt = head_pose(r.points, (w, h))["roll"]
        rolls = {}
        for a in angles:
            # OpenCV's positive angle turns counter-clockwise as displayed: -a turns clockwise
            m = cv2.getRotationMatrix2D(centre, -a, 1.0)
            rot = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT) if a else img
            pts = apply_affine(r.points, m)
            gt = head_pose(pts, (w, h))["roll"]
            exact.append(abs(_wrap(gt - base_gt - a)))
            f = _nearest(lm.predict(rot), pts)
            if f is None or f.pose is None:
                misses[a] += 1
                rolls[a] = (np.nan, gt)
            else:
                rolls[a] = (f.pose["roll"], gt)
        for a in angles:
            pred, gt = rolls[a]
            per_angle[a].append((_wrap(pred - rolls[0.0][0] - a), _wrap(pred - gt)))
    out = {"angles_deg": angles, "faces": len(recs),
           "annotated_points_exactness_max_abs_deg": float(np.max(exact)), "per_angle": {}}
    change, vs_gt = [], []
    for a in angles:
        e = np.array(per_angle[a])
        out["per_angle"][str(a)] = {"missed": misses[a],
                                    "abs_error_of_change": _stats(np.abs(e[:, 0])),
                                    "abs_diff_to_annotated": _stats(np.abs(e[:, 1]))}
        if a:
            change += list(np.abs(e[:, 0]))
        vs_gt += list(np.abs(e[:, 1]))
    out["all_nonzero_angles_abs_error_of_change"] = _stats(np.array(change))
    out["all_angles_abs_diff_to_annotated"] = _stats(np.array(vs_gt))
    return out


def _wrap(d: float) -> float:
    return float((d + 180.0) % 360.0 - 180.0)


# --------------------------------------------------------------------------------------------
def _mtfl_yaws(lm: FaceLandmarker, recs, idx) -> tuple:
    """Predicted yaw, MTFL pose class and face of each record in ``idx`` found by ``lm``, and
    the number missed."""
    y, c, faces, missed = [], [], [], 0
    for i in idx:
        r = recs[i]
        img = read_image(r.image)
        f = _nearest(lm.predict(img), r.points)
        if f is None or f.pose is None:
            missed += 1
            continue
        y.append(f.pose["yaw"])
        c.append(int(r.meta["pose"]))
        faces.append(f)
    return np.array(y), np.array(c), faces, missed


def _fit_thresholds(y: np.ndarray, c: np.ndarray) -> list[float]:
    """Per boundary between classes a and a + 1: the best pairwise balanced accuracy."""
    out = []
    for a in range(1, 5):
        ya, yb = y[c == a], y[c == a + 1]
        cand = np.unique(np.concatenate([ya, yb]))
        score = [(ya < t).mean() + (yb >= t).mean() for t in cand]
        out.append(float(cand[int(np.argmax(score))]))
    return out


def _balanced(y: np.ndarray, c: np.ndarray, th: list[float]) -> float:
    """Balanced accuracy of the five classes that thresholds ``th`` give to yaws ``y``."""
    pred = 1 + np.searchsorted(np.array(th), y, side="right")
    return float(np.mean([(pred[c == k] == k).mean() for k in range(1, 6)]))


def mtfl_section(lm: FaceLandmarker, root: Path) -> dict:
    """(b) yaw against MTFL's five pose classes."""
    train = load_mtfl(root, "train")
    test = load_mtfl(root, "test")
    cls_tr = np.array([int(r.meta["pose"]) for r in train])
    pts = np.array([r.points for r in train])
    # which way "left profile" turns: nose tip x minus the eye centres' mean x, in eye distances
    off = (pts[:, 2, 0] - pts[:, :2, 0].mean(1)) / np.linalg.norm(pts[:, 1] - pts[:, 0], axis=1)
    direction = {str(c): round(float(np.median(off[cls_tr == c])), 3) for c in range(1, 6)}
    rng = np.random.default_rng(0)
    sel = [i for i in range(len(train)) if cls_tr[i] != 3] + sorted(
        rng.choice(np.where(cls_tr == 3)[0], 1000, replace=False).tolist())

    y_tr, c_tr, f_tr, miss_tr = _mtfl_yaws(lm, train, sel)
    # candidate point sets, on train only: balanced class accuracy of each set with its own
    # train thresholds (in-sample); POSE_POINTS leaves the mouth corners out for pitch (a smile
    # raises them), at a small cost in yaw classes here
    sets = {"nose+eyes (POSE_POINTS)": list(range(27, 48)),
            "nose+eyes+mouth corners": [*range(27, 48), 48, 54],
            "+ brows": [*range(17, 48), 48, 54], "nose+eyes+mouth": list(range(27, 68)),
            "all but the jaw": list(range(17, 68)), "all 68": list(range(68))}
    selection = {}
    for name, idx in sets.items():
        ys = np.array([head_pose(f.landmarks, f.image_size, idx)["yaw"] for f in f_tr])
        selection[name] = round(_balanced(ys, c_tr, _fit_thresholds(ys, c_tr)), 4)
    thresholds = _fit_thresholds(y_tr, c_tr)
    y_te, c_te, _, miss_te = _mtfl_yaws(lm, test, range(len(test)))
    pred = 1 + np.searchsorted(np.array(thresholds), y_te, side="right")
    conf = np.zeros((5, 5), int)
    for t, p in zip(c_te, pred, strict=True):
        conf[t - 1, p - 1] += 1
    side = c_te != 3
    sign_ok = np.sign(y_te[side]) == np.where(c_te[side] < 3, -1, 1)
    per_class_sign = {str(c): round(float((np.sign(y_te[c_te == c]) == (-1 if c < 3 else 1)).mean()), 4)
                      for c in (1, 2, 4, 5)}
    return {"left_profile_direction": {"nose_offset_median_by_class_eye_distances": direction,
                                       "reading": "class 1 (left profile): nose toward smaller "
                                                  "image x, i.e. yaw < 0 in faceland's convention"},
            "train_faces_used": len(sel), "train_missed": miss_tr,
            "point_set_selection_train_balanced_accuracy": selection,
            "yaw_thresholds_deg": [round(t, 2) for t in thresholds],
            "train_median_yaw_by_class": {str(c): round(float(np.median(y_tr[c_tr == c])), 2)
                                          for c in range(1, 6)},
            "test_faces": len(test), "test_missed": miss_te,
            "test_median_yaw_by_class": {str(c): round(float(np.median(y_te[c_te == c])), 2)
                                         for c in range(1, 6)},
            "test_sign_agreement_non_frontal": round(float(sign_ok.mean()), 4),
            "test_sign_agreement_by_class": per_class_sign,
            "test_class_accuracy": round(float((pred == c_te).mean()), 4),
            "test_class_balanced_accuracy": round(float(np.mean(
                [(pred[c_te == c] == c).mean() for c in range(1, 6)])), 4),
            "test_within_one_class": round(float((np.abs(pred - c_te) <= 1).mean()), 4),
            "test_confusion_rows_true_cols_pred": conf.tolist()}


# --------------------------------------------------------------------------------------------
def gt_box_predictions(lm: FaceLandmarker, recs) -> tuple[np.ndarray, np.ndarray, list]:
    """Predicted and annotated points with boxes from the annotations, and image sizes."""
    pred, sizes = [], []
    for r in recs:
        img = read_image(r.image)
        pred.append(lm.landmarks_from_boxes(img, [landmark_box(r.points)])[0])
        sizes.append((img.shape[1], img.shape[0]))
    return np.array(pred), np.array([r.points for r in recs]), sizes


def pose_agreement(pred, gt, sizes) -> dict:
    """(c) pose of predicted against annotated points."""
    p = np.array([_pose_array(head_pose(x, s)) for x, s in zip(pred, sizes, strict=True)])
    g = np.array([_pose_array(head_pose(x, s)) for x, s in zip(gt, sizes, strict=True)])
    d = np.abs(p - g)
    return {"faces": len(gt), "fit_failures_pred": int(np.isnan(p).any(1).sum()),
            "fit_failures_annotated": int(np.isnan(g).any(1).sum()),
            "abs_diff_deg": {a: _stats(d[:, i]) for i, a in enumerate(ANGLES)},
            "annotated_pose_median_deg": {a: round(float(np.nanmedian(g[:, i])), 2)
                                          for i, a in enumerate(ANGLES)},
            "annotated_pose_p5_p95_deg": {a: [round(float(np.nanpercentile(g[:, i], q)), 1)
                                              for q in (5, 95)] for i, a in enumerate(ANGLES)}}


def openness_agreement(pred, gt) -> dict:
    """(d) EAR / MAR of predicted against annotated points."""
    op = np.array([[openness(x)[k] for k in ("ear_left", "ear_right", "mar")] for x in pred])
    og = np.array([[openness(x)[k] for k in ("ear_left", "ear_right", "mar")] for x in gt])
    ear_p, ear_g = op[:, :2].ravel(), og[:, :2].ravel()
    return {"faces": len(gt),
            "ear": {"pearson_r": round(pearson(ear_p, ear_g), 4),
                    "mae": round(float(np.abs(ear_p - ear_g).mean()), 4),
                    "annotated_median": round(float(np.median(ear_g)), 4),
                    "predicted_median": round(float(np.median(ear_p)), 4)},
            "mar": {"pearson_r": round(pearson(op[:, 2], og[:, 2]), 4),
                    "mae": round(float(np.abs(op[:, 2] - og[:, 2]).mean()), 4),
                    "annotated_median": round(float(np.median(og[:, 2])), 4),
                    "predicted_median": round(float(np.median(op[:, 2])), 4)}}


def closed_eyes(pred, gt) -> dict:
    """(e) predicted EAR of faces whose annotated eyes are closed (mean EAR < 0.15) against
    open ones (> 0.2)."""
    mp = np.array([np.mean([openness(x)["ear_left"], openness(x)["ear_right"]]) for x in pred])
    mg = np.array([np.mean([openness(x)["ear_left"], openness(x)["ear_right"]]) for x in gt])
    closed, opened = mg < 0.15, mg > 0.2
    out = {"closed_faces": int(closed.sum()), "open_faces": int(opened.sum())}
    if closed.any():
        out.update({
            "annotated_ear_closed_median": round(float(np.median(mg[closed])), 4),
            "predicted_ear_closed_median": round(float(np.median(mp[closed])), 4),
            "predicted_ear_open_median": round(float(np.median(mp[opened])), 4),
            "ratio_closed_over_open_median": round(float(np.median(mp[closed]) / np.median(mp[opened])), 3),
            "auroc_predicted_ear_closed_vs_open": round(auroc(-mp[closed], -mp[opened]), 4),
            "closed_recall_below_0.2": round(float((mp[closed] < 0.2).mean()), 4),
            "open_false_below_0.2": round(float((mp[opened] < 0.2).mean()), 4)})
    return out


def blink_clips(lm: FaceLandmarker, root: Path) -> dict:
    """(e) clips of real YouTube-Faces frames of one video: the open frame 15 times, the closed
    frame 4 times, the open frame 15 times (30 frames/s); controls: the open frame 34 times. Each
    frame drifts 0.3 px right per frame and gets Gaussian pixel noise (sd 4 grey levels, seed 0),
    so the landmarks jitter as in a real video. Blinks counted by VideoLandmarker's per-track
    detector (defaults); also each pair's EAR ratio closed / open with annotation boxes."""
    recs = load_ytf(root)
    by_video: dict[tuple, list] = {}
    for r in recs:
        person, nm = r.image.stem.rsplit("_", 1)
        ear = np.mean([openness(r.points)["ear_left"], openness(r.points)["ear_right"]])
        by_video.setdefault((person, nm[:-1]), []).append((ear, r))
    pairs = []
    for v in by_video.values():
        v = sorted(v, key=lambda x: x[0])
        if v[0][0] < 0.15 and v[-1][0] > 0.22:
            pairs.append((v[-1][1], v[0][1]))
    rng = np.random.default_rng(0)
    found, false_pos, raw_dip, smooth_dip, ratio, ratio_gt = [], [], [], [], [], []
    for open_rec, closed_rec in pairs:
        a, b = read_image(open_rec.image), read_image(closed_rec.image)
        ea, eb = (np.mean([openness(x)["ear_left"], openness(x)["ear_right"]]) for x in (
            lm.landmarks_from_boxes(a, [landmark_box(open_rec.points)])[0],
            lm.landmarks_from_boxes(b, [landmark_box(closed_rec.points)])[0]))
        ratio.append(eb / ea)
        ratio_gt.append(np.mean([openness(closed_rec.points)[k] for k in ("ear_left", "ear_right")])
                        / np.mean([openness(open_rec.points)[k] for k in ("ear_left", "ear_right")]))
        h, w = max(a.shape[0], b.shape[0]) + 40, max(a.shape[1], b.shape[1]) + 40
        fa, fb = _canvas(a, h, w), _canvas(b, h, w)
        for clip, store in (([fa] * 15 + [fb] * 4 + [fa] * 15, found), ([fa] * 34, false_pos)):
            video = VideoLandmarker(lm)  # as faceland predict runs it (One Euro smoothing)
            raw_video = VideoLandmarker(lm, smoothing="none")  # the unsmoothed landmarks
            ears, raw, blinks = [], [], 0
            for i, fr in enumerate(clip):
                m = np.array([[1.0, 0.0, 0.3 * i], [0.0, 1.0, 0.0]])
                fr = cv2.warpAffine(fr, m, (w, h), flags=cv2.INTER_LINEAR)
                fr = np.clip(fr + rng.normal(0, 4, fr.shape), 0, 255).astype(np.uint8)
                faces = video.process(fr, i * 1000.0 / 30)
                faces_raw = raw_video.process(fr, i * 1000.0 / 30)
                if faces:
                    blinks = faces[0].blinks or 0
                for fs, dst in ((faces, ears), (faces_raw, raw)):
                    # the smoothed landmarks' EAR (a tracked face reports the unsmoothed one)
                    o = openness(fs[0].landmarks) if fs else None
                    dst.append((o["ear_left"] + o["ear_right"]) / 2 if o else np.nan)
            store.append(blinks)
            if store is found:
                raw, ears = np.array(raw), np.array(ears)
                raw_dip.append(1 - np.nanmin(raw[15:19]) / np.nanmedian(raw[:15]))
                smooth_dip.append(1 - np.nanmin(ears[15:19]) / np.nanmedian(ears[:15]))
    found, false_pos, ratio = np.array(found), np.array(false_pos), np.array(ratio)
    return {"clips": len(pairs),
            "source": "ytf68/train: videos with an annotated closed frame (mean EAR < 0.15) and "
                      "an annotated open frame (> 0.22); frames padded by 20 px onto one canvas",
            "annotated_ear_ratio_closed_over_open_median": round(float(np.median(ratio_gt)), 3),
            "predicted_ear_ratio_closed_over_open_p10_p50_p90": [
                round(float(np.percentile(ratio, q)), 3) for q in (10, 50, 90)],
            "pairs_with_predicted_ratio_below_0.8": int((ratio < 0.8).sum()),
            "clips_with_exactly_one_blink": int((found == 1).sum()),
            "clips_with_a_blink": int((found >= 1).sum()),
            "control_clips_with_a_false_blink": int((false_pos >= 1).sum()),
            "ear_dip_raw_median": round(float(np.median(raw_dip)), 3),
            "ear_dip_smoothed_median": round(float(np.median(smooth_dip)), 3)}


def _canvas(im: np.ndarray, h: int, w: int) -> np.ndarray:
    """``im`` on a black ``h x w`` canvas at (20, 20)."""
    c = np.zeros((h, w, 3), np.uint8)
    c[20:20 + im.shape[0], 20:20 + im.shape[1]] = im
    return c


def synthetic_blinks(seed: int = 0) -> dict:
    """(e) the detector alone on a synthetic EAR sequence: open EAR 0.30 with Gaussian noise
    (sd 0.01), 20 blinks of 2-8 frames down to 0.18-0.22 (a landmark model's closed EAR),
    single-frame noise dips to 0.27, 30 frames/s."""
    rng = np.random.default_rng(seed)
    n = 3000
    ear = 0.30 + rng.normal(0, 0.01, n)
    starts = np.sort(rng.choice(np.arange(60, n - 20, 140), 20, replace=False))
    truth = []
    for s in starts:
        d = int(rng.integers(2, 9))
        ear[s:s + d] = rng.uniform(0.18, 0.22) + rng.normal(0, 0.005, d)
        truth.append((int(s), int(s + d)))
    for s in rng.choice(np.arange(n), 30, replace=False):
        if all(not (a - 3 <= s <= b + 3) for a, b in truth):
            ear[s] = 0.27
    got = detect_blinks(ear)
    hit = sum(any(a <= g0 <= b and g1 == b for g0, g1 in got) for a, b in truth)
    return {"frames": n, "true_blinks": len(truth), "detected": len(got), "matched": int(hit)}


def alignment_section(lm: FaceLandmarker, recs) -> dict:
    """(f) predicted eye centres on the aligned chips against the template's."""
    errs, fit, chip_vs_image = [], [], []
    for r in recs:
        img = read_image(r.image)
        f = _nearest(lm.predict(img), r.points)
        if f is None:
            continue
        chip, m = align_face(img, f.landmarks)
        mapped = apply_affine(f.landmarks, m)
        p = lm.landmarks_from_boxes(chip, [landmark_box(mapped)])[0]
        five = landmarks5(p)
        errs += list(np.linalg.norm(five[:2] - ARCFACE_TEMPLATE_112[:2], axis=1))
        fit += list(np.linalg.norm(landmarks5(mapped)[:2] - ARCFACE_TEMPLATE_112[:2], axis=1))
        chip_vs_image += list(np.linalg.norm(five[:2] - landmarks5(mapped)[:2], axis=1))
    e = np.array(errs)
    return {"eyes": len(e), "chip_eyes_to_template_px": _stats(e),
            "within_2px": round(float((e < 2).mean()), 4),
            "similarity_fit_residual_px": _stats(np.array(fit)),
            "chip_eyes_to_mapped_image_eyes_px": _stats(np.array(chip_vs_image))}


def cost_section(lm: FaceLandmarker, pred, sizes) -> dict:
    """(g) per-face cost of pose + openness + five points, and of one blink update; and, for
    scale, a video frame of the reference clip (one face, 640 x 480) through
    VideoLandmarker.process (which includes the blink update) and Face.to_dict (which computes
    pose, openness and five points)."""
    n = len(pred)
    t0 = time.perf_counter()
    for x, s in zip(pred, sizes, strict=True):
        head_pose(x, s)
    t1 = time.perf_counter()
    for x in pred:
        openness(x)
        landmarks5(x)
    t2 = time.perf_counter()
    det = BlinkDetector()
    for _ in pred:
        det.update(0.3)
    t3 = time.perf_counter()
    from faceland.profiling import reference_clip

    video, proc, todict = VideoLandmarker(lm), [], []
    for i, frame in enumerate(reference_clip(150)):
        a = time.perf_counter()
        faces = video.process(frame, i * 1000.0 / 30)
        b = time.perf_counter()
        [f.to_dict() for f in faces]
        proc.append(b - a)
        todict.append(time.perf_counter() - b)
    return {"faces": n, "pose_ms_per_face": round((t1 - t0) / n * 1e3, 4),
            "openness_and_five_points_ms_per_face": round((t2 - t1) / n * 1e3, 4),
            "blink_update_ms": round((t3 - t2) / n * 1e3, 4),
            "reference_clip_process_ms_per_frame_median": round(float(np.median(proc[10:])) * 1e3, 3),
            "reference_clip_to_dict_ms_per_frame_median": round(float(np.median(todict[10:])) * 1e3, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        print(f"no data at {data}", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    lm = FaceLandmarker()  # default model and detector, ONNX Runtime
    res = {"meta": benchmark_metadata("python scripts/analysis_measurements.py"),
           "model": lm.protocol()["model"], "runtime": lm.runtime}
    common = load_300w(data / "300w", "common")

    t = time.perf_counter()
    pred, gt, sizes = gt_box_predictions(lm, common)
    res["c_pose_pred_vs_annotated_300w_common"] = pose_agreement(pred, gt, sizes)
    res["d_openness_pred_vs_annotated_300w_common"] = openness_agreement(pred, gt)
    res["e_closed_eyes_300w_common"] = closed_eyes(pred, gt)
    res["g_cost"] = cost_section(lm, pred, sizes)
    print(f"(c, d, g) 300W common: {time.perf_counter() - t:.0f} s", file=sys.stderr)

    t = time.perf_counter()
    ytf = load_ytf(data / "ytf68" / "train")
    ypred, ygt, _ = gt_box_predictions(lm, ytf)
    res["d_openness_pred_vs_annotated_ytf"] = openness_agreement(ypred, ygt)
    res["e_closed_eyes_ytf"] = closed_eyes(ypred, ygt)
    res["e_blink_clips_ytf"] = blink_clips(lm, data / "ytf68" / "train")
    res["e_synthetic_blinks"] = synthetic_blinks()
    print(f"(d, e) YouTube-Faces: {time.perf_counter() - t:.0f} s", file=sys.stderr)

    t = time.perf_counter()
    res["a_roll_rotated_300w_common"] = roll_section(lm, common, [-30.0, -20.0, -10.0, 0.0, 10.0,
                                                                  20.0, 30.0])
    print(f"(a) roll: {time.perf_counter() - t:.0f} s", file=sys.stderr)

    t = time.perf_counter()
    res["b_mtfl_pose_classes"] = mtfl_section(lm, data / "mtfl")
    print(f"(b) MTFL: {time.perf_counter() - t:.0f} s", file=sys.stderr)

    t = time.perf_counter()
    res["f_alignment_300w_common"] = alignment_section(lm, common)
    print(f"(f) alignment: {time.perf_counter() - t:.0f} s", file=sys.stderr)

    res["wall_s"] = round(time.perf_counter() - t_start, 1)
    text = json.dumps(res, indent=1)
    print(text)
    from faceland.outputs import atomic_write_text

    atomic_write_text(Path(args.out) / "analysis.json", text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
