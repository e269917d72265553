"""MediaPipe Face Mesh (468 points) on a 300W split, mapped to 68 points, for
``faceland evaluate --predictions``; and the fit of the 468 -> 68 map on 300W train.

MediaPipe 0.10.21 (the last release with the ``solutions.face_mesh`` API and its model inside the
wheel) needs numpy < 2, which faceland's own dependencies do not allow, so this script runs in a
separate environment and imports only faceland's numpy/OpenCV modules (``PYTHONPATH=src``)::

    python3 -m venv /tmp/mpenv && /tmp/mpenv/bin/pip install mediapipe==0.10.21 "numpy<2"
    # predictions (image pixels, 0-based pixel centres, mapped to iBUG 68):
    PYTHONPATH=src /tmp/mpenv/bin/python scripts/mediapipe_predictions.py \\
        --root ../shared/data/300w --split common --boxes gt \\
        --out docs/results/mediapipe-facemesh-300w-common-gt.predictions.json
    faceland evaluate --dataset 300w --root ../shared/data/300w --split common --boxes gt \\
        --predictions docs/results/mediapipe-facemesh-300w-common-gt.predictions.json \\
        --json docs/results/mediapipe-facemesh-300w-common-gt.json
    # speed: median ms per image (MediaPipe's detector + mesh), 2 threads are MediaPipe's own:
    PYTHONPATH=src /tmp/mpenv/bin/python scripts/mediapipe_predictions.py --time assets/astronaut.jpg
    # re-fit the map (train split only; prints the index table for faceland.schemes):
    PYTHONPATH=src /tmp/mpenv/bin/python scripts/mediapipe_predictions.py \\
        --root ../shared/data/300w --split train --fit-map

Box sources, as in faceland's harness: ``gt`` gives MediaPipe the square crop of side
``max(w, h) * 2.0`` around the ground-truth landmark box (its own face detector then runs inside
the crop; MediaPipe needs more context than a 1.25x crop, since its detector must find the face
first); ``detector`` runs MediaPipe on the whole image and keeps the mesh nearest the
ground-truth face (centre within half the box side), else the face is missed (``null``).
MediaPipe's normalised coordinates are taken as pixel-edge fractions: ``x * W - 0.5`` is the
0-based pixel-centre coordinate.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from faceland.data.datasets import load_300w
from faceland.data.formats import read_image
from faceland.geometry import (
    apply_affine,
    crop_affine,
    invert_affine,
    landmark_box,
    nearest_box,
    warp_crop,
)
from faceland.outputs import atomic_write_json
from faceland.schemes import convert_points, get_scheme

CROP = 512  # side of the crop given to MediaPipe for the gt protocol, pixels
GT_ENLARGE = 2.0


def _meshes(fm, image: np.ndarray) -> list[np.ndarray]:
    """All ``(468, 2)`` meshes in an RGB image, pixels, 0-based pixel centres."""
    res = fm.process(image)
    h, w = image.shape[:2]
    out = []
    for face in res.multi_face_landmarks or []:
        p = np.array([(lm.x, lm.y) for lm in face.landmark], dtype=np.float64)
        out.append(p * [w, h] - 0.5)
    return out


def _nearest(meshes: list[np.ndarray], box: np.ndarray) -> np.ndarray | None:
    """The mesh whose box centre is nearest the box centre (within half the box side)."""
    i = nearest_box(np.array([landmark_box(m) for m in meshes]).reshape(-1, 4), box)
    return None if i is None else meshes[i]


def mesh_flip_permutation(fm, images: list[np.ndarray]) -> np.ndarray:
    """MediaPipe's left/right vertex permutation, by majority vote over mirrored images: vertex
    ``i`` of a face is vertex ``perm[i]`` of its mirror image (mapped back)."""
    votes = np.zeros((468, 468), dtype=np.int64)
    for img in images:
        m, mf = _meshes(fm, img), _meshes(fm, np.ascontiguousarray(img[:, ::-1]))
        if len(m) != 1 or len(mf) != 1:
            continue
        back = mf[0].copy()
        back[:, 0] = img.shape[1] - 1 - back[:, 0]
        j = np.linalg.norm(m[0][:, None] - back[None], axis=-1).argmin(axis=1)
        votes[np.arange(468), j] += 1
    from scipy.optimize import linear_sum_assignment

    # A mirror map is symmetric: score i -> j and j -> i together, then pick one permutation.
    _, perm = linear_sum_assignment(-(votes + votes.T))
    bad = int((perm[perm] != np.arange(468)).sum())
    if bad:
        raise RuntimeError(f"the voted MediaPipe flip permutation is not an involution at {bad} "
                           "vertices")
    return perm


def fit_symmetric_map(mean_dist: np.ndarray, perm468: np.ndarray) -> np.ndarray:
    """For each 68-point flip pair ``(k, k')`` the mirror-symmetric vertex pair ``(v, perm[v])``
    with the least summed mean distance; midline points get a midline vertex."""
    perm68 = get_scheme("68").flip_permutation
    best = np.zeros(68, dtype=np.int64)
    midline = np.flatnonzero(perm468 == np.arange(468))
    for k in range(68):
        k2 = perm68[k]
        if k2 == k:
            best[k] = midline[mean_dist[k, midline].argmin()]
        elif k < k2:
            v = (mean_dist[k] + mean_dist[k2, perm468]).argmin()
            best[k], best[k2] = v, perm468[v]
    return best


def predict468(fm, image: np.ndarray, gt_box: np.ndarray, boxes: str) -> np.ndarray | None:
    """MediaPipe's 468 points for the face in ``gt_box`` (image pixels), or None if missed."""
    if boxes == "detector":
        return _nearest(_meshes(fm, image), gt_box)
    a = crop_affine(gt_box, CROP, GT_ENLARGE)
    crop = warp_crop(image, a, CROP)
    centre = np.array([CROP / 2 - 0.5] * 2)
    m = _nearest(_meshes(fm, crop), np.r_[centre - CROP / 4, centre + CROP / 4])
    return None if m is None else apply_affine(m, invert_affine(a))


def time_mediapipe(mp, image: str) -> str:
    """Median milliseconds of MediaPipe (detector + mesh) on ``image`` over 30 runs, in words."""
    from faceland.profiling import median_ms

    img = read_image(image)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=10,
                                         refine_landmarks=False) as fm:
        ms = median_ms(lambda: fm.process(img), 30, warmup=3)
    return (f"mediapipe {mp.__version__} face mesh on {image} {img.shape[1]}x{img.shape[0]}: "
            f"{ms:.1f} ms per image (median of 30)")


def fitted_map_report(mean: np.ndarray, perm468: np.ndarray, n_fit: int) -> str:
    """``--fit-map``'s output: the symmetric 468 -> 68 map chosen from ``(68, 468)`` mean
    distances (IOD units) and the mesh's flip pairs."""
    best = fit_symmetric_map(mean, perm468)
    pairs = [(i, int(j)) for i, j in enumerate(perm468) if i < j]
    return (f"fitted on {n_fit} faces; mean distance of the chosen vertex (IOD units): "
            f"{mean[np.arange(68), best].mean():.4f} (unconstrained nearest: "
            f"{mean.min(axis=1).mean():.4f})\n"
            "68 map: (" + ", ".join(str(int(v)) for v in best) + ")\n"
            f"468 flip pairs ({len(pairs)}): {pairs}")


def main() -> None:
    import mediapipe as mp

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="../shared/data/300w")
    ap.add_argument("--split", default="common")
    ap.add_argument("--boxes", choices=["gt", "detector"], default="gt")
    ap.add_argument("--out", type=Path, help="predictions JSON to write")
    ap.add_argument("--time", metavar="IMAGE", help="print the median milliseconds of MediaPipe "
                    "(detector + mesh) on IMAGE over 30 runs, then exit")
    ap.add_argument("--fit-map", action="store_true",
                    help="choose, for each of the 68 points, the mesh vertex nearest on average "
                         "(in IOD units) over the split; use on train only")
    args = ap.parse_args()
    if args.time:
        print(time_mediapipe(mp, args.time))
        return
    records = load_300w(args.root, args.split)
    scheme = get_scheme("68")
    preds: dict[str, list | None] = {}
    dist_sum, n_fit, frontal = np.zeros((68, 468)), 0, []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=10,
                                         refine_landmarks=False) as fm:
        for i, r in enumerate(records):
            m = predict468(fm, read_image(r.image), landmark_box(r.points), args.boxes)
            if args.fit_map:
                if len(frontal) < 200:
                    frontal.append(read_image(r.image))
                if m is not None:
                    iod = np.linalg.norm(r.points[scheme.iod_pair[0]] - r.points[scheme.iod_pair[1]])
                    dist_sum += np.linalg.norm(r.points[:, None] - m[None], axis=-1) / iod
                    n_fit += 1
            else:
                preds[r.key] = None if m is None else np.round(
                    convert_points(m, "468", "68"), 3).tolist()
            if (i + 1) % 200 == 0:
                print(f"  {i + 1}/{len(records)}", file=sys.stderr, flush=True)
        perm468 = mesh_flip_permutation(fm, frontal) if args.fit_map else None
    if args.fit_map:
        print(fitted_map_report(dist_sum / max(n_fit, 1), perm468, n_fit))
        return
    if args.out is None:
        ap.error("--out is required unless --fit-map")
    doc = {
        "system": f"mediapipe-facemesh-{mp.__version__}",
        "scheme": "68",
        "box_source": args.boxes,
        "box_definition": f"MediaPipe's own detector inside the square crop of side max(w, h) * "
                          f"{GT_ENLARGE} around the gt landmark box" if args.boxes == "gt" else
                          "MediaPipe's own detector on the whole image, mesh nearest the face",
        "mapping": "MediaPipe 468 -> iBUG 68, faceland.schemes.convert_points (approximate)",
        "command": shlex.join(["python", "scripts/mediapipe_predictions.py", *sys.argv[1:]]),
        "landmarks": preds,
    }
    atomic_write_json(args.out, doc, indent=None)
    print(f"wrote {args.out}: {sum(v is not None for v in preds.values())} of {len(preds)} faces")


if __name__ == "__main__":
    main()
