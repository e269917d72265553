"""Face detectors on real faces: recall, false positives and small faces.

    python benchmarks/bench_detector.py [--detectors retinaface,res10_ssd]
        [--json benchmarks/results/detectors.json]

Sets (all real, annotated faces; test and evaluation-only images, used for measurement only):

* ``300w_common``: the 554 300W common images (one annotated face each; the stored images are
  crops of 2x the face, so other people are rare and mostly cut by the border);
* ``ytf``: the 3462 YouTube-Faces frames (``ytf68/train``; low-resolution video, one annotated
  face each);
* ``mosaic_1080p``: 40 canvases of 1920 x 1080, each with 6 300W common faces pasted at random
  positions and sizes (faces 60-250 px wide), a stand-in for group photos with known faces;
* ``small_4000x3000``: 10 canvases of 4000 x 3000 with 8 faces each, 40-80 px wide.

A face counts as found when a detection, mapped to a landmark box with the detector's
calibration, has its centre within half the face's side of the ground-truth landmark box centre
(as in ``faceland evaluate --boxes detector``). Every other detection is counted as
``unmatched``: an upper bound on false positives, since the 300W and YouTube-Faces images (and
so the mosaics made of them) show other, unannotated people too (inspected by eye in
docs/benchmarks.md). Time: median ms per image (the machine's load at the time is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from faceland.data.datasets import load_300w, load_ytf
from faceland.data.formats import read_image
from faceland.detectors import create_detector
from faceland.geometry import landmark_box
from faceland.outputs import atomic_write_json
from faceland.profiling import benchmark_metadata

REPO = Path(__file__).resolve().parents[1]


def _count(det, image: np.ndarray, boxes: list[np.ndarray]) -> tuple[int, int, float]:
    """(faces found, unmatched detections, ms) for an image with ground-truth landmark boxes."""
    t0 = time.perf_counter()
    dets = det.detect(image)
    ms = (time.perf_counter() - t0) * 1000
    cands = [det.to_landmark_box(d.box) for d in dets]
    used: set[int] = set()
    found = 0
    for gt in boxes:
        gc = (gt[:2] + gt[2:]) / 2
        side = max(gt[2] - gt[0], gt[3] - gt[1])
        best, best_d = None, 0.5 * side
        for i, c in enumerate(cands):
            d = float(np.linalg.norm((c[:2] + c[2:]) / 2 - gc))
            if i not in used and d < best_d:
                best, best_d = i, d
        if best is not None:
            used.add(best)
            found += 1
    return found, len(cands) - len(used), ms


def _mosaics(recs, n: int, hw: tuple[int, int], per: int, sizes: tuple[int, int],
             seed: int) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Canvases with ``per`` real faces each pasted at random non-overlapping places."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        canvas = np.full((*hw, 3), 0, np.uint8)
        canvas[:] = rng.integers(40, 200, 3)
        boxes, taken = [], []
        for r in rng.choice(len(recs), per, replace=False):
            rec = recs[int(r)]
            img = read_image(rec.image)
            lb = landmark_box(rec.points)
            k = rng.uniform(*sizes) / (lb[2] - lb[0])  # face (landmark box) width in px
            small = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            h, w = small.shape[:2]
            for _try in range(50):
                y, x = int(rng.integers(0, hw[0] - h)), int(rng.integers(0, hw[1] - w))
                if all(x + w <= a or a + c <= x or y + h <= b or b + d <= y
                       for a, b, c, d in taken):
                    break
            else:
                continue
            taken.append((x, y, w, h))
            canvas[y:y + h, x:x + w] = small
            pts = (rec.points + 0.5) * [w / img.shape[1], h / img.shape[0]] - 0.5 + [x, y]
            boxes.append(landmark_box(pts))
        out.append((canvas, boxes))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detectors", default="retinaface,res10_ssd")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--limit", type=int, default=0, help="images per real set (0 = all)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    data = Path(args.data)
    common = load_300w(data / "300w", "common")
    ytf = load_ytf(data / "ytf68" / "train")
    if args.limit:
        common, ytf = common[: args.limit], ytf[: args.limit]
    sets = {
        "300w_common": [(r.image, [landmark_box(r.points)]) for r in common],
        "ytf": [(r.image, [landmark_box(r.points)]) for r in ytf],
        "mosaic_1080p": _mosaics(common, 40, (1080, 1920), 6, (60, 250), 0),
        "small_4000x3000": _mosaics(common, 10, (3000, 4000), 8, (40, 80), 1),
    }
    out = {**benchmark_metadata(shlex.join(["python", *sys.argv])), "results": {}}
    for name in args.detectors.split(","):
        det = create_detector(name)
        res = {}
        for set_name, items in sets.items():
            faces = found = fp = 0
            times = []
            for image, boxes in items:
                img = read_image(image) if isinstance(image, Path) else image
                f, extra, ms = _count(det, img, boxes)
                faces, found, fp = faces + len(boxes), found + f, fp + extra
                times.append(ms)
            res[set_name] = {"images": len(items), "faces": faces, "found": found,
                             "recall_percent": round(100 * found / faces, 2),
                             "unmatched_detections": fp,
                             "ms_per_image_median": round(statistics.median(times), 2)}
            print(name, set_name, res[set_name], flush=True)
        out["results"][name] = res
    out["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=2))
    if args.json:
        atomic_write_json(args.json, out)


if __name__ == "__main__":
    main()
