"""Face-crop geometry: box -> square crop -> network input, and the exact inverse.

Coordinate convention (one for the whole library)
-------------------------------------------------
* Landmarks and boxes are in **pixels, 0-based pixel centres**: the centre of the top-left pixel
  is ``(0, 0)`` and that pixel covers ``[-0.5, 0.5] x [-0.5, 0.5]``. Files that use another origin
  are converted where they are read (iBUG ``.pts`` are 1-based: :func:`faceland.data.formats.read_pts`
  subtracts 1).
* A box is ``[x0, y0, x1, y1]`` in that frame; for a ground-truth box ``x0, y0`` are the minimum and
  ``x1, y1`` the maximum landmark coordinates.
* The **crop frame** of an ``N x N`` network input uses the same convention (pixel centres
  ``0 .. N-1``). Models predict **normalised crop coordinates** ``(u + 0.5) / N``, so that 0 and 1
  are the crop's outer pixel edges; :func:`normalized_to_crop` and :func:`crop_to_normalized`
  convert exactly.

The image -> crop map is the affine ``u = R(theta) (x - c) N / s + (N - 1) / 2`` with ``c`` the box
centre, ``s = max(w, h) * enlarge`` the side of the square crop in image pixels and ``R`` a rotation;
a horizontal flip composes ``u -> N - 1 - u``. It is exactly what :func:`cv2.warpAffine` samples
(OpenCV indexes pixel centres from 0), so the warp and the point map agree to float precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "landmark_box",
    "box_iou",
    "CropParams",
    "crop_affine",
    "invert_affine",
    "invert_affine_batch",
    "apply_affine",
    "warp_crop",
    "normalized_to_crop",
    "crop_to_normalized",
    "nearest_box",
]


def landmark_box(points: np.ndarray) -> np.ndarray:
    """Tight box ``[x0, y0, x1, y1]`` of ``(K, 2)`` landmarks (pixels, same frame as the points).

    Non-finite points (missing annotations) are ignored.

    Raises:
        ValueError: if no finite point is given.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        raise ValueError("cannot build a box from landmarks with no finite point")
    return np.array([*pts.min(axis=0), *pts.max(axis=0)], dtype=np.float64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Args:
        a: ``(M, 4)`` ``[x0, y0, x1, y1]`` boxes; b: ``(N, 4)`` boxes (same frame and units).

    Returns:
        ``(M, N)`` IoU in ``[0, 1]`` (0 for empty boxes).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass(frozen=True)
class CropParams:
    """Random or fixed perturbation of the crop (all identities by default).

    Attributes:
        rotation: degrees, counter-clockwise in the displayed image.
        scale: multiplies the crop side (``> 1`` zooms out).
        shift: ``(dx, dy)`` of the crop centre as a fraction of the crop side.
        flip: mirror the crop horizontally (point indices must be swapped by the caller,
            see :meth:`faceland.schemes.LandmarkScheme.flip`).
    """

    rotation: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False


def crop_affine(
    box: np.ndarray | list[float],
    size: int,
    enlarge: float = 1.25,
    params: CropParams | None = None,
) -> np.ndarray:
    """The ``2 x 3`` affine that maps image pixels to crop pixels.

    Args:
        box: ``[x0, y0, x1, y1]``, pixels, 0-based pixel-centre image frame.
        size: N, the side of the square network input in pixels.
        enlarge: the crop side is ``max(w, h) * enlarge`` image pixels (HRNet/MMPose: 1.25).
        params: optional rotation / scale / shift / flip (see :class:`CropParams`).

    Returns:
        ``(2, 3)`` float64 matrix ``A`` with ``[u, v]^T = A [x, y, 1]^T`` (crop frame, 0-based).

    Raises:
        ValueError: for a degenerate box or a non-positive size.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * enlarge
    if not (side > 0 and math.isfinite(side)) or size <= 0:
        raise ValueError(f"degenerate crop: box={list(box)}, size={size}")
    p = params or CropParams()
    side *= p.scale
    cx = (x0 + x1) / 2 + p.shift[0] * side
    cy = (y0 + y1) / 2 + p.shift[1] * side
    k = size / side
    t = math.radians(p.rotation)
    # Counter-clockwise rotation of the content as displayed (y points down).
    cos, sin = math.cos(t) * k, math.sin(t) * k
    half = (size - 1) / 2
    a = np.array(
        [[cos, sin, half - cos * cx - sin * cy], [-sin, cos, half + sin * cx - cos * cy]],
        dtype=np.float64,
    )
    if p.flip:
        a = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([a, [0, 0, 1]])
    return a


def invert_affine(a: np.ndarray) -> np.ndarray:
    """Exact inverse of a ``(2, 3)`` affine (float64)."""
    m = np.vstack([np.asarray(a, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(m)[:2]


def invert_affine_batch(a: np.ndarray) -> np.ndarray:
    """Exact inverses of ``(F, 2, 3)`` affines (float64), vectorised: ``[A^-1 | -A^-1 t]``."""
    a = np.asarray(a, dtype=np.float64)
    m = np.linalg.inv(a[:, :, :2])
    return np.concatenate([m, -(m @ a[:, :, 2:])], axis=2)


def apply_affine(points: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` points with a ``(2, 3)`` affine (or ``(N, 2, 3)`` with ``(N, K, 2)``)."""
    pts = np.asarray(points, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    return pts @ np.swapaxes(a[..., :2], -1, -2) + a[..., None, :, 2] if a.ndim == 3 else (
        pts @ a[:, :2].T + a[:, 2]
    )


def warp_crop(image: np.ndarray, a: np.ndarray, size: int) -> np.ndarray:
    """Sample the ``size x size`` crop defined by affine ``a`` (bilinear, black border).

    When the crop shrinks the image by more than 2x (a large face in a large photo), the covered
    region is first reduced by an integer factor with area averaging so that the bilinear warp
    does not alias; the point map ``a`` is unchanged by this (the reduction is composed into the
    warp).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` uint8 or float array.
        a: ``(2, 3)`` affine image -> crop (see :func:`crop_affine`).
        size: N, output side in pixels.

    Returns:
        ``(N, N[, C])`` array of the image's dtype.
    """
    a = np.asarray(a, dtype=np.float64)
    k = math.sqrt(abs(np.linalg.det(a[:, :2])))
    if k < 0.5:
        inv = invert_affine(a)
        corners = apply_affine(np.array([[-1, -1], [size, -1], [-1, size], [size, size]]), inv)
        h, w = image.shape[:2]
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [w, h])
        if x1 > x0 and y1 > y0:
            # Reduce by an integer factor f (area averaging; OpenCV's fast path), leaving a warp
            # that shrinks by k * f in [0.5, 1). The region is zero-padded to a multiple of f:
            # zeros are what the warp's constant border gives outside the image anyway.
            f = int(1.0 / k)
            roi = image[y0:y1, x0:x1]
            ph, pw = -(y1 - y0) % f, -(x1 - x0) % f
            if ph or pw:
                roi = cv2.copyMakeBorder(roi, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
            rh, rw = roi.shape[0] // f, roi.shape[1] // f
            small = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
            # small pixel centre j <-> image coordinate x0 + (j + 0.5) * f - 0.5
            to_img = np.array([[f, 0, x0 + 0.5 * f - 0.5], [0, f, y0 + 0.5 * f - 0.5]])
            a = a @ np.vstack([to_img, [0, 0, 1]])
            image = small
    return cv2.warpAffine(
        image, a, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def normalized_to_crop(coords: np.ndarray, size: int) -> np.ndarray:
    """Normalised crop coordinates ``[0, 1]`` (outer pixel edges) -> crop pixels (0-based)."""
    return np.asarray(coords, dtype=np.float64) * size - 0.5


def crop_to_normalized(points: np.ndarray, size: int) -> np.ndarray:
    """Crop pixels (0-based pixel centres) -> normalised crop coordinates in ``[0, 1]``."""
    return (np.asarray(points, dtype=np.float64) + 0.5) / size


def nearest_box(candidates: np.ndarray, box: np.ndarray) -> int | None:
    """Index of the candidate box whose centre is nearest ``box``'s centre, if that distance is
    below half of ``box``'s longer side; else ``None``. The rule by which an evaluation matches
    a detection (or another system's face) to an annotated face.

    Args:
        candidates: ``(M, 4)`` boxes ``[x0, y0, x1, y1]`` (image pixels); ``M`` may be 0.
        box: ``(4,)`` the annotated face's box, same frame.

    Returns:
        The index into ``candidates``, or ``None`` (no candidate, or the nearest is too far).
    """
    cands = np.asarray(candidates, dtype=np.float64).reshape(-1, 4)
    if not len(cands):
        return None
    box = np.asarray(box, dtype=np.float64)
    dist = np.linalg.norm((cands[:, :2] + cands[:, 2:]) / 2 - (box[:2] + box[2:]) / 2, axis=1)
    i = int(np.argmin(dist))
    return i if dist[i] < 0.5 * max(box[2] - box[0], box[3] - box[1]) else None
