"""Which per-landmark confidence to expose: candidates compared on the validation split.

    python benchmarks/bench_point_scores.py --json benchmarks/results/point_score_candidates_val.json

For every face of the validation split of 300W train (the 10 % that training held out; the
test images are not used here), the default model runs on the ground-truth crop and each
candidate score is computed from its softmax heatmaps ``(K, 32, 32)``; each is compared with
the point's error over the inter-ocular distance (Spearman rank correlation; AUROC for telling
points with error > 0.1 IOD from the rest; :func:`faceland.metrics.confidence_quality`):

* ``peak``: the largest cell probability;
* ``peak_mass_3x3``: the probability mass of the densest 3 x 3 block of cells
  (:func:`faceland.codecs.peak_mass`, what faceland ships);
* ``mass_r1.5 / r2 / r3``: the mass within 1.5, 2 or 3 cells of the soft-argmax;
* ``neg_spread``: minus the standard deviation of the heatmap about the soft-argmax;
* ``neg_entropy``: minus the entropy of the heatmap;
* ``face_mean_peak_mass``: the face's mean ``peak_mass_3x3`` given to all its points.

Second part, for the tracker's confidence threshold (``faceland.tracking.VideoLandmarker``'s
``min_confidence``): the face-level score (mean of the shipped point scores) of (a) the
validation faces with their gt crops, (b) the same boxes moved one face width right and down by
0.9 of it (background), (c) every face the default detector finds in ``--mtfl`` MTFL training
photos (wild faces; a seeded sample).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceland.checkpoint import load_model
from faceland.codecs import cell_centres
from faceland.data.crops import image_to_tensor
from faceland.data.formats import read_image
from faceland.geometry import (
    apply_affine,
    crop_affine,
    invert_affine_batch,
    landmark_box,
    normalized_to_crop,
    warp_crop,
)
from faceland.metrics import confidence_quality, normalizing_distance
from faceland.outputs import atomic_write_json
from faceland.profiling import benchmark_metadata
from faceland.schemes import get_scheme
from faceland.training import load_config, train_val_records

REPO = Path(__file__).resolve().parents[1]


def candidates(probs: torch.Tensor, coords: torch.Tensor) -> dict[str, np.ndarray]:
    """``(K, H, W)`` softmax heatmaps and ``(K, 2)`` normalised soft-argmax -> scores (K,)."""
    k, h, w = probs.shape
    gx = cell_centres(w).view(1, 1, w)
    gy = cell_centres(h).view(1, h, 1)
    d2 = ((gx - coords[:, 0].view(k, 1, 1)) ** 2 + (gy - coords[:, 1].view(k, 1, 1)) ** 2) * w * w
    pm = (F.avg_pool2d(probs[:, None], 3, 1, 1, count_include_pad=True)[:, 0] * 9).flatten(1)
    out = {"peak": probs.flatten(1).amax(1), "peak_mass_3x3": pm.amax(1)}
    for r in (1.5, 2.0, 3.0):
        out[f"mass_r{r:g}"] = (probs * (d2 <= r * r)).sum((1, 2))
    out["neg_spread"] = -(probs * d2).sum((1, 2)).sqrt()
    out["neg_entropy"] = (probs * torch.log(probs + 1e-12)).sum((1, 2))
    out["face_mean_peak_mass"] = out["peak_mass_3x3"].mean().expand(k)
    return {name: v.numpy().astype(np.float64) for name, v in out.items()}


def face_level(recs, root: str, n_mtfl: int) -> dict:
    """Percentiles of the mean point score: validation faces, background boxes, MTFL faces."""
    from faceland.data.datasets import load_mtfl
    from faceland.errors import FormatError
    from faceland.inference import FaceLandmarker

    lm = FaceLandmarker()
    rows: dict[str, list[float]] = {"300w_val_faces": [], "300w_val_background": [],
                                    "mtfl_detected_faces": []}
    for r in recs:
        img = read_image(r.image)
        b = landmark_box(r.points)
        w = b[2] - b[0]
        _, s = lm.landmarks_from_boxes(img, [b, b + [w, 0.9 * w, w, 0.9 * w]],
                                       return_scores=True)
        rows["300w_val_faces"].append(float(s[0].mean()))
        rows["300w_val_background"].append(float(s[1].mean()))
    mtfl = load_mtfl(Path(root).parent / "mtfl", "train")
    for i in np.random.default_rng(0).choice(len(mtfl), min(n_mtfl, len(mtfl)), replace=False):
        try:
            img = read_image(mtfl[i].image)
        except FormatError:
            continue
        rows["mtfl_detected_faces"] += [float(f.point_scores.mean()) for f in lm.predict(img)]
    return {k: {"n": len(v), **{f"p{q}": float(np.percentile(v, q)) for q in (1, 5, 95)},
                "median": float(np.median(v))} for k, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "300w"))
    ap.add_argument("--mtfl", type=int, default=300, help="MTFL training photos to sample")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, card = load_model(None)
    cfg = load_config(REPO / "configs" / "300w_mtfl_integral_dw_128.yaml")
    cfg.root = args.root
    _, recs = train_val_records(cfg)
    scheme, n = get_scheme("68"), int(model.input_size)
    scores: dict[str, list[np.ndarray]] = {}
    errors = []
    for r in recs:
        a = crop_affine(landmark_box(r.points), n, float(card.get("enlarge", 1.25)))
        crop = warp_crop(read_image(r.image), a, n)[None]
        with torch.no_grad():
            out = model(image_to_tensor(crop))
        for name, v in candidates(out["heatmaps"][0], out["coords"][0]).items():
            scores.setdefault(name, []).append(v)
        c = out["coords"][0].double().numpy()[None]
        pred = apply_affine(normalized_to_crop(c, n), invert_affine_batch(a[None]))[0]
        d = normalizing_distance(r.points[None], scheme, "iod")[0]
        errors.append(np.linalg.norm(pred - r.points, axis=1) / d)
    e = np.concatenate(errors)
    results = {name: confidence_quality(np.concatenate(v), e, 0.1) for name, v in scores.items()}
    for name, q in sorted(results.items(), key=lambda kv: -kv[1]["auroc"]):
        print(f"{name:20s} AUROC {q['auroc']:.3f}  Spearman {q['spearman']:+.3f}")
    faces = face_level(recs, args.root, args.mtfl)
    for name, v in faces.items():
        print(f"face-level score, {name:28s} n {v['n']:4d}  p1 {v['p1']:.3f}  p5 {v['p5']:.3f}  "
              f"median {v['median']:.3f}  p95 {v['p95']:.3f}")
    doc = {**benchmark_metadata(shlex.join(["python", *sys.argv])),
           "split": "validation split of 300W train (val_fraction 0.1, seed 0)",
           "n_faces": len(recs), "n_points": int(e.size), "bad_point": "error > 0.1 IOD",
           "box": "ground-truth landmark box x1.25", "model": card.get("name"),
           "results": results, "face_level_scores": faces}
    if args.json:
        atomic_write_json(args.json, doc)
        print("wrote", args.json)


if __name__ == "__main__":
    main()
