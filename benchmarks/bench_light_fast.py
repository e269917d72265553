"""Issue 30's speed goals side by side in one run: photo, video frame, landmark path per face.

    python benchmarks/bench_light_fast.py --repeats 200 --rounds 3 \\
        --mediapipe-python /tmp/mpenv/bin/python --json benchmarks/results/light_fast.json

For each graph runtime that is installed (ONNX Runtime always; OpenVINO with the ``openvino``
extra) and in interleaved rounds:

* **photo**: ``FaceLandmarker(runtime=R).predict`` on a 640 x 480 photo with one face
  (:func:`faceland.profiling.reference_photo`; decode excluded);
* **video**: ``VideoLandmarker(FaceLandmarker(runtime=R))`` with the default settings (tracking,
  optical flow, One Euro smoothing), median ms per 640 x 480 frame over
  :func:`faceland.profiling.reference_clip` (first 30 frames excluded);
* **landmark path**: ``landmarks_from_boxes`` for one box (crop + model + map back);
* the **PFLD reference**: the PFLD 1x re-creation of ``benchmarks/peers.py`` (random weights: the
  public PFLD ONNX is not installable here), exported to ONNX and run with the same runtime and
  session settings (denormals flushed), through the same crop and the NumPy normalisation a user
  would write;
* **MediaPipe Face Mesh** 0.10.21 (static image mode and video mode) in its own venv
  (``--mediapipe-python``; see ``benchmarks/mediapipe_timing.py``), one subprocess per round.

Writes the medians of every round with :func:`faceland.profiling.benchmark_metadata` (command,
CPU model, ISA, load, versions).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from faceland.outputs import atomic_write_json

REPO = Path(__file__).resolve().parents[1]


def _pfld(d: str, runtime: str):
    sys.path.insert(0, str(REPO / "benchmarks"))  # peers.py: benchmark-only re-creations
    from peers import PFLDBackbone, peer_graph

    return peer_graph(PFLDBackbone(), d, "pfld", runtime)


def _video_ms(lm, frames: list[np.ndarray]) -> tuple[float, int]:
    from faceland.tracking import VideoLandmarker

    video = VideoLandmarker(lm)
    times = []
    for k, f in enumerate(frames):
        t0 = time.perf_counter()
        video.process(f, k * 1000.0 / 30.0)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times[30:])), int(video.detector_runs)


def faceland_round(runtime: str, repeats: int, frames: list[np.ndarray], tmp: str) -> dict:
    """One round of faceland's and the PFLD reference's timings on ``runtime``."""
    from faceland import FaceLandmarker
    from faceland.geometry import crop_affine, warp_crop
    from faceland.profiling import interleaved_medians, reference_photo

    photo = reference_photo()
    lm = FaceLandmarker(runtime=runtime)
    faces = lm.predict(photo)
    assert len(faces) == 1, "the benchmark photo must show one face"
    box = faces[0].box
    lbox = lm.detector.to_landmark_box(box)
    pfld = _pfld(tmp, runtime)
    mean = np.array([0.485, 0.456, 0.406], np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], np.float32) * 255

    def pfld_path() -> object:
        crop = warp_crop(photo, crop_affine(lbox, 112, 1.25), 112)
        x = ((crop.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]
        return pfld.session.run(None, {"input": np.ascontiguousarray(x)})

    ms = interleaved_medians({
        "photo_ms": lambda: lm.predict(photo),
        "detect_ms": lambda: lm.detect(photo),
        "landmark_path_ms": lambda: lm.landmarks_from_boxes(photo, [box], "detector"),
        "pfld_path_ms": pfld_path,
    }, repeats)
    ms["video_ms_per_frame"], ms["video_detector_runs"] = _video_ms(lm, frames)
    ms["landmark_path_vs_pfld"] = ms["landmark_path_ms"] / ms["pfld_path_ms"]
    return {k: round(v, 3) for k, v in ms.items()}


def mediapipe_round(python: str, repeats: int, frames: int) -> dict:
    """MediaPipe's medians from its own venv (a subprocess)."""
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([python, str(REPO / "benchmarks" / "mediapipe_timing.py"), "--repeats",
                          str(repeats), "--frames", str(frames)], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import importlib.util

    from faceland.profiling import benchmark_metadata, reference_clip

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--mediapipe-python", default=None,
                    help="python of a venv with mediapipe==0.10.21 (skipped when not given)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    runtimes = ["onnx"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    frames = reference_clip(args.frames)
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            row = {rt: faceland_round(rt, args.repeats, frames, tmp) for rt in runtimes}
            if args.mediapipe_python:
                row["mediapipe"] = mediapipe_round(args.mediapipe_python, args.repeats,
                                                   args.frames)
            rounds.append(row)
            print(f"round {r + 1}: {json.dumps(row)}", flush=True)
    med = {sys_: {k: round(float(np.median([rd[sys_][k] for rd in rounds])), 3)
                  for k, v in rounds[0][sys_].items() if isinstance(v, (int, float))}
           for sys_ in rounds[0]}
    doc = {**benchmark_metadata(shlex.join(["python", *sys.argv])), "rounds": rounds,
           "median_of_rounds": med}
    print(json.dumps(med, indent=2))
    if args.json:
        atomic_write_json(args.json, doc)


if __name__ == "__main__":
    main()
