"""Drawing landmarks on images (overlays for ``faceland predict``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = ["draw_faces", "save_image"]


def draw_faces(image: np.ndarray, faces: Sequence, color: tuple[int, int, int] = (0, 255, 0),
               box_color: tuple[int, int, int] = (255, 160, 0)) -> np.ndarray:
    """Return a copy of an ``(H, W, 3)`` uint8 RGB image with boxes and landmarks drawn.

    ``faces`` are :class:`faceland.inference.Face` objects (image pixels, 0-based pixel
    centres). Marker size scales with the face size.
    """
    out = np.ascontiguousarray(image.copy())
    for f in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        side = max(x1 - x0, y1 - y0, 1)
        t = max(1, side // 150)
        cv2.rectangle(out, (x0, y0), (x1, y1), box_color, t, cv2.LINE_AA)
        r = max(1, side // 90)
        for x, y in f.landmarks:
            # 4 fractional bits: sub-pixel accurate markers
            cv2.circle(out, (int(round(x * 16)), int(round(y * 16))), r * 16, color, -1,
                       cv2.LINE_AA, shift=4)
    return out


def save_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image (PNG/JPEG by suffix); parent folders are created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f"{p}: could not write image")
    return p
