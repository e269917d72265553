"""Measure the 300W labels' left-right annotation bias (the flip-augmentation offset).

A model trained with 50 % horizontal flips sees every face once as annotated (x = true + b) and
once mirrored (x' = true' - b): it cannot tell the two apart, so it learns b = 0 and its mean x
residual (prediction - label) on held-out faces is -b. This script runs such a model (default:
the flip-trained ``faceland-300w-mnv2-integral-128``) on the **validation split of 300W train**
(the split training uses for model selection; no test image) with ground-truth boxes and reports

* ``b`` in normalised crop units (fraction of the crop side ``max(w, h) * enlarge``): the value
  for :attr:`faceland.transforms.AugmentConfig.flip_x_offset`;
* ``b`` in image pixels of these 300W images (median landmark box about 220 px), with a
  bootstrap 95 % interval over faces.

Run: ``python scripts/flip_bias.py [--model NAME] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from faceland.data.datasets import load_300w, split_train_val
from faceland.data.formats import read_image
from faceland.geometry import landmark_box
from faceland.inference import FaceLandmarker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="faceland-300w-mnv2-integral-128")
    ap.add_argument("--root", default="../shared/data/300w")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args()
    _, val = split_train_val(load_300w(args.root, "train"), args.val_fraction, args.seed)
    lm = FaceLandmarker(args.model, detector=None)
    res_norm, res_px = [], []
    for r in val:
        box = landmark_box(r.points)
        pred = lm.landmarks_from_boxes(read_image(r.image), [box])[0]
        side = max(box[2] - box[0], box[3] - box[1]) * lm.enlarge
        dx = float(np.mean(pred[:, 0] - r.points[:, 0]))
        res_px.append(dx)
        res_norm.append(dx / side)
    b_norm, b_px = -float(np.mean(res_norm)), -float(np.mean(res_px))
    rng = np.random.default_rng(0)
    boots = [-np.mean(rng.choice(res_px, len(res_px))) for _ in range(2000)]
    out = {"model": args.model, "faces": len(val), "split": f"300W train, validation part "
           f"(val_fraction {args.val_fraction}, seed {args.seed})",
           "b_normalised_crop": round(b_norm, 5), "b_pixels": round(b_px, 3),
           "b_pixels_ci95": [round(float(np.percentile(boots, q)), 3) for q in (2.5, 97.5)]}
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
