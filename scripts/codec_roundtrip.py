"""Heatmap codec round trip on real 300W faces: encode ground truth, decode, measure NME.

The error floor each codec + decoder pair puts under any model that uses it (quantisation,
truncation, border effects), on the 554 images of 300W "common":

    python scripts/codec_roundtrip.py --data ../shared/data

Protocol: each face is cropped like faceland's models see it (tight ground-truth landmark box,
square, enlarged 1.25x, 256 x 256 crop: :func:`faceland.geometry.crop_affine`), its 68 points
are mapped exactly into the crop and normalised (``(u + 0.5) / 256``), encoded to 64 x 64 heatmaps
(1/4 of the crop, seed 001's setting), decoded, and compared with the exact points by the
inter-ocular NME (:func:`faceland.metrics.nme`; NME is invariant to the crop's similarity map, so
normalised crop coordinates suffice). Randomized rounding is random: ``RR, 1 draw`` is a single
encoding, ``RR, mean of n draws`` averages the decoded coordinates of ``n`` independent
encodings (tends to the truth: the encoding is unbiased) and ``RR, expected map`` decodes the
average of the ``n`` target maps (what a network trained on many draws regresses).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from faceland.codecs import (
    GaussianHeatmap,
    HeatmapCodec,
    RandomizedRoundingHeatmap,
    SoftmaxHeatmap,
)
from faceland.data.datasets import load_300w
from faceland.geometry import apply_affine, crop_affine, crop_to_normalized, landmark_box
from faceland.metrics import nme
from faceland.schemes import get_scheme

__all__ = ["ROW_KEYS", "normalized_common_points", "codec_roundtrip_nme", "format_table", "main"]


def normalized_common_points(data_root: str | Path, crop_size: int = 256,
                             enlarge: float = 1.25) -> np.ndarray:
    """300W "common" landmarks as normalised crop coordinates.

    Args:
        data_root: the shared data folder (holding ``300w/``).
        crop_size: N of the square crop.
        enlarge: crop side = max(box w, h) * enlarge.

    Returns:
        ``(554, 68, 2)`` float64 normalised crop coordinates ``(x, y)``.
    """
    recs = load_300w(Path(data_root) / "300w", "common")
    out = []
    for r in recs:
        a = crop_affine(landmark_box(r.points), crop_size, enlarge)
        out.append(crop_to_normalized(apply_affine(r.points, a), crop_size))
    return np.stack(out)


def _runs(size: int, draws: int, seed: int) -> dict[str, tuple[str, str, Callable[[],
                                                                      HeatmapCodec], str]]:
    """Row key -> (codec label, decoder, codec factory, mode) of the table."""
    gauss = lambda: GaussianHeatmap(size, sigma=1.75, kernel_size=7)  # noqa: E731
    offset = lambda: GaussianHeatmap(size, sigma=1.75, kernel_size=7, offset=True)  # noqa: E731
    rr = lambda: RandomizedRoundingHeatmap(  # noqa: E731
        size, sigma=1.0, generator=torch.Generator().manual_seed(seed))
    rr1 = lambda: RandomizedRoundingHeatmap(  # noqa: E731
        size, kernel="onehot", generator=torch.Generator().manual_seed(seed))
    soft = lambda: SoftmaxHeatmap(size, sigma=0.05)  # noqa: E731
    rows = {}
    for dec in ("argmax", "argmax_shift", "subpixel", "soft_argmax"):
        rows[f"gaussian:{dec}"] = ("Gaussian 7x7 s1.75", dec, gauss, "single")
    for dec in ("argmax", "argmax_shift", "subpixel", "local_mean", "soft_argmax"):
        rows[f"offset:{dec}"] = ("Gaussian+offset 7x7 s1.75", dec, offset, "single")
    rows["rr:argmax"] = ("RR Gaussian s1, 1 draw", "argmax", rr, "single")
    rows["rr-mean:argmax"] = (f"RR Gaussian s1, mean of {draws} draws", "argmax", rr, "mean")
    rows["rr-expected:local_mean"] = (f"RR Gaussian s1, expected map ({draws})", "local_mean", rr,
                                      "expected")
    rows["rr1-mean:argmax"] = (f"RR one-hot, mean of {draws} draws", "argmax", rr1, "mean")
    rows["rr1-expected:local_mean"] = (f"RR one-hot, expected map ({draws})", "local_mean", rr1,
                                       "expected")
    for dec in ("soft_argmax", "argmax"):
        rows[f"softmax:{dec}"] = ("Softmax s0.05 (sum 1)", dec, soft, "single")
    return rows


#: Keys of the rows :func:`codec_roundtrip_nme` can compute (``codec:decoder``).
ROW_KEYS = tuple(_runs(64, 1, 0))


def codec_roundtrip_nme(data_root: str | Path, heatmap_size: int = 64, crop_size: int = 256,
                        enlarge: float = 1.25, draws: int = 32, batch_size: int = 16,
                        seed: int = 0, points: np.ndarray | None = None,
                        keys: list[str] | None = None) -> list[dict]:
    """Mean NME (IOD, percent) of encode -> decode for every codec + decoder pair.

    Args:
        data_root: the shared data folder (holding ``300w/``); unused when ``points`` is given.
        heatmap_size: side of the square heatmaps.
        crop_size, enlarge: the crop (see :func:`normalized_common_points`).
        draws: randomized-rounding draws for the "mean" / "expected map" rows.
        batch_size: faces encoded at once (memory: ``batch * 68 * size^2 * 4`` bytes).
        seed: seed of the randomized-rounding generator.
        points: optional precomputed ``(N, 68, 2)`` normalised points.
        keys: rows to compute (see :data:`ROW_KEYS`); default all.

    Returns:
        One dict per row: ``key``, ``codec``, ``decoder``, ``nme`` (mean IOD NME in percent),
        ``max_px`` (largest point error in heatmap pixels).

    Raises:
        KeyError: unknown row key.
    """
    pts = normalized_common_points(data_root, crop_size, enlarge) if points is None else points
    scheme = get_scheme("68")
    gt = torch.from_numpy(pts).float()
    runs = _runs(heatmap_size, draws, seed)
    unknown = sorted(set(keys or ()) - set(runs))
    if unknown:
        raise KeyError(f"unknown rows {unknown}; known: {list(runs)}")
    results = []
    for key in keys or list(runs):
        label, dec, make, mode = runs[key]
        codec = make()
        preds = []
        for i in range(0, len(gt), batch_size):
            c = gt[i:i + batch_size]
            if mode == "single":
                preds.append(codec.decode(codec.encode(c), dec)[0])
            elif mode == "mean":
                acc = torch.zeros_like(c)
                for _ in range(draws):
                    acc += codec.decode(codec.encode(c), dec)[0]
                preds.append(acc / draws)
            else:
                hm = sum(codec.encode(c) for _ in range(draws)) / draws
                preds.append(codec.decode(hm, dec)[0])
        p = torch.cat(preds).double().numpy()
        e = nme(p, pts, scheme, "iod")
        results.append({"key": key, "codec": label, "decoder": dec, "nme": float(e.mean() * 100),
                        "max_px": float(np.abs(p - pts).max() * heatmap_size)})
    return results


def format_table(rows: list[dict]) -> str:
    """Markdown table of :func:`codec_roundtrip_nme` rows."""
    lines = ["| codec | decoder | NME (IOD, %) | max error (heatmap px) |", "|---|---|---|---|"]
    lines += [f"| {r['codec']} | {r['decoder']} | {r['nme']:.4f} | {r['max_px']:.3f} |"
              for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
                    help="shared data folder holding 300w/ (default: ../shared/data)")
    ap.add_argument("--heatmap-size", type=int, default=64)
    ap.add_argument("--crop-size", type=int, default=256)
    ap.add_argument("--draws", type=int, default=32)
    ap.add_argument("--rows", nargs="*", choices=ROW_KEYS, help="rows to compute (default all)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = codec_roundtrip_nme(args.data, args.heatmap_size, args.crop_size, draws=args.draws,
                               keys=args.rows or None)
    print(f"300W common, {args.crop_size} px crops (GT box x1.25), {args.heatmap_size}x"
          f"{args.heatmap_size} heatmaps")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
