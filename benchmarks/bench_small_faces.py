"""Small faces at webcam sizes (issue 30, goal 6): recall, false positives and detector time.

    python benchmarks/bench_small_faces.py --json benchmarks/results/small_faces.json

Six real faces (300W common test images, cut around their annotated landmark box enlarged 1.6x)
are pasted, each at a face size of S px (the landmark box's longer side), on a plain grey frame
of W x H; the default detector runs on the frame. A face counts as found when a detection's
centre lies within half the face size of the pasted face's centre; any other detection is a
false positive. Sizes 30-120 px, frames 640 x 480, 1280 x 720 and 1920 x 1080; time is the
median of ``--repeats`` calls of ``FaceLandmarker.detect`` (decode excluded).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np

from faceland.outputs import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "300w"


def faces(n: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` real faces: ``(patch RGB, landmark box in the patch)`` from 300W common."""
    from faceland.data.datasets import load_300w
    from faceland.data.formats import read_image
    from faceland.geometry import landmark_box

    out = []
    for rec in load_300w(DATA, "common")[::40][:n]:
        img = read_image(rec.image)
        x0, y0, x1, y1 = landmark_box(rec.points)
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 1.6
        a = np.array([[1, 0, side / 2 - cx], [0, 1, side / 2 - cy]], np.float64)
        patch = cv2.warpAffine(img, a, (int(side), int(side)), borderValue=(128, 128, 128))
        out.append((patch, np.array([x0, y0, x1, y1]) + [a[0, 2], a[1, 2], a[0, 2], a[1, 2]]))
    return out


def frame(w: int, h: int, size: int, patches) -> tuple[np.ndarray, list[np.ndarray]]:
    """A grey ``w x h`` frame with the faces pasted at face size ``size`` on a 3 x 2 grid, and
    the pasted faces' centres."""
    img = np.full((h, w, 3), 128, np.uint8)
    centres = []
    for k, (patch, box) in enumerate(patches):
        s = size / max(box[2] - box[0], box[3] - box[1])
        p = cv2.resize(patch, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        cx, cy = w * (1 + 2 * (k % 3)) / 6, h * (1 + 2 * (k // 3)) / 4
        x, y = int(cx - p.shape[1] / 2), int(cy - p.shape[0] / 2)
        img[y:y + p.shape[0], x:x + p.shape[1]] = p
        bc = (box[:2] + box[2:]) / 2 * s
        centres.append(np.array([x + bc[0], y + bc[1]]))
    return img, centres


def main() -> None:
    from faceland import FaceLandmarker
    from faceland.profiling import benchmark_metadata, median_ms

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="30,40,60,80,120")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    lm = FaceLandmarker(detector="default")
    patches = faces()
    rows = []
    for w, h in ((640, 480), (1280, 720), (1920, 1080)):
        for size in map(int, args.sizes.split(",")):
            if size * 4 > h:
                continue
            img, centres = frame(w, h, size, patches)
            dets = lm.detect(img)
            used, found = set(), 0
            for c in centres:
                d = [i for i, x in enumerate(dets) if i not in used and np.hypot(
                    *((x.box[:2] + x.box[2:]) / 2 - c)) < size / 2]
                if d:
                    used.add(d[0])
                    found += 1
            ms = median_ms(lambda img=img: lm.detect(img), args.repeats)
            rows.append({"frame": f"{w}x{h}", "face_px": size, "found": found,
                         "faces": len(centres), "false_positives": len(dets) - len(used),
                         "detect_ms": round(ms, 2)})
            print(json.dumps(rows[-1]), flush=True)
    doc = {**benchmark_metadata(shlex.join(["python", *sys.argv])),
           "detector": {"name": lm.detector.name, "input_side": lm.detector.input_side,
                        "min_face": lm.detector.min_face, "large_side": lm.detector.large_side},
           "rows": rows}
    if args.json:
        atomic_write_json(args.json, doc)


if __name__ == "__main__":
    main()
