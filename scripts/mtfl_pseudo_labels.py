"""68-point pseudo-labels for MTFL's wild faces from a teacher model (distillation data).

MTFL (``../shared/data/mtfl``) has 5 points per face. For each face of ``--split`` this script

1. builds a first crop box from the 5 points (centre shift and scale relative to the 5-point
   box, medians fitted on **300W train**, where the 5 points are derived from the 68 with
   :data:`faceland.schemes.FIVE_FROM_68`);
2. runs the teacher (with flip test) in that box, then again in the landmark box of its own
   first answer;
3. shifts x by the 300W labels' flip bias ``b`` (``--x-offset``, normalised crop units, from
   ``scripts/flip_bias.py``): a flip-trained teacher predicts the mirror-symmetric position,
   300W's annotators mark ``b`` to its right, and the student is trained on 300W labels too;
4. scores the teacher against the face's real 5 points: ``err5`` = mean distance of the teacher's
   5 derived points to MTFL's, divided by the inter-pupil distance (MTFL's eye centres).

Writes an ``.npz``: ``keys`` (``"train/images/NAME.jpg"``, as :func:`faceland.data.datasets.load_mtfl`
names them), ``points68`` ``(N, 68, 2)`` float32 (image pixels, 0-based pixel centres) and
``err5`` ``(N,)``. Training (``mtfl_pseudo`` in a config) drops faces whose ``err5`` is above
its threshold.

Run: ``python scripts/mtfl_pseudo_labels.py --out runs/mtfl_pseudo.npz``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from faceland.data.datasets import load_300w, load_mtfl
from faceland.data.formats import read_image
from faceland.geometry import landmark_box
from faceland.inference import FaceLandmarker
from faceland.schemes import convert_points


def box_from_five(five: np.ndarray, dx: float, dy: float, k: float) -> np.ndarray:
    """Square crop box ``[x0, y0, x1, y1]`` from ``(5, 2)`` points (pixels): centre = 5-point
    box centre + ``(dx, dy) * s``, side = ``k * s`` with ``s`` the 5-point box's longer side."""
    x0, y0 = five.min(0)
    x1, y1 = five.max(0)
    s = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2 + dx * s, (y0 + y1) / 2 + dy * s
    return np.array([cx - k * s / 2, cy - k * s / 2, cx + k * s / 2, cy + k * s / 2])


def fit_five_to_box(root: str) -> tuple[float, float, float]:
    """Medians of ``(dx, dy, k)`` mapping the 5-point box to the 68-point landmark box on 300W
    train."""
    vals = []
    for r in load_300w(root, "train"):
        five = convert_points(r.points, "68", "5")
        x0, y0 = five.min(0)
        x1, y1 = five.max(0)
        s = max(x1 - x0, y1 - y0)
        lb = landmark_box(r.points)
        vals.append((((lb[0] + lb[2]) - (x0 + x1)) / 2 / s, ((lb[1] + lb[3]) - (y0 + y1)) / 2 / s,
                     max(lb[2] - lb[0], lb[3] - lb[1]) / s))
    return tuple(float(v) for v in np.median(np.array(vals), axis=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="faceland-300w-mnv2-integral-128")
    ap.add_argument("--mtfl", default="../shared/data/mtfl")
    ap.add_argument("--split", default="train")
    ap.add_argument("--w300", default="../shared/data/300w", help="300W root (box fit)")
    ap.add_argument("--x-offset", type=float, default=0.00265,
                    help="300W flip bias b, normalised crop units (scripts/flip_bias.py)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from faceland.outputs import check_output_file

    check_output_file(args.out, "--out")  # before the ten-thousand-image run, not after it
    dx, dy, k = fit_five_to_box(args.w300)
    print(f"5-point box -> landmark box on 300W train: dx {dx:.3f} dy {dy:.3f} k {k:.3f}")
    recs = load_mtfl(args.mtfl, args.split)
    if args.limit:
        recs = recs[: args.limit]
    lm = FaceLandmarker(args.teacher, detector=None, flip_test=True)
    keys, pts, err = [], [], []
    t0 = time.time()
    for i, r in enumerate(recs):
        img = read_image(r.image)
        p = lm.landmarks_from_boxes(img, [box_from_five(r.points, dx, dy, k)])[0]
        box = landmark_box(p)
        p = lm.landmarks_from_boxes(img, [box])[0]
        side = max(box[2] - box[0], box[3] - box[1]) * lm.enlarge
        p[:, 0] += args.x_offset * side
        ipd = np.linalg.norm(r.points[0] - r.points[1])
        err.append(float(np.linalg.norm(convert_points(p, "68", "5") - r.points, axis=1).mean()
                         / ipd))
        keys.append(r.key)
        pts.append(p.astype(np.float32))
        if i % 1000 == 0:
            print(f"{i}/{len(recs)} {time.time() - t0:.0f}s", flush=True)
    err = np.array(err)
    import io

    from faceland.outputs import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, keys=np.array(keys), points68=np.stack(pts), err5=err)
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"{len(keys)} faces; err5 (IPD) median {np.median(err):.4f}, "
          f"share > 0.1: {np.mean(err > 0.1):.3f}, > 0.15: {np.mean(err > 0.15):.3f}")


if __name__ == "__main__":
    main()
