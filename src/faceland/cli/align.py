"""``faceland align``: aligned face chips (ArcFace's 112 x 112 template) for face recognition.

For every face in every input image: ``DIR/<stem>_<k>.png`` (k = 0, 1, ... in the detector's
order), the chip cut by the similarity that puts the face's five points (eye centres, nose tip,
mouth corners, from the 68 landmarks) onto the template
(:func:`faceland.face_analysis.align_face`); and per image ``DIR/<stem>.json``::

    {"image": "photo.jpg", "width": 640, "height": 480, "size": 112, "template": "arcface",
     "template_points": [[x, y] x 5],
     "faces": [{"chip": "photo_0.png", "box": [x0, y0, x1, y1], "score": 0.99,
                "landmarks5": [[x, y] x 5], "transform": [[a, b, c], [d, e, f]],
                "inverse": [[...], [...]]}],
     "source": {"path": ..., "size": ..., "mtime_ns": ...}}

``transform`` maps image pixels to chip pixels (``[u, v] = T [x, y, 1]``; both 0-based pixel
centres) and ``inverse`` maps chip points back to the image. Outputs follow ``predict``'s rules
(:mod:`faceland.outputs`): written atomically, never through links, never onto an input (checked
before the model loads), ``--out`` left out of the input walk.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import numpy as np

from faceland.cli.common import DETECTOR_HELP, RUNTIME_HELP, UserError, progress
from faceland.cli.predict import _check_out_dir, _images, _predicted, _unique_stems, _write_error


def _chip_name(target: Path, k: int) -> Path:
    return target.with_name(f"{target.name}_{k}.png")


def _json_name(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _existing_chips(targets: dict[Path, Path]) -> list[Path]:
    """Files already in the output folders named like one of the targets' chips
    (``<stem>_<k>.png``): the only chip names that could be an input (or a hard link to one);
    each folder is listed once."""
    by_dir: dict[Path, set[str]] = {}
    for t in targets.values():
        by_dir.setdefault(t.parent, set()).add(t.name)
    found = []
    pattern = re.compile(r"(.+)_\d+\.png")
    for folder, names in by_dir.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            m = pattern.fullmatch(e.name)
            if m and m.group(1) in names:
                found.append(folder / e.name)
    return found


def _plan(args: argparse.Namespace, out: Path) -> tuple[list[Path], dict[Path, Path]]:
    """Images and their output stems, checked before the model loads: no JSON or chip may
    replace an input."""
    from faceland.data.formats import VIDEO_SUFFIXES
    from faceland.outputs import UnsafeOutputError, check_not_inputs

    items = _images(args.paths, out)
    if not items:
        raise UserError("no input images")
    targets = dict(zip((p for p, _ in items), (out / s for s in _unique_stems(items)),
                       strict=True))
    images = {p: t for p, t in targets.items() if p.suffix.lower() not in VIDEO_SUFFIXES}
    for p in targets:
        if p not in images:
            print(f"faceland: error: {p}: a video; align takes images (extract frames first)",
                  file=sys.stderr)
    try:
        check_not_inputs([_json_name(t) for t in images.values()] + _existing_chips(images),
                         targets)
    except UnsafeOutputError as e:
        raise UserError(str(e.strerror if e.filename is None else e)) from None
    return [p for p, _ in items], images


def _write(path: Path, target: Path, img: np.ndarray, faces, args) -> int:
    """One image's chips and JSON (each atomically); returns the faces written.

    Raises:
        OSError: a write failed; ValueError: a chip could not be encoded.
    """
    import cv2

    from faceland.face_analysis import align_face, template_points
    from faceland.geometry import invert_affine
    from faceland.outputs import atomic_write_bytes, atomic_write_json, source_record

    entries = []
    for k, f in enumerate(faces):
        chip, m = align_face(img, f.landmarks, args.size, args.template)
        ok, png = cv2.imencode(".png", np.ascontiguousarray(chip[..., ::-1]))
        if not ok:
            raise OSError(f"{target}: could not encode chip {k}")
        name = _chip_name(target, k)
        atomic_write_bytes(name, png.tobytes())
        entries.append({"chip": name.name, "box": [round(float(v), 2) for v in f.box],
                        "score": round(float(f.score), 4),
                        "landmarks5": [[round(float(x), 3), round(float(y), 3)]
                                       for x, y in f.landmarks5],
                        "transform": np.round(m, 8).tolist(),
                        "inverse": np.round(invert_affine(m), 8).tolist()})
    doc = {"image": str(path), "width": int(img.shape[1]), "height": int(img.shape[0]),
           "size": int(args.size), "template": args.template,
           "template_points": np.round(template_points(args.size, args.template), 4).tolist(),
           "faces": entries, "source": source_record(path)}
    atomic_write_json(_json_name(target), doc, indent=None)
    return len(entries)


def cmd_align(args: argparse.Namespace) -> int:
    from faceland.face_analysis import template_points
    from faceland.inference import FaceLandmarker

    try:
        template_points(args.size, args.template)
    except ValueError as e:
        raise UserError(f"--size / --template: {e}") from None
    out = Path(args.out)
    _check_out_dir(out)
    inputs, targets = _plan(args, out)
    failed = len(inputs) - len(targets)  # videos, reported by _plan
    lm = FaceLandmarker(args.model, detector=args.detector, runtime=args.runtime)
    if lm.num_points != 68:
        raise UserError(f"align needs a 68-point model (its eye, nose and mouth points); "
                        f"{args.model} predicts {lm.num_points}")
    images = [p for p in inputs if p in targets]
    with progress(len(images), "images", unit="img") as bar:
        for path, img, faces in _predicted(lm, images, args.workers, args.batch):
            bar.update()
            if faces is None:  # unreadable: reported, skipped
                print(f"faceland: error: {img}", file=sys.stderr)
                failed += 1
                continue
            try:
                n = _write(path, targets[path], img, faces, args)
            except OSError as e:  # full disk, a link or directory in the way
                print(_write_error(e, targets[path]), file=sys.stderr)
                failed += 1
                continue
            if not args.quiet:
                print(f"{path}: {n} face(s) -> {_json_name(targets[path])}")
    if failed:
        print(f"faceland: {failed} of {len(inputs)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def register(sub) -> None:
    """Add the command's parser to ``sub``."""
    from faceland.face_analysis import TEMPLATES

    p = sub.add_parser("align", help="aligned face chips (ArcFace 112 x 112): DIR/<stem>_<k>.png "
                                     "+ DIR/<stem>.json with each chip's similarity transform")
    p.add_argument("paths", nargs="+", help="image files or directories")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--size", type=int, default=112,
                   help="chip side in pixels (112 for ArcFace; the template is scaled)")
    p.add_argument("--template", choices=sorted(TEMPLATES), default="arcface",
                   help="five-point template (arcface: insightface's arcface_dst)")
    p.add_argument("--model", default=None,
                   help="68-point weights (.safetensors), exported .onnx, or name; default model")
    p.add_argument("--detector", default="default", help=DETECTOR_HELP)
    p.add_argument("--runtime", choices=["auto", "onnx", "openvino", "torch"], default="auto",
                   help=RUNTIME_HELP)
    p.add_argument("--workers", type=int, default=2,
                   help="decoder threads reading ahead (0: decode in the main thread)")
    p.add_argument("--batch", type=int, default=8,
                   help="run the faces of this many images through the model together")
    p.add_argument("--quiet", action="store_true", help="no line per image")
    p.set_defaults(func=cmd_align)
