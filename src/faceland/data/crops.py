"""Torch dataset of face crops: records -> (network input, normalised crop coordinates)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from faceland.data.datasets import FaceRecord
from faceland.data.formats import read_image
from faceland.geometry import (
    CropParams,
    apply_affine,
    crop_affine,
    crop_to_normalized,
    landmark_box,
    warp_crop,
)
from faceland.schemes import LandmarkScheme, get_scheme
from faceland.transforms import TrainAugment

__all__ = ["CropDataset", "image_to_tensor"]


def image_to_tensor(crops: np.ndarray) -> torch.Tensor:
    """``(N, N, 3)`` or ``(B, N, N, 3)`` uint8 RGB -> float32 ``(3, N, N)`` / ``(B, 3, N, N)`` in
    ``[0, 1]`` (the input every faceland model takes; models normalise internally)."""
    t = torch.from_numpy(np.ascontiguousarray(crops)).float().div_(255.0)
    return t.permute(2, 0, 1) if t.ndim == 3 else t.permute(0, 3, 1, 2)


class CropDataset(Dataset):
    """Crops of annotated faces for training and evaluation.

    Each item is a dict:
        * ``image``: float32 ``(3, N, N)``, RGB in ``[0, 1]``;
        * ``target``: float32 ``(K, 2)``, normalised crop coordinates (``(u + 0.5) / N``);
        * ``weight``: float32 ``(K,)``, per-point loss weight: ``record.meta["point_weight"]``
          (default 1; e.g. below 1 for pseudo-labels), 0 for a missing (non-finite) point, whose
          ``target`` is then 0;
        * ``target5`` / ``weight5``: float32 ``(5, 2)`` / ``(5,)``: real 5-point labels
          (MTFL's eye centres, nose tip, mouth corners; ``record.meta["points5"]``, image
          pixels) in normalised crop coordinates, weighted by ``record.meta["five_weight"]``;
          zeros and weight 0 for records without them (partial supervision, see
          :func:`faceland.schemes.five_point_matrix`);
        * ``affine``: float64 ``(2, 3)``, image -> crop pixels (for mapping predictions back);
        * ``index``: int.

    Args:
        records: annotated faces (points in pixels, 0-based pixel centres, image frame).
        scheme: the landmark scheme (its flip permutation is applied with flips). For a subset
            scheme (``scheme.parent``, e.g. ``"1"``, the IMM nose tip) the records carry the
            parent's points: the box and the flip use all of them, the target keeps
            ``scheme.indices``.
        input_size: N.
        enlarge: crop side = ``max(box w, h) * enlarge``.
        augment: training augmentation, or ``None`` for the fixed evaluation crop.
        box_source: ``"gt"`` (tight landmark box) or ``"record"`` (``record.detector_box`` used
            as given, e.g. 300W's official ``bb_detector`` boxes, without calibration).
        cache: keep decoded images in memory (fast epochs; ~0.6 MB per 448 px image).
    """

    def __init__(self, records: Sequence[FaceRecord], scheme: LandmarkScheme, input_size: int,
                 enlarge: float = 1.25, augment: TrainAugment | None = None,
                 box_source: str = "gt", cache: bool = True) -> None:
        if box_source not in ("gt", "record"):
            raise ValueError(f"box_source must be 'gt' or 'record', not {box_source!r}")
        self.records = list(records)
        self.scheme = scheme
        self._flip_perm = list(get_scheme(scheme.parent).flip_permutation if scheme.parent
                               else scheme.flip_permutation)
        self.input_size = input_size
        self.enlarge = enlarge
        self.augment = augment
        self.box_source = box_source
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        self._perm5 = list(get_scheme("5").flip_permutation)
        # Labels' left-right bias in crop pixels: a flipped label moves by 2 b (see AugmentConfig).
        self._flip_shift = 2.0 * input_size * (augment.config.flip_x_offset if augment else 0.0)

    def __len__(self) -> int:
        return len(self.records)

    def image(self, i: int) -> np.ndarray:
        """Decoded ``(H, W, 3)`` uint8 RGB image of record ``i`` (cached when enabled)."""
        if self._cache is None:
            return read_image(self.records[i].image)
        if i not in self._cache:
            self._cache[i] = read_image(self.records[i].image)
        return self._cache[i]

    def box(self, i: int) -> np.ndarray:
        """Crop box ``[x0, y0, x1, y1]`` of record ``i`` (pixels, 0-based pixel centres)."""
        r = self.records[i]
        if self.box_source == "record":
            if r.detector_box is None:
                raise ValueError(f"{r.image}: no detector box")
            return r.detector_box
        return landmark_box(r.points)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        img = self.image(i)
        n = self.input_size
        params = self.augment.sample_geometry() if self.augment else CropParams()
        a = crop_affine(self.box(i), n, self.enlarge, params)
        crop = warp_crop(img, a, n)
        pts = apply_affine(r.points, a)
        five = r.meta.get("points5")
        five = apply_affine(five, a) if five is not None else np.zeros((5, 2))
        if params.flip:
            # The affine already mirrored x; only the indices still need swapping (and the
            # labels' annotation bias, if any, re-applied on the mirrored side).
            pts, five = pts[self._flip_perm], five[self._perm5]
            pts[:, 0] += self._flip_shift
            five[:, 0] += self._flip_shift
        pts = self.scheme.select(pts)
        target = crop_to_normalized(pts, n).astype(np.float32)
        finite = np.isfinite(target).all(axis=1)
        weight = finite * np.float32(r.meta.get("point_weight", 1.0))
        target[~finite] = 0.0
        if self.augment:
            crop = self.augment.photometric_(crop)
        w5 = float(r.meta.get("five_weight", 0.0)) if "points5" in r.meta else 0.0
        return {
            "image": image_to_tensor(crop),
            "target": torch.from_numpy(target),
            "weight": torch.from_numpy(weight.astype(np.float32)),
            "target5": torch.from_numpy(crop_to_normalized(five, n).astype(np.float32)),
            "weight5": torch.full((5,), w5, dtype=torch.float32),
            "affine": torch.from_numpy(a),
            "index": i,
        }
