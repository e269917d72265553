"""``faceland predict``: landmarks for images, folders, videos and cameras."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from faceland.cli.common import DETECTOR_HELP, RUNTIME_HELP, UserError, progress


def _images(paths: list[str]) -> list[tuple[Path, Path]]:
    """``(file, output stem relative to --out)`` for every input: a file argument writes
    ``<stem>``; a directory's files mirror their path relative to that directory."""
    from faceland.data.formats import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    out: list[tuple[Path, Path]] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file()
                           and q.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            if not found:
                print(f"faceland: warning: {p}: no image or video files in directory",
                      file=sys.stderr)
            out += [(q, q.relative_to(p).with_suffix("")) for q in found]
        else:
            out.append((p, Path(p.stem)))  # missing / non-image files are reported when read
    return out


def _unique_stems(items: list[tuple[Path, Path]]) -> list[Path]:
    """Output stems that never collide within one run: ``a.jpg`` and ``a.png`` in one folder
    become ``a`` and ``a.png``; further clashes get ``_2``, ``_3``, ... (checked against every
    stem already taken, so a suffix never lands on another input's name)."""
    taken: set[str] = set()
    out = []
    for path, stem in items:
        cand = stem
        if str(cand) in taken:
            cand = stem.with_name(f"{stem.name}{path.suffix.lower()}")
        k = 2
        while str(cand) in taken:
            cand = stem.with_name(f"{stem.name}_{k}")
            k += 1
        taken.add(str(cand))
        out.append(cand)
    return out


def _out(target: Path, ext: str) -> Path:
    """``target`` + ``ext`` (``photo.v2`` -> ``photo.v2.json``; ``with_suffix`` would drop ``.v2``)."""
    return target.with_name(target.name + ext)


def _check_out_dir(out: Path) -> None:
    """``--out`` is (or can be made) a writable directory; checked before the model loads."""
    import tempfile

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".faceland-write-test-"):
            pass
    except OSError as e:
        raise UserError(f"--out {out}: not writable ({e.strerror or e})") from None


def _atomic_write(path: Path, write) -> None:
    """``write(tmp)`` then rename onto ``path``: a killed run never leaves a partial file."""
    import os

    tmp = path.with_name(f".{path.name}.part{path.suffix}")  # keeps the suffix for OpenCV
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_outputs(path: Path, target: Path, img: np.ndarray, faces, args, sink=None) -> None:
    """JSON (or a line of ``--jsonl``) and overlay of one image, each written atomically;
    raises OSError on a write failure."""
    from faceland.inference import result_json
    from faceland.visualize import draw_faces, save_image

    doc = result_json(path, img, faces)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not args.no_overlay:
        _atomic_write(_out(target, ".png"), lambda t: save_image(t, draw_faces(img, faces)))
    if sink is not None:
        sink.write(json.dumps(doc) + "\n")
        sink.flush()
    else:
        _atomic_write(_out(target, ".json"), lambda t: t.write_text(json.dumps(doc) + "\n"))


def _complete(target: Path, args) -> bool:
    """``--resume``: the image's outputs exist and its JSON parses."""
    try:
        json.loads(_out(target, ".json").read_text())
    except (OSError, ValueError):
        return False
    return args.no_overlay or _out(target, ".png").exists()


def _open_jsonl(path: Path, resume: bool):
    """The ``--jsonl`` file and, with ``resume``, the images it already holds (a partial last
    line from a killed run is dropped first)."""
    done: set[str] = set()
    if resume and path.exists():
        keep = []
        for line in path.read_text().splitlines():
            try:
                done.add(json.loads(line)["image"])
                keep.append(line)
            except (ValueError, KeyError, TypeError):
                continue
        _atomic_write(path, lambda t: t.write_text("".join(x + "\n" for x in keep)))
        return path.open("a"), done
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w"), done


def _prefetched(paths: list[Path], workers: int):
    """``(path, image or FormatError)`` in order, decoded ahead by ``workers`` threads
    (OpenCV's decoder releases the GIL; at most ``4 * workers`` images wait in memory)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from faceland.data.formats import FormatError, read_image

    def load(p: Path):
        try:
            return read_image(p)
        except FormatError as e:
            return e

    if workers < 1:
        for p in paths:
            yield p, load(p)
        return
    with ThreadPoolExecutor(workers) as pool:
        queue: deque = deque()
        it = iter(paths)
        for p in it:
            queue.append((p, pool.submit(load, p)))
            if len(queue) >= 4 * workers:
                break
        while queue:
            p, fut = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(load, nxt)))
            yield p, fut.result()


def _save_image_result(path: Path, target: Path, img, faces, args, sink) -> int:
    """Write one image's outputs and say so; 1 if writing failed (reported), else 0."""
    try:
        _write_outputs(path, target, img, faces, args, sink)
    except OSError as e:  # the output could not be written: report, keep going
        print(f"faceland: error: {e.filename or target}: cannot write output "
              f"({e.strerror or e})", file=sys.stderr)
        return 1
    if not args.quiet:
        where = args.jsonl if sink is not None else _out(target, ".json")
        print(f"{path}: {len(faces)} face(s) -> {where}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from faceland.data.formats import VIDEO_SUFFIXES, FormatError
    from faceland.inference import FaceLandmarker

    if not args.paths and args.camera is None:
        raise UserError("give image or video paths, or --camera N")
    items = _images(args.paths)
    if args.paths and not items:
        raise UserError("no input images")
    out = Path(args.out)
    _check_out_dir(out)
    sink, done = _open_jsonl(Path(args.jsonl), args.resume) if args.jsonl else (None, set())
    lm = FaceLandmarker(args.model, detector=args.detector, flip_test=args.flip_test,
                        runtime=args.runtime)
    if args.camera is not None:
        return _predict_camera(lm, args.camera, out, args)
    targets = dict(zip((p for p, _ in items), (out / s for s in _unique_stems(items)),
                       strict=True))
    videos = [p for p, _ in items if p.suffix.lower() in VIDEO_SUFFIXES]
    images = [p for p, _ in items if p.suffix.lower() not in VIDEO_SUFFIXES]
    if args.resume:
        before = len(images)
        images = [p for p in images if (str(p) not in done if sink is not None
                                        else not _complete(targets[p], args))]
        if before > len(images):
            print(f"faceland: --resume: {before - len(images)} of {before} image(s) already "
                  "done", file=sys.stderr)
    failed = 0
    try:
        for path in videos:
            target = targets[path]
            try:
                n = _predict_video(lm, path, target, args)
                print(f"{path}: {n} -> {_out(target, '.jsonl')}")
            except FormatError as e:
                print(f"faceland: error: {e}", file=sys.stderr)
                failed += 1
        with progress(len(images), "images", unit="img") as bar:
            batch: list = []
            stream = _prefetched(images, args.workers)
            while True:
                item = next(stream, None)
                if item is not None:
                    path, img = item
                    bar.update()
                    if isinstance(img, FormatError):
                        print(f"faceland: error: {img}", file=sys.stderr)
                        failed += 1
                    else:
                        batch.append((path, img))
                if batch and (item is None or len(batch) >= args.batch):
                    # the faces of several images go through the model as one batch
                    results = lm.predict_batch([im for _, im in batch])
                    for (path, img), faces in zip(batch, results, strict=True):
                        failed += _save_image_result(path, targets[path], img, faces, args,
                                                     sink)
                    batch = []
                if item is None:
                    break
    finally:
        if sink is not None:
            sink.close()
    if failed:
        print(f"faceland: {failed} of {len(items)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _video_landmarker(lm, args: argparse.Namespace):
    from faceland.tracking import VideoLandmarker

    return VideoLandmarker(lm, tracking=not args.no_tracking, detect_every=args.detect_every,
                           smoothing="none" if args.smoothing == "savgol" else args.smoothing,
                           flow=not args.no_flow)


class _VideoOutput:
    """``<target>.jsonl`` (one line per processed frame, written as it comes) and the overlay
    ``<target>.mp4``."""

    def __init__(self, target: Path, fps: float, overlay: bool) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self.path = _out(target, ".jsonl")
        self.lines = self.path.open("w")
        self.mp4, self.fps, self.overlay, self.writer = _out(target, ".mp4"), fps, overlay, None
        self.tracks: set[int] = set()

    def write(self, index: int, time_ms: float, frame: np.ndarray | None, faces) -> None:
        import cv2

        from faceland.visualize import draw_faces

        self.tracks.update(f.track for f in faces)
        doc = {"frame": int(index), "time_ms": round(float(time_ms), 3),
               "faces": [f.to_dict() for f in faces]}
        self.lines.write(json.dumps(doc) + "\n")
        if self.overlay and frame is not None:
            if self.writer is None:
                h, w = frame.shape[:2]
                self.writer = cv2.VideoWriter(str(self.mp4), cv2.VideoWriter_fourcc(*"mp4v"),
                                              self.fps, (w, h))
            self.writer.write(np.ascontiguousarray(draw_faces(frame, faces)[..., ::-1]))

    def close(self) -> None:
        self.lines.close()
        if self.writer is not None:
            self.writer.release()


def _predict_video(lm, path: Path, target: Path, args: argparse.Namespace) -> str:
    """Video: ``<target>.jsonl`` with one line per processed frame, overlay ``<target>.mp4``.
    Returns a summary for the console.

    Raises:
        faceland.errors.FormatError: unreadable video, or one that stops before the frame count
            its header declares (the results of the decoded frames are written first).
    """
    import time

    from faceland.data.formats import FormatError, VideoReader
    from faceland.tracking import smooth_tracks

    video = _video_landmarker(lm, args)
    offline = args.smoothing == "savgol"
    reader = VideoReader(path, args.every)
    out = _VideoOutput(target, reader.fps / args.every, not args.no_overlay)
    done, secs, buffered = 0, 0.0, []
    try:
        with reader, progress(reader.declared // args.every, path.name) as bar:
            for i, frame in reader:
                t_ms = i * 1000.0 / reader.fps
                t0 = time.perf_counter()
                faces = video.process(frame, t_ms)
                secs += time.perf_counter() - t0
                if offline:
                    buffered.append((i, t_ms, faces))
                else:
                    out.write(i, t_ms, frame, faces)
                done += 1
                bar.update()
        if offline:  # zero-lag smoothing of whole tracks, then a second pass for the overlay
            smoothed = smooth_tracks([f for _, _, f in buffered])
            frames = VideoReader(path, args.every) if not args.no_overlay else None
            it = iter(frames) if frames is not None else None
            for (i, t_ms, _), faces in zip(buffered, smoothed, strict=True):
                frame = next(it)[1] if it is not None else None
                out.write(i, t_ms, frame, faces)
    finally:
        out.close()
    if reader.truncated:
        raise FormatError(f"{path}: decoding stopped after {reader.decoded} of the "
                          f"{reader.declared} frames its header declares (at "
                          f"{reader.decoded / reader.fps:.2f} s; truncated or corrupt); results "
                          f"of the decoded frames are in {out.path}")
    fps = done / secs if secs > 0 else float("nan")
    return (f"{done} frame(s), {len(out.tracks)} track(s), {fps:.0f} frames/s "
            f"(detector on {video.detector_runs} frame(s))")


def _predict_camera(lm, index: int, out: Path, args: argparse.Namespace) -> int:
    """Camera ``index`` until Ctrl-C or ``--max-frames``: ``camera<N>.jsonl`` + overlay
    ``camera<N>.mp4``; time stamps are milliseconds since the first frame."""
    import time

    from faceland.data.formats import VideoReader

    try:
        reader = VideoReader(index)
    except OSError as e:
        raise UserError(str(e)) from None
    video = _video_landmarker(lm, args)
    sink = _VideoOutput(out / f"camera{index}", reader.fps, not args.no_overlay)
    n, t_start, last = 0, time.monotonic(), -1.0
    try:
        with reader, progress(args.max_frames, reader.name) as bar:
            for _, frame in reader:
                t_ms = max((time.monotonic() - t_start) * 1000.0, last + 1e-3)
                last = t_ms
                sink.write(n, t_ms, frame, video.process(frame, t_ms))
                n += 1
                bar.update()
                if args.max_frames and n >= args.max_frames:
                    break
    except KeyboardInterrupt:
        pass  # stopping a live stream is the normal end
    finally:
        sink.close()
    print(f"{reader.name}: {n} frame(s), {len(sink.tracks)} track(s) -> {sink.path}")
    return 0


def register(sub) -> None:
    """Add the command's parser to ``sub``."""
    p = sub.add_parser("predict", help="landmarks for images, videos and cameras: DIR/<stem>.json "
                                       "(videos: .jsonl) + overlay")
    p.add_argument("paths", nargs="*", help="image or video files, or directories")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--model", default=None,
                   help="weights (.safetensors), exported .onnx (ONNX Runtime), or name; default model")
    p.add_argument("--detector", default="default", help=DETECTOR_HELP)
    p.add_argument("--flip-test", action="store_true", help="flip test-time augmentation")
    p.add_argument("--runtime", choices=["auto", "onnx", "torch"], default="auto", help=RUNTIME_HELP)
    p.add_argument("--no-overlay", action="store_true", help="write JSON only")
    p.add_argument("--every", type=int, default=1, help="videos: process every N-th frame")
    p.add_argument("--workers", type=int, default=2,
                   help="images: decoder threads reading ahead (0: decode in the main thread)")
    p.add_argument("--resume", action="store_true",
                   help="skip images whose outputs are complete (outputs are written "
                        "atomically, so a killed run resumes where it stopped)")
    p.add_argument("--jsonl", default=None, metavar="FILE",
                   help="images: one JSON line per image in FILE instead of a JSON per image")
    p.add_argument("--batch", type=int, default=8,
                   help="images: run the faces of this many images through the model together")
    p.add_argument("--quiet", action="store_true", help="no line per image")
    p.add_argument("--camera", type=int, default=None, metavar="N",
                   help="live: OpenCV camera N until Ctrl-C (DIR/cameraN.jsonl + .mp4)")
    p.add_argument("--max-frames", type=int, default=0, help="--camera: stop after N frames")
    p.add_argument("--smoothing", choices=["one_euro", "kalman", "one_euro_points", "savgol",
                                           "none"], default="one_euro",
                   help="videos: online smoothing in the face's frame (one_euro: default; "
                        "kalman), the paper's per-point One Euro filter, offline zero-lag "
                        "Savitzky-Golay of whole tracks (files only), or none (docs/video.md)")
    p.add_argument("--no-flow", action="store_true",
                   help="videos: do not measure each face's motion by optical flow (the "
                        "smoother and the next crop then follow the landmarks alone)")
    p.add_argument("--no-tracking", action="store_true",
                   help="videos: run the face detector on every frame instead of following "
                        "faces by their landmarks")
    p.add_argument("--detect-every", type=int, default=10,
                   help="videos, tracking: run the detector every N frames (and on low "
                        "confidence)")
    p.set_defaults(func=cmd_predict)
