"""Fit a detector's box -> landmark-box calibration on the 300W *training* split.

    python scripts/calibrate_detector.py --root ../shared/data/300w [--limit 600]

Prints the median centre offset (dx, dy, as fractions of the detector box), the median ratio
sqrt(landmark w * h) -> here the landmark box side max(w, h) over sqrt(detector w * h), the
median detector box aspect h / w (used by the inverse map, landmark box -> face box), plus the
share of faces the detector found. The constants go into the adapter in faceland/detectors.py.
"""

from __future__ import annotations

import argparse

import numpy as np

from faceland.data.datasets import load_300w
from faceland.data.formats import read_image
from faceland.detectors import create_detector
from faceland.geometry import landmark_box


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="../shared/data/300w")
    ap.add_argument("--detector", default="default")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    det = create_detector(args.detector)
    recs = load_300w(args.root, "train")
    if args.limit:
        recs = recs[:: max(1, len(recs) // args.limit)]
    dx, dy, sc, aspect, found = [], [], [], [], 0
    for r in recs:
        gt = landmark_box(r.points)
        gc = (gt[:2] + gt[2:]) / 2
        dets = det.detect(read_image(r.image))
        if not dets:
            continue
        centres = np.array([(d.box[:2] + d.box[2:]) / 2 for d in dets])
        b = dets[int(np.argmin(np.linalg.norm(centres - gc, axis=1)))].box
        w, h = b[2] - b[0], b[3] - b[1]
        c = (b[:2] + b[2:]) / 2
        if np.linalg.norm(c - gc) > 0.5 * np.sqrt(w * h):
            continue
        found += 1
        dx.append((gc[0] - c[0]) / w)
        dy.append((gc[1] - c[1]) / h)
        sc.append(max(gt[2] - gt[0], gt[3] - gt[1]) / np.sqrt(w * h))
        aspect.append(h / w)
    print(f"faces found: {found}/{len(recs)}")
    # Residuals of the calibrated box (what training's box jitter should cover): centre offset
    # and side ratio against the landmark box, in units of the landmark box side.
    cal = type(det.calibration)(dx=float(np.median(dx)), dy=float(np.median(dy)),
                                scale=float(np.median(sc)))
    res_c, res_s = [], []
    for (bx, by, bs) in zip(dx, dy, sc, strict=True):
        res_c.append(np.hypot(bx - cal.dx, by - cal.dy))
        res_s.append(bs / cal.scale)
    print(f"calibrated residuals: centre offset / detector side p50 {np.median(res_c):.3f} "
          f"p90 {np.percentile(res_c, 90):.3f}; side ratio p5-p95 "
          f"{np.percentile(res_s, 5):.3f}-{np.percentile(res_s, 95):.3f}")
    print(f"dx={np.median(dx):.4f} dy={np.median(dy):.4f} scale={np.median(sc):.4f} "
          f"(scale IQR {np.percentile(sc, 25):.3f}-{np.percentile(sc, 75):.3f}) "
          f"aspect={np.median(aspect):.4f} (IQR {np.percentile(aspect, 25):.3f}-"
          f"{np.percentile(aspect, 75):.3f})")


if __name__ == "__main__":
    main()
