"""Training augmentation for face crops.

Geometry (rotation, scale, translation, horizontal flip with point-index swap) is drawn as a
:class:`~faceland.geometry.CropParams` and folded into the single affine warp that cuts the crop,
so the image is interpolated once and the landmarks are mapped exactly. Photometric
augmentation (colour jitter, Gaussian blur, random erasing) and the degradations of real capture
(motion and defocus blur, low resolution, sensor noise, JPEG) are done on the crop with
albumentations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import albumentations as A
import numpy as np

from faceland.geometry import CropParams

__all__ = ["AugmentConfig", "TrainAugment"]


@dataclass
class AugmentConfig:
    """Augmentation strengths (probabilities in ``[0, 1]``).

    Attributes:
        rotation: maximum absolute rotation, degrees (uniform).
        scale: ``(min, max)`` multiplier of the crop side (uniform).
        shift: maximum translation of the crop centre as a fraction of its side (uniform per axis).
        flip: probability of a horizontal flip (with left/right point swap).
        color_jitter: probability of brightness/contrast/saturation/hue jitter.
        jitter: the jitter's ``(brightness, contrast, saturation, hue)`` strengths (albumentations
            ``ColorJitter``; seed 004 uses 0.1 for all four).
        blur: probability of a Gaussian blur.
        erase: probability of erasing 1-3 random rectangles (occlusion).
        grayscale: probability of converting to grey.
        downscale: probability of a down-then-up resampling of the crop to 25-60 % of its side
            (low-resolution capture: video, small faces).
        jpeg: probability of JPEG compression at quality 20-90.
        motion_blur: probability of a linear motion blur (kernel 3-9 px).
        defocus: probability of a defocus (disc) blur, radius 1-3 px.
        noise: probability of Gaussian sensor noise (std 2-10 % of the range).
        flip_x_offset: the labels' left-right annotation bias ``b`` in normalised crop units
            (fraction of the crop side): annotated x sits ``b`` right of the mirror-symmetric
            position, so a flipped label gets ``+2 b`` (x' = N - 1 - x + 2 b N in crop pixels)
            to stay in the same convention. 300W: 0.00265 (``scripts/flip_bias.py``); 0 = plain
            flip.
    """

    rotation: float = 30.0
    scale: tuple[float, float] = (0.9, 1.15)
    shift: float = 0.05
    flip: float = 0.5
    color_jitter: float = 0.8
    jitter: tuple[float, float, float, float] = (0.3, 0.3, 0.3, 0.05)
    blur: float = 0.2
    erase: float = 0.3
    grayscale: float = 0.05
    downscale: float = 0.0
    jpeg: float = 0.0
    motion_blur: float = 0.0
    defocus: float = 0.0
    noise: float = 0.0
    flip_x_offset: float = 0.0


class TrainAugment:
    """Draws crop geometry and applies photometric augmentation.

    Args:
        config: augmentation strengths.
        seed: seed of the geometric and photometric draws. Training calls :meth:`set_epoch`
            at every epoch in the main process and in each DataLoader worker
            (:class:`faceland.training.EpochIndexed`), so that workers do not repeat each
            other's draws and a resumed run repeats the draws of an uninterrupted one.
    """

    def __init__(self, config: AugmentConfig | None = None, seed: int | None = None) -> None:
        self.config = c = config or AugmentConfig()
        self.base_seed, self.epoch = seed, 0
        self.rng = random.Random(seed)
        self.photometric = A.Compose([
            A.ColorJitter(*c.jitter, p=c.color_jitter),
            A.GaussianBlur(blur_limit=(3, 5), p=c.blur),
            A.ToGray(p=c.grayscale),
            A.MotionBlur(blur_limit=(3, 9), p=c.motion_blur),
            A.Defocus(radius=(1, 3), p=c.defocus),
            A.Downscale(scale_range=(0.25, 0.6), p=c.downscale),
            A.GaussNoise(std_range=(0.02, 0.1), p=c.noise),
            A.ImageCompression(quality_range=(20, 90), p=c.jpeg),
            A.CoarseDropout(num_holes_range=(1, 3), hole_height_range=(0.1, 0.3),
                            hole_width_range=(0.1, 0.3), fill="random", p=c.erase),
        ], seed=seed)

    def set_epoch(self, epoch: int, worker: int = 0) -> None:
        """Reseed both streams from ``(seed, epoch, worker)`` alone (``worker`` 0: the main
        process, ``k + 1``: DataLoader worker ``k``), so that an epoch's draws do not depend on
        what earlier epochs drew (a resumed run repeats them exactly)."""
        self.epoch = epoch
        self.reseed(((self.base_seed or 0) * 1_000_003 + epoch) * 1009 + worker)

    def reseed(self, seed: int) -> None:
        """Reseed both the geometric and the photometric draws."""
        self.rng.seed(seed)
        self.photometric.set_random_seed(seed)

    def sample_geometry(self) -> CropParams:
        """Random :class:`CropParams` (rotation, scale, shift, flip)."""
        c, r = self.config, self.rng
        return CropParams(
            rotation=r.uniform(-c.rotation, c.rotation),
            scale=r.uniform(*c.scale),
            shift=(r.uniform(-c.shift, c.shift), r.uniform(-c.shift, c.shift)),
            flip=r.random() < c.flip,
        )

    def photometric_(self, crop: np.ndarray) -> np.ndarray:
        """Colour jitter, blur, grey, capture degradations (motion / defocus blur, down-up
        sampling, noise, JPEG) and erasing on an ``(N, N, 3)`` uint8 RGB crop."""
        return self.photometric(image=crop)["image"]
