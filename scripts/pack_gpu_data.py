"""A compact copy of 300W (train + common) for a GPU machine that cannot see ../shared.

    python scripts/pack_gpu_data.py [--src ../shared/data/300w] [--out gpu_data/300w]
        [--size 256] [--format webp] [--quality 85] [--max-per-folder N]

The lent GPU machines receive only the checkout (64 MiB in all, ignored folders named in the
device call's ``carry``), so the training data travels as a re-encoded copy in the ignored
folder ``gpu_data/``. Every image is cut down to what the 256 px runs read:

* **scale**: resized (area interpolation, never enlarged) so that the crop the models see (the
  landmark box side ``s = max(w, h)`` times ``enlarge`` 1.25) is at most ``--size`` pixels, i.e.
  the 256 px crops are taken at 1:1 instead of from the ~275 px the originals give;
* **context**: a square of ``--context`` x ``s`` (train, default 2.0: room for +-30 degree
  rotations, 1.25x zoom-out and box shifts, as much as the originals hold) or
  ``--test-context`` x ``s`` (common, default 1.5: evaluation crops ``1.25 s`` from the
  ground-truth box) around the landmark box centre, clamped to the image;
* **encoding**: WebP quality 85 (about 15 KB per image; JPEG at the same size would need
  quality 80 and decodes ~1 ms faster per image, ``--format jpg``).

The ``.pts`` files are rewritten in the new pixel frame (0-based pixel centres ``p`` become
``(p - corner + 0.5) * scale - 0.5``; written 1-based as iBUG's), so :func:`faceland.data.datasets.load_300w`
reads the copy as it reads the original. ``PACKED.json`` records the settings, counts and size.
NME is scale-free, so numbers measured on the copy are comparable; weights trained on it are
re-evaluated on the original images before they are reported (docs/gpu.md).

``--max-per-folder N`` keeps the first N images of each folder (the CPU smoke test's tiny copy).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from faceland.data.datasets import W300_SPLITS, load_300w
from faceland.data.formats import read_image, write_pts
from faceland.outputs import atomic_write_json

#: The splits the GPU runs read: training (with its validation share) and the common test set.
SPLITS = ("train", "common")


def pack_face(image: np.ndarray, points: np.ndarray, size: int, enlarge: float,
              context: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut and scale one face: ``(image, points)`` -> ``(smaller image, points in its frame)``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        points: ``(K, 2)`` 0-based pixel-centre landmarks.
        size: the largest crop side (``max(w, h) * enlarge`` of the landmark box) after scaling.
        enlarge: the training / evaluation crop enlargement.
        context: side of the kept square around the box centre, in landmark-box sides.
    """
    h, w = image.shape[:2]
    lo, hi = points.min(0), points.max(0)
    side = float(max(hi - lo))
    cx, cy = (lo + hi) / 2
    half = context * side / 2
    x0, y0 = max(0, int(np.floor(cx - half))), max(0, int(np.floor(cy - half)))
    x1, y1 = min(w, int(np.ceil(cx + half)) + 1), min(h, int(np.ceil(cy + half)) + 1)
    crop = image[y0:y1, x0:x1]
    f = min(1.0, size / max(1.0, side * enlarge))
    pts = points - [x0, y0]
    if f < 1.0:
        nw, nh = max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))
        fx, fy = nw / crop.shape[1], nh / crop.shape[0]
        crop = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA)
        pts = (pts + 0.5) * [fx, fy] - 0.5
    return np.ascontiguousarray(crop), pts


def pack(src: Path, out: Path, size: int = 256, enlarge: float = 1.25, context: float = 2.0,
         test_context: float = 1.5, fmt: str = "webp", quality: int = 85,
         max_per_folder: int = 0) -> dict:
    """Write the compact copy of ``src`` (an iBUG-layout 300W folder) to ``out``; returns the
    manifest (also written as ``out/PACKED.json``)."""
    params = ([cv2.IMWRITE_WEBP_QUALITY, quality] if fmt == "webp"
              else [cv2.IMWRITE_JPEG_QUALITY, quality])
    counts: dict[str, int] = {}
    total = 0
    for split in SPLITS:
        ctx = context if split == "train" else test_context
        records = load_300w(src, split)
        for folder in W300_SPLITS[split]:
            mine = [r for r in records if r.key.startswith(folder + "/")]
            if max_per_folder:
                mine = mine[:max_per_folder]
            for r in mine:
                img, pts = pack_face(read_image(r.image), r.points, size, enlarge, ctx)
                dst = out / Path(r.key).with_suffix("." + fmt)
                dst.parent.mkdir(parents=True, exist_ok=True)
                ok, buf = cv2.imencode("." + fmt, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
                if not ok:
                    raise RuntimeError(f"{r.image}: OpenCV could not encode it as {fmt}")
                dst.write_bytes(buf.tobytes())
                write_pts(dst.with_suffix(".pts"), pts)
                total += len(buf) + dst.with_suffix(".pts").stat().st_size
            counts[folder] = len(mine)
    manifest = {"source": str(src), "splits": list(SPLITS), "images": counts,
                "n_images": sum(counts.values()), "bytes": total, "size": size,
                "enlarge": enlarge, "context_train": context, "context_test": test_context,
                "format": fmt, "quality": quality, "max_per_folder": max_per_folder}
    atomic_write_json(out / "PACKED.json", manifest, indent=1)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="../shared/data/300w", help="the original 300W folder")
    ap.add_argument("--out", default="gpu_data/300w", help="the copy (an ignored folder)")
    ap.add_argument("--size", type=int, default=256, help="largest crop side after scaling")
    ap.add_argument("--enlarge", type=float, default=1.25)
    ap.add_argument("--context", type=float, default=2.0, help="train: kept square, box sides")
    ap.add_argument("--test-context", type=float, default=1.5, help="common: kept square")
    ap.add_argument("--format", choices=("webp", "jpg"), default="webp")
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--max-per-folder", type=int, default=0, help="0 = all (smoke: a few)")
    ap.add_argument("--max-mb", type=float, default=60.0, help="fail if the copy is larger")
    args = ap.parse_args(argv)
    src, out = Path(args.src), Path(args.out)
    if not src.is_dir():
        print(f"pack_gpu_data: {src}: no such folder (the 300W data)", file=sys.stderr)
        return 2
    m = pack(src, out, args.size, args.enlarge, args.context, args.test_context, args.format,
             args.quality, args.max_per_folder)
    mb = m["bytes"] / 1e6
    print(f"wrote {m['n_images']} faces to {out} ({mb:.1f} MB): "
          + ", ".join(f"{k} {v}" for k, v in m["images"].items()))
    if mb > args.max_mb:
        print(f"pack_gpu_data: {out} is {mb:.1f} MB, more than --max-mb {args.max_mb:g}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
