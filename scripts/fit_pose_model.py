"""Fit the x, y of faceland's 3D head-pose face model to the mean 300W training shape.

MediaPipe's canonical face (``faceland.face_analysis``, Apache-2.0) gives each of the 68 iBUG
points a 3D position through an approximate 468 -> 68 vertex map. Its frontal projection does not
match where annotators put the iBUG points (its point 30 lies 0.44 of the way from the eyes to
the mouth, 300W's at about 0.65), so a frontal face fitted against it comes out pitched (the
astronaut portrait: -35 deg). This script keeps MediaPipe's depths (z) and replaces x, y with the
mean 300W **training** shape (2012 faces and their mirror images, generalised Procrustes
alignment), scaled to the model's centimetres, and prints the table for ``face_analysis.py``::

    python scripts/fit_pose_model.py --root ../shared/data/300w
"""

from __future__ import annotations

import argparse

import numpy as np

from faceland.data.datasets import load_300w
from faceland.face_analysis import FACE_MODEL_68, similarity_transform
from faceland.schemes import get_scheme


def _apply(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ m[:, :2].T + m[:, 2]


def mean_shape(shapes: np.ndarray, target: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Generalised Procrustes mean of ``(N, 68, 2)`` shapes, in ``target``'s frame and scale."""
    ref = target.copy()
    for _ in range(iterations):
        aligned = np.stack([_apply(similarity_transform(s, ref), s) for s in shapes])
        mean = aligned.mean(axis=0)
        ref = _apply(similarity_transform(mean, target), mean)
    return ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="../shared/data/300w")
    args = ap.parse_args()
    recs = load_300w(args.root, "train")
    scheme = get_scheme("68")
    shapes = np.stack([r.points for r in recs])
    mirrored = shapes[:, list(scheme.flip_permutation)] * [-1.0, 1.0]
    mean = mean_shape(np.concatenate([shapes, mirrored]), FACE_MODEL_68[:, :2])
    mean[:, 0] -= mean[:, 0].mean() - 0.0  # symmetric by construction; centre x on 0
    print(f"# {len(recs)} 300W train faces + mirrors; x, y in the model's centimetres")
    for i in range(0, 68, 2):
        row = ", ".join(f"({mean[j, 0]:.6f}, {mean[j, 1]:.6f})" for j in (i, i + 1))
        print(f"    {row},  # {i}, {i + 1}")


if __name__ == "__main__":
    main()
