"""Overlay figures for the docs: the astronaut photo and a 'group photo' collage of real faces.

    python scripts/make_overlays.py --data ../shared/data --out docs/figures

The group image is a 3 x 2 collage of six 300W common-set photos (real faces, several per tile
where the photo has them), since no group photo ships with the packages available offline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from faceland.data.datasets import load_300w
from faceland.data.formats import read_image
from faceland.inference import FaceLandmarker
from faceland.visualize import draw_faces, save_image

REPO = Path(__file__).resolve().parents[1]


def collage(images: list[np.ndarray], tile: int = 320, cols: int = 3) -> np.ndarray:
    rows = (len(images) + cols - 1) // cols
    canvas = np.full((rows * tile, cols * tile, 3), 255, np.uint8)
    for i, img in enumerate(images):
        k = tile / max(img.shape[:2])
        small = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        r, c = divmod(i, cols)
        canvas[r * tile : r * tile + small.shape[0], c * tile : c * tile + small.shape[1]] = small
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "figures")
    args = ap.parse_args()
    lm = FaceLandmarker()
    astro = read_image(REPO / "assets" / "astronaut.jpg")
    save_image(args.out / "astronaut.jpg", draw_faces(astro, lm.predict(astro)))
    recs = load_300w(Path(args.data) / "300w", "common")
    group = collage([read_image(r.image) for r in recs[3::90][:6]])
    faces = lm.predict(group)
    save_image(args.out / "group.jpg", draw_faces(group, faces))
    print(f"astronaut: {len(lm.predict(astro))} face(s); group collage: {len(faces)} face(s)")


if __name__ == "__main__":
    main()
