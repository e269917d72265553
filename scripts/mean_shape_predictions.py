"""Mean-shape baseline: the mean 300W-train face placed in each test face's box, as stored
predictions for ``faceland evaluate --predictions``.

This is the floor any trained model must beat under the same protocol: it uses no image
pixels at all, only the box. With ``gt`` boxes it knows the tight landmark box of every test face
(so it is a strong floor); the same box the models are given.

    python scripts/mean_shape_predictions.py --root ../shared/data/300w --split common \\
        --out docs/results/mean-shape-300w-common-gt.predictions.json
    faceland evaluate --dataset 300w --root ../shared/data/300w --split common --boxes gt \\
        --predictions docs/results/mean-shape-300w-common-gt.predictions.json \\
        --json docs/results/mean-shape-300w-common-gt.json

The mean is taken over every 300W train face in the crop frame of the harness's gt box (the
square of side ``max(w, h)`` around the tight landmark box's centre, no rotation), in units of
that side; each test face gets it scaled and moved into its own box. Points are image pixels,
0-based pixel centres. Only 300W train (the same images the models train on) enters the mean.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from faceland.data.datasets import FaceRecord, load_300w
from faceland.geometry import apply_affine, crop_affine, invert_affine, landmark_box
from faceland.outputs import atomic_write_json


def box_frame(points: np.ndarray) -> np.ndarray:
    """``(2, 3)`` affine from image pixels to box units of the square gt box around ``points``:
    the harness's crop (:func:`faceland.geometry.crop_affine`) with side 1 and no enlargement,
    so the box centre maps to 0 and its side ``max(w, h)`` to 1."""
    return crop_affine(landmark_box(points), 1, enlarge=1.0)


def mean_shape(records: list[FaceRecord]) -> np.ndarray:
    """``(K, 2)`` mean landmarks in box units (centre 0, side 1) over ``records``."""
    return np.nanmean(np.stack([apply_affine(r.points, box_frame(r.points)) for r in records]),
                      axis=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="../shared/data/300w")
    ap.add_argument("--split", default="common", help="300W test split to predict")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    mean = mean_shape(load_300w(args.root, "train"))
    table = {}
    for r in load_300w(args.root, args.split):
        table[r.key] = apply_affine(mean, invert_affine(box_frame(r.points))).round(3).tolist()
    cmd = ["python", "scripts/mean_shape_predictions.py", "--root", args.root, "--split",
           args.split, "--out", str(args.out)]
    doc = {"system": "mean-shape-300w-train", "scheme": "68", "box_source": "gt",
           "box_definition": "tight ground-truth landmark box, square side max(w, h)",
           "command": shlex.join(cmd), "landmarks": table}
    atomic_write_json(args.out, doc, indent=None)
    print(f"wrote {args.out} ({len(table)} faces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
