"""Video stability benchmark on real faces: NME, jitter (NMJ) and frames per second, per mode.

    python benchmarks/bench_stability.py --split common --json benchmarks/results/stability_common.json
    python benchmarks/bench_stability.py --split val --tune    # choose the One Euro defaults

No annotated video exists here, so clips are rendered, seeded, from real annotated still images
(300W; ``--split val``: the validation split of 300W train that training held out, for choosing
settings; ``--split common``: the test images, for the final measurement only). Each clip is
``--frames`` frames of 640 x 480 at 30 fps:

* ``static``: one placement of the image, only per-frame sensor noise (Gaussian, sigma 3 grey
  levels) and JPEG compression (quality 80) change;
* ``moving``: a smooth camera motion (sinusoidal pan of up to 60 px, zoom +-10 %, in-plane
  rotation +-12 degrees, random phases and rates of 0.2-0.6 Hz) plus the same noise and JPEG.

The ground truth goes through exactly the same affine warp as the pixels (OpenCV's warpAffine
maps 0-based pixel centres), so it is exact in every frame. The face's landmark box is scaled to
90-200 px in the frame (seeded). Modes (each a fresh :class:`faceland.tracking.VideoLandmarker`
per clip, with the shipped default model and detector):

* ``raw``: detector + landmarks on every frame, no smoothing (faceland before 2026-12);
* ``raw+one_euro``: the same, with the default smoother (and optical flow);
* ``tracking``: crops from the previous landmarks moved by the optical flow, detector every
  10 frames / on low confidence; ``tracking+no_flow``: crops from the previous landmarks;
* ``tracking+one_euro_points``: the paper's One Euro filter on every coordinate;
* ``tracking+kalman``: shape One Euro, motion adaptive Kalman, in the face's own frame;
* ``tracking+one_euro``: the default video path (shape and motion One Euro, in the face's own
  frame, the filters moved by the optical flow);
* ``tracking+kalman+no_flow``, ``tracking+one_euro+no_flow``: without optical flow (with
  :data:`faceland.tracking.SMOOTHER_PARAMS_NO_FLOW`; the first was the default before the flow);
* ``tracking+one_euro+weighting``: plus confidence-weighted cut-offs;
* ``tracking+one_euro+raw_crops``: crops from the unsmoothed landmarks (default: smoothed);
* ``tracking+one_euro+no_flow_crops``: crops not moved by the flow (smoother still told);
* ``tracking+savgol``: offline Savitzky-Golay of whole tracks (window 9, order 2).

``--tune`` (validation clips only) records unsmoothed tracking once without and once with
optical flow and replays a grid of smoother settings over each (exact: the crops do not depend
on the smoothing when they come from unsmoothed landmarks), choosing by the rule written into
its JSON; settings with flow are also replayed with the flow's motion halved (a flow that
misses half the motion) and must keep NME there too. Every smoother runs with its
:data:`faceland.tracking.SMOOTHER_PARAMS`.

Metrics per clip set: NME (IOD, percent, mean over frames with a face), NMJ (percent, see
:func:`faceland.metrics.nmj`), frames with no face on the subject (percent), and frames per
second of ``process`` alone (rendering excluded), all modes timed in the same run.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from faceland.data.datasets import FaceRecord, load_300w
from faceland.data.formats import read_image
from faceland.geometry import apply_affine, landmark_box, nearest_box
from faceland.inference import FaceLandmarker
from faceland.metrics import nme, nmj
from faceland.outputs import atomic_write_json
from faceland.profiling import benchmark_metadata
from faceland.schemes import get_scheme
from faceland.smoothing import LandmarkSmoother
from faceland.tracking import (
    DEFAULT_SMOOTHING,
    SMOOTHER_PARAMS,
    SMOOTHER_PARAMS_NO_FLOW,
    FaceFlow,
    VideoLandmarker,
    smooth_tracks,
)

REPO = Path(__file__).resolve().parents[1]
SIZE = (640, 480)
FPS = 30.0


def records(split: str, root: str) -> list[FaceRecord]:
    """The annotated stills: 300W common (test) or the validation split of 300W train."""
    if split == "common":
        return load_300w(root, "common")
    from faceland.training import load_config, train_val_records

    cfg = load_config(REPO / "configs" / "300w_mtfl_integral_dw_128.yaml")
    cfg.root = root
    return train_val_records(cfg)[1]


def render_clip(rec: FaceRecord, kind: str, frames: int, seed: int
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """``frames`` uint8 RGB frames of ``SIZE`` and their ``(T, K, 2)`` ground truth (pixels,
    0-based pixel centres). Deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    img = read_image(rec.image)
    box = landmark_box(rec.points)
    side = max(box[2] - box[0], box[3] - box[1])
    target = rng.uniform(90, 200)
    s0 = target / side
    if s0 < 1:  # shrink with area averaging first, so the per-frame warp does not alias
        h, w = img.shape[:2]
        size = (max(1, round(w * s0)), max(1, round(h * s0)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        sxy = np.array([size[0] / w, size[1] / h])
        pts, s0 = rec.points * sxy + (sxy - 1) / 2, 1.0  # 0-based pixel centres under resize
    else:
        pts = rec.points.copy()
    c = (landmark_box(pts)[:2] + landmark_box(pts)[2:]) / 2
    centre = np.array(SIZE, dtype=np.float64) / 2 + rng.uniform(-60, 60, 2)
    amp = np.array([rng.uniform(20, 60), rng.uniform(10, 40), rng.uniform(0.04, 0.10),
                    rng.uniform(4, 12)])  # pan x px, pan y px, zoom, rotation deg
    rate = rng.uniform(0.2, 0.6, 4)
    phase = rng.uniform(0, 2 * math.pi, 4)
    noise_rng = np.random.default_rng(seed + 1)
    out, gts = [], []
    for t in range(frames):
        if kind == "moving":
            w = np.sin(2 * math.pi * rate * t / FPS + phase) - np.sin(phase)  # starts at 0
            dx, dy, dz, da = amp * w
        else:
            dx = dy = dz = da = 0.0
        m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(da), float(s0 * (1 + dz)))
        m[:, 2] += centre + [dx, dy] - c
        frame = cv2.warpAffine(img, m, SIZE, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        frame = np.clip(frame + noise_rng.normal(0, 3.0, frame.shape), 0, 255).astype(np.uint8)
        ok, enc = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
        out.append(np.ascontiguousarray(cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1]))
        gts.append(pts @ m[:, :2].T + m[:, 2])
    return out, np.stack(gts)


MODES = {
    "raw": {"tracking": False, "smoothing": "none"},
    "raw+one_euro": {"tracking": False, "smoothing": "one_euro"},
    "tracking": {"tracking": True, "smoothing": "none"},
    "tracking+no_flow": {"tracking": True, "smoothing": "none", "flow": False},
    "tracking+one_euro_points": {"tracking": True, "smoothing": "one_euro_points"},
    "tracking+kalman+no_flow": {"tracking": True, "smoothing": "kalman", "flow": False},
    "tracking+one_euro+no_flow": {"tracking": True, "smoothing": "one_euro", "flow": False},
    "tracking+kalman": {"tracking": True, "smoothing": "kalman"},
    "tracking+one_euro": {"tracking": True, "smoothing": "one_euro"},
    "tracking+one_euro+weighting": {"tracking": True, "smoothing": "one_euro",
                                    "confidence_weighting": True},
    "tracking+one_euro+raw_crops": {"tracking": True, "smoothing": "one_euro",
                                    "crop_from": "raw"},
    "tracking+one_euro+no_flow_crops": {"tracking": True, "smoothing": "one_euro",
                                        "flow_crops": False},
    "tracking+savgol": {"tracking": True, "smoothing": "none", "offline": "savgol"},
}


def subject(per_frame, gt: np.ndarray) -> tuple[np.ndarray, list]:
    """``(T, K, 2)`` landmarks of the face on the subject (the evaluation's matching rule,
    :func:`faceland.geometry.nearest_box`, on landmark boxes; NaN where none) and that face per
    frame (or None)."""
    pred = np.full(gt.shape, np.nan)
    faces = []
    for i, fs in enumerate(per_frame):
        j = nearest_box(np.array([landmark_box(f.landmarks) for f in fs]).reshape(-1, 4),
                        landmark_box(gt[i]))
        face = None if j is None else fs[j]
        if face is not None:
            pred[i] = face.landmarks
        faces.append(face)
    return pred, faces


def summarise(preds: list[np.ndarray], gts: list[np.ndarray], scheme) -> dict:
    """NME (percent, over frames with a face), NMJ (percent, mean over clips), missed share."""
    nmes, jitters, missed, n = [], [], 0, 0
    for pred, gt in zip(preds, gts, strict=True):
        ok = np.isfinite(pred).all(axis=(1, 2))
        missed += int((~ok).sum())
        n += len(gt)
        if ok.any():
            nmes.append(nme(pred[ok], gt[ok], scheme))
        j = nmj(pred, gt, scheme)
        if np.isfinite(j):
            jitters.append(j)
    e = np.concatenate(nmes) if nmes else np.array([np.nan])
    return {"nme_iod": float(e.mean() * 100), "nmj": float(np.mean(jitters) * 100),
            "missed_percent": 100.0 * missed / n}


def run_mode(lm: FaceLandmarker, clips, scheme, mode: dict, keep: list | None = None) -> dict:
    """Run one mode over the clips with a fresh VideoLandmarker per clip; returns
    :func:`summarise` plus frames per second of ``process`` and the detector's share. With
    ``keep`` (a list), appends each clip's subject faces (for replaying smoothers)."""
    kw = {k: v for k, v in mode.items() if k != "offline"}
    preds, n_frames, secs, det_runs = [], 0, 0.0, 0
    for frames, gt in clips:
        video = VideoLandmarker(lm, **kw)
        per_frame = []
        t0 = time.perf_counter()
        for i, f in enumerate(frames):
            per_frame.append(video.process(f, timestamp_ms=i * 1000.0 / FPS))
        secs += time.perf_counter() - t0
        det_runs += video.detector_runs
        n_frames += len(frames)
        if mode.get("offline") == "savgol":
            per_frame = smooth_tracks(per_frame, window=9, order=2)
        pred, faces = subject(per_frame, gt)
        preds.append(pred)
        if keep is not None:
            keep.append(faces)
    return {**summarise(preds, [g for _, g in clips], scheme), "fps": n_frames / secs,
            "ms_per_frame": 1000.0 * secs / n_frames, "detector_share": det_runs / n_frames}


def replay(tracks: list, gts: list, scheme, params: dict, motion_gain: float = 1.0) -> dict:
    """Apply a :class:`LandmarkSmoother` to recorded unsmoothed subject tracks exactly as
    :class:`VideoLandmarker` would (a new smoother when the track id changes, the recorded
    optical-flow motion when there is one); the crops do not depend on the smoothing, so this
    equals a full run with that smoother and ``crop_from="raw"``. ``motion_gain`` scales the
    recorded motion's departure from the identity (0.5: a flow that misses half the motion)."""
    eye = np.eye(2, 3)
    preds = []
    for faces, gt in zip(tracks, gts, strict=True):
        pred, sm, track = np.full(gt.shape, np.nan), None, None
        for i, f in enumerate(faces):
            if f is None:
                continue
            if f.track != track:
                sm, track = LandmarkSmoother(**params), f.track
            motion = None if f.motion is None else eye + motion_gain * (f.motion - eye)
            pred[i] = sm(f.landmarks, i / FPS, f.point_scores, motion=motion)
        preds.append(pred)
    return summarise(preds, gts, scheme)


def flow_accuracy(clips, scheme) -> dict:
    """How well :class:`faceland.tracking.FaceFlow` measures the true frame-to-frame motion:
    the region is the ground truth's landmark box, the error the RMS over the points of
    (flow-moved previous ground truth - this ground truth), in percent of the IOD."""
    iod = scheme.iod_pair
    errs, misses = [], 0
    for frames, gt in clips:
        flow = FaceFlow()
        for t in range(1, len(frames)):
            flow.reference(frames[t - 1], landmark_box(gt[t - 1]))
            m = flow(frames[t])
            if m is None:
                misses += 1
                continue
            d = np.linalg.norm(gt[t][iod[0]] - gt[t][iod[1]])
            errs.append(np.sqrt(((apply_affine(gt[t - 1], m) - gt[t]) ** 2).sum(-1).mean()) / d)
    e = 100 * np.array(errs)
    return {"rms_error_iod_percent_mean": float(e.mean()),
            "rms_error_iod_percent_p95": float(np.percentile(e, 95)),
            "frame_pairs": len(errs) + misses, "no_measurement": misses}


#: ``--tune``: One Euro / Kalman parameter grids, per smoothing mode (without and with
#: optical-flow crops).
TUNE_FLOW_GRID = {"aligned_kalman": [dict(mode="aligned", min_cutoff=mc, beta=0.0,
                                     motion_kalman=q, motion_kalman_speed=qs)
                                for mc in (0.1, 0.3) for q in (1.0, 10.0, 100.0, 1000.0)
                                for qs in (0.0, 1e3, 1e4, 1e5)],
             "aligned": [dict(min_cutoff=mc, beta=0.0, motion_min_cutoff=mm,
                              motion_beta=mb, motion_d_cutoff=1.0)
                         for mc in (0.1, 0.3) for mm in (0.1, 0.3, 1.0, 3.0)
                         for mb in (0.0, 10.0, 100.0)],
             "points": [dict(min_cutoff=mc, beta=b) for mc in (0.1, 0.3, 1.0, 3.0)
                        for b in (0.0, 1.0, 10.0, 30.0)]}
TUNE_GRID = {"aligned": [dict(min_cutoff=mc, beta=0.0, motion_min_cutoff=mm, motion_beta=mb,
                         motion_d_cutoff=md, compensate_lag=cl)
                    for mc in (0.1, 0.3, 1.0) for mm in (0.3, 1.0, 3.0, 10.0)
                    for mb in (10.0, 30.0, 100.0) for md in (1.0, 3.0)
                    for cl in (False, True)],
        "aligned_kalman": [dict(mode="aligned", min_cutoff=mc, beta=0.0, motion_kalman=q,
                                motion_kalman_speed=qs)
                           for mc in (0.1, 0.3) for q in (10.0, 100.0, 1000.0, 3000.0)
                           for qs in (1e4, 3e4, 1e5, 3e5, 1e6)],
        "points": [dict(min_cutoff=mc, beta=b) for mc in (0.3, 1.0, 3.0)
                   for b in (1.0, 10.0, 30.0, 100.0)]}


def tune(lm: FaceLandmarker, sets: dict, scheme) -> dict:
    """``--tune``: the smoothers' parameter grids on the validation clips, and the chosen
    setting per mode by the rule recorded in the result (``results["rule"]``)."""
    results: dict = {}
    grid, flow_grid = TUNE_GRID, TUNE_FLOW_GRID
    # unsmoothed tracking recorded twice: without optical flow (crops from the last
    # landmarks) and with it (crops moved by the measured motion, which the smoothers
    # replayed on it also receive); both with crops from the unsmoothed landmarks
    results["flow_accuracy_moving"] = flow_accuracy(sets["moving"], scheme)
    print("optical flow on the moving clips:", results["flow_accuracy_moving"], flush=True)
    base, tracks, flow_tracks, raw = {}, {}, {}, {}
    for kind, clips in sets.items():
        raw[kind] = run_mode(lm, clips, scheme, MODES["raw"])
        results[f"{kind}/raw"] = raw[kind]
        tracks[kind], flow_tracks[kind] = [], []
        base[kind] = run_mode(lm, clips, scheme, MODES["tracking+no_flow"],
                              keep=tracks[kind])
        results[f"{kind}/tracking+no_flow"] = base[kind]
        fl = run_mode(lm, clips, scheme, MODES["tracking"], keep=flow_tracks[kind])
        results[f"{kind}/tracking"] = fl
        print(f"{kind:7s} raw NME {raw[kind]['nme_iod']:.3f} NMJ {raw[kind]['nmj']:.3f}; "
              f"tracking NME {base[kind]['nme_iod']:.3f} NMJ {base[kind]['nmj']:.3f}; "
              f"with flow crops NME {fl['nme_iod']:.3f} NMJ {fl['nmj']:.3f}", flush=True)
    # Rule (the target): NME within 0.05 pp of unsmoothed tracking (no flow) on
    # both kinds, then the largest jitter reduction against raw per-frame prediction on the
    # worse kind.
    best = {}
    runs = [(m, p, tracks) for m in grid for p in grid[m]]
    runs += [(f"flow+{m}", p, flow_tracks) for m in flow_grid for p in flow_grid[m]]
    for mode, params, rec in runs:
        sm_mode = mode.removeprefix("flow+").removesuffix("_kalman")
        rs = {k: replay(rec[k], [g for _, g in sets[k]], scheme, {"mode": sm_mode, **params})
              for k in sets}
        gain = min(raw[k]["nmj"] / rs[k]["nmj"] for k in sets)
        ok = all(rs[k]["nme_iod"] <= base[k]["nme_iod"] + 0.05 for k in sets)
        key = f"{mode}/" + ",".join(f"{k}={v}" for k, v in params.items())
        results[key] = {**{k: rs[k] for k in sets}, "min_jitter_reduction_vs_raw": gain,
                        "nme_ok": ok}
        half = ""
        if rec is flow_tracks:  # the same bound with a flow that misses half the motion
            hs = {k: replay(rec[k], [g for _, g in sets[k]], scheme,
                            {"mode": sm_mode, **params}, motion_gain=0.5) for k in sets}
            results[key]["half_motion"] = hs
            half_ok = all(hs[k]["nme_iod"] <= base[k]["nme_iod"] + 0.05 for k in sets)
            results[key]["nme_ok"] = ok = ok and half_ok
            half = f"  half-motion moving NME {hs['moving']['nme_iod']:.3f}"
        print(f"{key:70s} " + "  ".join(f"{k} NME {rs[k]['nme_iod']:.3f} NMJ "
                                         f"{rs[k]['nmj']:.3f}" for k in sets)
              + half + f"  x{gain:.2f}{'' if ok else ' (NME)'}", flush=True)
        if ok and gain > best.get(mode, (0,))[0]:
            best[mode] = (gain, params)
    results["chosen"] = {m: {"params": p, "min_jitter_reduction_vs_raw": g}
                         for m, (g, p) in best.items()}
    results["rule"] = ("NME within 0.05 pp of unsmoothed tracking (no flow) on static and "
                       "moving clips (with optical flow: also when the flow's motion is "
                       "halved), then the largest NMJ reduction against raw per-frame "
                       "prediction on the worse of the two kinds")
    print("chosen:", results["chosen"])
    return results


def measure_modes(lm: FaceLandmarker, sets: dict, scheme, modes: list[str]) -> dict:
    """NME, jitter (NMJ), misses and speed of each video mode on each kind of clip."""
    results: dict = {}
    for name in modes:
        for kind, clips in sets.items():
            r = run_mode(lm, clips, scheme, MODES[name])
            results[f"{kind}/{name}"] = r
            print(f"{kind:7s} {name:28s} NME {r['nme_iod']:.3f} %  NMJ {r['nmj']:.3f} %  "
                  f"missed {r['missed_percent']:.2f} %  {r['fps']:.0f} fps "
                  f"({r['ms_per_frame']:.2f} ms)  detector on {100 * r['detector_share']:.0f} %"
                  " of frames", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["val", "common"], default="val")
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "300w"))
    ap.add_argument("--clips", type=int, default=24, help="clips per kind (static, moving)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default=",".join(m for m in MODES if not m.endswith("_crops")))
    ap.add_argument("--tune", action="store_true",
                    help="grid over One Euro min_cutoff x beta on tracking (use --split val)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.tune and args.split != "val":
        sys.exit("--tune chooses settings: run it on --split val, never on the test images")

    recs = records(args.split, args.root)
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(recs), size=min(2 * args.clips, len(recs)), replace=False)
    scheme = get_scheme("68")
    lm = FaceLandmarker()
    sets = {}
    for kind, idx in (("static", pick[: args.clips]), ("moving", pick[args.clips:])):
        sets[kind] = [render_clip(recs[i], kind, args.frames, args.seed * 100003 + int(i))
                      for i in idx]
    results = (tune(lm, sets, scheme) if args.tune
               else measure_modes(lm, sets, scheme, args.modes.split(",")))
    doc = {**benchmark_metadata(shlex.join(["python", *sys.argv])),
           "split": args.split, "clips_per_kind": args.clips, "frames": args.frames,
           "fps_video": FPS, "frame_size": list(SIZE), "seed": args.seed,
           "model": lm.protocol()["model"], "detector": lm.detector.name,
           "smoother_params": SMOOTHER_PARAMS, "smoother_params_no_flow": SMOOTHER_PARAMS_NO_FLOW,
           "default_smoothing": DEFAULT_SMOOTHING, "results": results}
    if args.json:
        atomic_write_json(args.json, doc)
        print("wrote", args.json)


if __name__ == "__main__":
    main()
