"""Speed of the default landmark path against peer-class 112 px models, in one run.

    python benchmarks/bench_default.py [--repeats 200] [--json benchmarks/results/default_speed.json]

What is timed (median ms, batch 1, one face; every system through ONNX Runtime with the same
session settings as faceland: 2 intra-op threads, no spinning; systems are timed in interleaved
rounds so that the machine's load falls on all of them alike):

* ``landmarks``: :meth:`faceland.FaceLandmarker.landmarks_from_boxes` for one box on a real
  300W common photo: crop (one affine warp to the uint8 model input) + model + mapping back to
  image pixels; for the new default (ONNX Runtime and eager PyTorch: timed on its own after the
  others, since PyTorch's OpenMP threads keep spinning after a call) and the previous default;
* ``crop``: the crop part alone (``crop_affine`` + ``warp_crop``);
* peers (timing re-creations with random weights, see ``benchmarks/peers.py``): PFLD 1x and
  MobileNetV3-small at 112 px, each with the usual pre-processing of a 112 px regressor (one
  affine warp, then float conversion, normalisation and NCHW transpose in NumPy);
* ``photo``: :meth:`faceland.FaceLandmarker.predict` on a 640 x 480 photo with one face (the
  astronaut, decode excluded), per detector.

Ratios are faceland / the fastest peer measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from faceland.data.datasets import load_300w
from faceland.data.formats import read_image
from faceland.geometry import crop_affine, landmark_box, warp_crop
from faceland.inference import FaceLandmarker
from faceland.outputs import atomic_write_json
from faceland.profiling import benchmark_metadata, interleaved_medians
from faceland.runtimes import OnnxLandmarkModel

REPO = Path(__file__).resolve().parents[1]
# peers.py: benchmark-only re-creations (PFLD, MobileNetV3) with random weights, not library code
sys.path.insert(0, str(REPO / "benchmarks"))
from peers import PFLDBackbone, mobilenet_v3_small_112, peer_graph  # noqa: E402


def landmark_path_ms(rec, model: str, previous: str, repeats: int) -> tuple[dict, FaceLandmarker]:
    """Median ms per face of faceland's landmark path (crop + model), its parts, the previous
    default and the PFLD / MobileNetV3 re-creations, interleaved on one 300W face; returns
    ``(ms, the landmarker of model)``."""
    img = read_image(rec.image)
    box = landmark_box(rec.points)
    new = FaceLandmarker(model, detector=None)
    new_torch = FaceLandmarker(model, detector=None, runtime="torch")
    old = FaceLandmarker(previous, detector=None)
    n = new.input_size

    mean = np.array([0.485, 0.456, 0.406], np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], np.float32) * 255

    def peer_path(model: OnnxLandmarkModel) -> Callable[[], object]:
        def run() -> object:
            a = crop_affine(box, 112, 1.25)
            crop = warp_crop(img, a, 112)
            x = ((crop.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]
            return model.session.run(None, {"input": np.ascontiguousarray(x)})
        return run

    with tempfile.TemporaryDirectory() as d:
        pfld = peer_graph(PFLDBackbone(), d, "pfld")
        mnv3 = peer_graph(mobilenet_v3_small_112(), d, "mnv3s")
        crop = warp_crop(img, crop_affine(box, n, new.enlarge), n)[None]
        fns = {
            "faceland_landmarks": lambda: new.landmarks_from_boxes(img, [box]),
            "faceland_crop": lambda: warp_crop(img, crop_affine(box, n, new.enlarge), n),
            "faceland_model": lambda: new.model.predict_crops(crop),
            "previous_default_landmarks": lambda: old.landmarks_from_boxes(img, [box]),
            "pfld_112_landmarks": peer_path(pfld),
            "mnv3_small_112_landmarks": peer_path(mnv3),
        }
        ms = interleaved_medians(fns, repeats)
        # Eager PyTorch alone, after the others: its OpenMP threads keep spinning after each
        # call and would slow whatever ran next in an interleaved round.
        with torch.no_grad():
            ms.update(interleaved_medians(
                {"faceland_landmarks_torch": lambda: new_torch.landmarks_from_boxes(img, [box])},
                max(20, repeats // 4)))
    return ms, new


def photo_ms(model: str, detectors: list[str], repeats: int) -> dict:
    """Per detector: faces found and median ms of predict / detect on the README photo in a
    640 x 480 frame."""
    photo = read_image(REPO / "assets/astronaut.jpg")
    canvas = np.zeros((480, 640, 3), np.uint8)
    canvas[:, 64:576] = cv2.resize(photo, (512, 480), interpolation=cv2.INTER_AREA)
    photo_ms = {}
    for det in detectors:
        lm = FaceLandmarker(model, detector=det)
        found = len(lm.predict(canvas))
        photo_ms[det] = {"faces": found, **interleaved_medians(
            {"predict_ms": lambda lm=lm: lm.predict(canvas),
             "detect_ms": lambda lm=lm: lm.detect(canvas)}, max(20, repeats // 4), 3)}
    return photo_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--previous", default="faceland-300w-mnv2-integral-128")
    ap.add_argument("--root", default=str(REPO.parent / "shared/data/300w"))
    ap.add_argument("--detectors", default="res10_ssd", help="comma-separated detector names")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)

    rec = load_300w(args.root, "common")[0]
    ms, new = landmark_path_ms(rec, args.model, args.previous, args.repeats)
    n = new.input_size
    photo = photo_ms(args.model, args.detectors.split(","), args.repeats)
    peer = min(ms["pfld_112_landmarks"], ms["mnv3_small_112_landmarks"])
    out = {
        **benchmark_metadata(shlex.join(["python", *sys.argv])),
        "model": new.card.get("name"), "previous": args.previous, "input_size": n,
        "image": str(rec.key), "ms_per_face": ms,
        "ratio_vs_pfld": round(ms["faceland_landmarks"] / ms["pfld_112_landmarks"], 3),
        "ratio_vs_fastest_peer": round(ms["faceland_landmarks"] / peer, 3),
        "photo_640x480": photo,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        atomic_write_json(args.json, out)


if __name__ == "__main__":
    main()
