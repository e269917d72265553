"""``faceland predict``: landmarks for images, folders, videos and cameras.

Outputs never touch inputs and never leave ``--out`` (:mod:`faceland.outputs`): an output that
would replace an input is refused before the model loads; an ``--out`` inside an input folder is
left out of that folder's walk; every file is written to an exclusively created temporary name
and renamed; links are never followed. Each JSON records the input that produced it (resolved
path, size, modification time), which is what ``--resume`` matches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from faceland.cli.common import DETECTOR_HELP, RUNTIME_HELP, UserError, progress


def _inside(path: Path, folder: Path) -> bool:
    """``path`` (resolved) is ``folder`` (resolved) or lies under it."""
    return path == folder or folder in path.parents


def _walk(folder: Path, exclude: Path | None) -> tuple[list[Path], list[Path]]:
    """Image and video files under ``folder`` (sorted) and the other files skipped; nothing
    under ``exclude`` (the resolved ``--out``) is listed, and no symlinked folder is entered."""
    from faceland.data.formats import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    media, skipped = [], []
    for root, dirs, files in os.walk(folder):
        r = Path(root)
        if exclude is not None and _inside(r.resolve(), exclude):
            dirs[:] = []
            continue
        dirs.sort()
        for name in sorted(files):
            q = r / name
            if not q.is_file():
                continue
            if q.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                media.append(q)
            else:
                skipped.append(q)
    return sorted(media), skipped


def _images(paths: list[str], out: Path | None = None) -> list[tuple[Path, Path]]:
    """``(file, output stem relative to --out)`` for every input: a file argument writes
    ``<stem>``; a directory's files mirror their path relative to that directory.

    Files in a directory whose suffix is no image or video format are reported (count and
    examples, one line per directory) and skipped; an ``--out`` inside an input directory is left
    out of its walk, so a second run never reads its own outputs.

    Raises:
        UserError: ``--out`` is one of the input directories (outputs would mix with inputs).
    """
    res_out = out.resolve() if out is not None else None
    items: list[tuple[Path, Path]] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            if res_out is not None and res_out == p.resolve():
                raise UserError(f"--out {out} is the input folder {p}: outputs would be written "
                                "among the inputs; choose another --out")
            found, skipped = _walk(p, res_out)
            if skipped:
                names = ", ".join(str(q.relative_to(p)) for q in skipped[:3])
                more = f", ... ({len(skipped)} in all)" if len(skipped) > 3 else ""
                print(f"faceland: note: {p}: skipped {len(skipped)} file(s) that are not images "
                      f"or videos by their suffix ({names}{more})", file=sys.stderr)
            if not found:
                print(f"faceland: warning: {p}: no image or video files in directory",
                      file=sys.stderr)
            items += [(q, q.relative_to(p).with_suffix("")) for q in found]
        else:
            items.append((p, Path(p.stem)))  # missing / non-image files are reported when read
    return items


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
    """``--out`` is (or can be made) a writable directory and no link; checked before the model
    loads."""
    import tempfile

    if out.is_symlink():
        raise UserError(f"--out {out}: is a symbolic link; give the real folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".faceland-write-test-"):
            pass
    except OSError as e:
        raise UserError(f"--out {out}: not writable ({e.strerror or e})") from None


def _planned_outputs(targets: dict[Path, Path], args) -> list[Path]:
    """Every file the run may write (checked against the inputs before the model loads)."""
    from faceland.data.formats import VIDEO_SUFFIXES

    outs = []
    for path, target in targets.items():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            outs += [_out(target, ".jsonl"), _out(target, ".mp4")]
        else:
            outs += [] if args.jsonl else [_out(target, ".json")]
            outs += [] if args.no_overlay else [_out(target, ".png")]
    if args.jsonl:
        outs.append(Path(args.jsonl))
    if getattr(args, "csv", None):
        outs.append(Path(args.csv))
    return outs


def _write_outputs(path: Path, target: Path, img: np.ndarray, faces, args, sink=None) -> None:
    """JSON (or a line of ``--jsonl``) and overlay of one image, each written atomically
    through :mod:`faceland.outputs`; raises OSError on a write failure."""
    import cv2

    from faceland.inference import result_json
    from faceland.outputs import atomic_write_bytes, atomic_write_json, source_record
    from faceland.visualize import draw_faces

    doc = result_json(path, img, faces)
    doc["source"] = source_record(path)
    if not args.no_overlay:
        ok, png = cv2.imencode(".png", np.ascontiguousarray(draw_faces(img, faces)[..., ::-1]))
        if not ok:
            raise OSError(f"{target}: could not encode the overlay")
        atomic_write_bytes(_out(target, ".png"), png.tobytes())
    if sink is not None:
        sink.write(json.dumps(doc) + "\n")
        sink.flush()
    else:
        atomic_write_json(_out(target, ".json"), doc, indent=None)


def _complete(path: Path, target: Path, args) -> bool:
    """``--resume``: the image's outputs exist, its JSON parses and records this very input
    (resolved path, size and modification time; never matched by stem)."""
    from faceland.outputs import same_source

    try:
        doc = json.loads(_out(target, ".json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict) or not same_source(doc.get("source"), path):
        return False
    return args.no_overlay or _out(target, ".png").is_file()


def _line_key(doc: dict) -> str | None:
    """The resolved input path a ``--jsonl`` line belongs to (its ``source``; lines written
    before 2026-12-06 have only ``image``, resolved against the current folder)."""
    src = doc.get("source")
    if isinstance(src, dict) and isinstance(src.get("path"), str):
        return src["path"]
    return str(Path(doc["image"]).resolve()) if isinstance(doc.get("image"), str) else None


def _open_jsonl(path: Path, resume: bool):
    """The ``--jsonl`` file (opened for appending, never through a link) and, with ``resume``,
    the resolved paths of the images it already holds (a partial last line from a killed run
    is dropped first)."""
    from faceland.outputs import append_file

    done: set[str] = set()
    keep = None
    if resume and path.exists():
        keep = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                key = _line_key(json.loads(line))
            except (ValueError, TypeError, AttributeError):
                continue
            if key is not None:
                done.add(key)
                keep.append(line)
    return append_file(path, keep), done

#: ``--csv`` columns before the landmarks (then ``x_0 .. x_{K-1}``, ``y_0 .. y_{K-1}``,
#: OpenFace's layout): ``frame``, ``time_ms`` and ``track`` are empty for photos; pose (degrees)
#: and openness are empty for models other than 68 points.
CSV_COLUMNS = ("path", "frame", "time_ms", "track", "box_x0", "box_y0", "box_x1", "box_y1",
               "score", "yaw", "pitch", "roll", "ear_left", "ear_right", "mar")


def csv_header(num_points: int) -> list[str]:
    """The ``--csv`` header for a model of ``num_points`` landmarks."""
    return [*CSV_COLUMNS, *(f"x_{i}" for i in range(num_points)),
            *(f"y_{i}" for i in range(num_points))]


def _cell(value: float | None, digits: int) -> str:
    """A number rounded to ``digits`` decimals as text; empty for ``None`` or a non-finite
    value."""
    if value is None or not np.isfinite(float(value)):
        return ""
    return str(round(float(value), digits))


def csv_rows(path: str, frame: int | None, time_ms: float | None, faces) -> list[list[str]]:
    """One ``--csv`` row per face (:func:`csv_header`'s columns): image pixels with 0-based pixel
    centres, pose in degrees, openness unitless."""
    rows = []
    for f in faces:
        pose, opened = f.pose, f.openness
        pts = np.asarray(f.landmarks, dtype=np.float64)
        track = getattr(f, "track", None)
        rows.append([path, "" if frame is None else str(int(frame)), _cell(time_ms, 3),
                     "" if track is None else str(int(track)),
                     *(_cell(v, 2) for v in f.box), _cell(f.score, 4),
                     *(_cell(None if pose is None else pose[k], 2) for k in ("yaw", "pitch", "roll")),
                     *(_cell(None if opened is None else opened[k], 4)
                       for k in ("ear_left", "ear_right", "mar")),
                     *(_cell(v, 3) for v in pts[:, 0]), *(_cell(v, 3) for v in pts[:, 1])])
    return rows


class _CsvTable:
    """``--csv FILE``: one row per face per image or video frame, appended as results come and
    never through a link (:func:`faceland.outputs.append_file`). With ``keep`` (``--resume``),
    the rows already there whose path resolves to one of ``keep`` (the images not run again)
    are kept (a partial last row of a killed run is dropped); otherwise the file starts anew."""

    def __init__(self, path: Path, num_points: int, keep: set[str] | None) -> None:
        import csv
        import io

        from faceland.outputs import append_file

        self.path = path
        header = csv_header(num_points)
        kept = _kept_rows(path, header, keep) if keep is not None else []
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, *kept])
        self.file = append_file(path, [buf.getvalue()[:-1]])  # one "line": the text, as written
        self.writer = csv.writer(self.file, lineterminator="\n")

    def write_faces(self, path: str, frame: int | None, time_ms: float | None, faces,
                    flush: bool = True) -> None:
        """Append the rows of one image (``frame`` ``None``) or video frame.

        Raises:
            OSError: the write failed (its ``filename`` is the CSV file).
        """
        try:
            self.writer.writerows(csv_rows(path, frame, time_ms, faces))
            if flush:
                self.file.flush()
        except OSError as e:
            raise OSError(e.errno, e.strerror or str(e), str(self.path)) from None

    def flush(self) -> None:
        """Flush buffered rows to the file (raises OSError as :meth:`write_faces`)."""
        try:
            self.file.flush()
        except OSError as e:
            raise OSError(e.errno, e.strerror or str(e), str(self.path)) from None

    def close(self) -> None:
        self.file.close()


def _kept_rows(path: Path, header: list[str], keep: set[str]) -> list[list[str]]:
    """``--csv --resume``: the rows of ``path`` whose image is in ``keep`` (resolved path keys),
    when its header is ``header``; a partial last line is dropped."""
    import csv

    from faceland.outputs import path_key

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    rows = list(csv.reader(text.splitlines(keepends=True)))
    if not rows or rows[0] != header:
        if rows:
            print(f"faceland: warning: --csv {path}: its columns differ from this run's (another "
                  "model?); it starts anew", file=sys.stderr)
        return []
    return [r for r in rows[1:] if len(r) == len(header) and r[1] == ""
            and path_key(Path(r[0])) in keep]


@contextlib.contextmanager
def _open_table(args: argparse.Namespace, num_points: int, keep: set[str] | None
                ) -> Iterator[_CsvTable | None]:
    """The ``--csv`` table (``None`` without ``--csv``), closed when the block ends (a failure
    to close is reported in one line).

    Raises:
        UserError: the file cannot be opened (a link, a directory, permissions).
    """
    if not getattr(args, "csv", None):
        yield None
        return
    try:
        table = _CsvTable(Path(args.csv), num_points, keep)
    except OSError as e:
        raise UserError(_write_error(e, args.csv).removeprefix("faceland: error: ")) from None
    try:
        yield table
    finally:
        try:
            table.close()
        except OSError as e:
            print(_write_error(e, args.csv), file=sys.stderr)


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


def _predicted(lm, images: list[Path], workers: int, batch: int):
    """``(path, image, faces)`` for every image (decoded ahead by :func:`_prefetched`), the faces
    of ``batch`` images at a time run through the model together; an unreadable image gives
    ``(path, FormatError, None)`` at once."""
    from faceland.data.formats import FormatError

    pending: list = []
    for path, img in _prefetched(images, workers):
        if isinstance(img, FormatError):
            yield path, img, None
            continue
        pending.append((path, img))
        if len(pending) >= batch:
            yield from _flush(lm, pending)
            pending = []
    yield from _flush(lm, pending)


def _flush(lm, pending: list):
    if pending:
        results = lm.predict_batch([im for _, im in pending])
        for (path, img), faces in zip(pending, results, strict=True):
            yield path, img, faces


def _write_error(e: OSError, where: Path | str) -> str:
    """One line for a failed write: the path and the reason."""
    return (f"faceland: error: {e.filename or where}: cannot write output "
            f"({e.strerror or e})")


def _save_image_result(path: Path, target: Path, img, faces, args, sink, table=None) -> int:
    """Write one image's outputs and say so; 1 if writing failed (reported), else 0. Its
    ``--csv`` rows go first: an image whose JSON is written has its rows (``--resume``)."""
    if table is not None:
        try:
            table.write_faces(str(path), None, None, faces)
        except OSError as e:
            print(_write_error(e, args.csv), file=sys.stderr)
            return 1
    try:
        _write_outputs(path, target, img, faces, args, sink)
    except OSError as e:  # the output could not be written: report, keep going
        print(_write_error(e, args.jsonl if sink is not None else target), file=sys.stderr)
        return 1
    if not args.quiet:
        where = args.jsonl if sink is not None else _out(target, ".json")
        print(f"{path}: {len(faces)} face(s) -> {where}")
    return 0


def _plan(args: argparse.Namespace, out: Path) -> tuple[list, dict[Path, Path]]:
    """Inputs and their output stems, checked: no output may replace an input, and ``--jsonl``
    and ``--csv`` must be writable (and differ); all before the model loads."""
    from faceland.outputs import UnsafeOutputError, check_not_inputs, check_output_file

    items = _images(args.paths, out)
    if args.paths and not items:
        raise UserError("no input images")
    targets = dict(zip((p for p, _ in items), (out / s for s in _unique_stems(items)),
                       strict=True))
    try:
        check_not_inputs(_planned_outputs(targets, args), targets)
        if args.jsonl:
            check_output_file(args.jsonl, "--jsonl")
        if args.csv:
            check_output_file(args.csv, "--csv")
    except UnsafeOutputError as e:
        raise UserError(str(e.strerror if e.filename is None else e)) from None
    if args.csv and args.jsonl and Path(args.csv).resolve() == Path(args.jsonl).resolve():
        raise UserError(f"--csv {args.csv} and --jsonl {args.jsonl} are the same file")
    return items, targets


def cmd_predict(args: argparse.Namespace) -> int:
    from faceland.inference import FaceLandmarker

    if not args.paths and args.camera is None:
        raise UserError("give image or video paths, or --camera N")
    out = Path(args.out)
    _check_out_dir(out)
    items, targets = _plan(args, out)
    try:
        sink, done = _open_jsonl(Path(args.jsonl), args.resume) if args.jsonl else (None, set())
    except OSError as e:
        raise UserError(_write_error(e, args.jsonl).removeprefix("faceland: error: ")) from None
    try:
        lm = FaceLandmarker(args.model, detector=args.detector, flip_test=args.flip_test,
                            runtime=args.runtime)
        if args.camera is not None:
            with _open_table(args, lm.num_points, None) as table:
                return _predict_camera(lm, args.camera, out, args, table)
        return _run_files(lm, items, targets, args, sink, done)
    finally:
        if sink is not None:
            try:
                sink.close()
            except OSError as e:
                print(_write_error(e, args.jsonl), file=sys.stderr)


def _run_files(lm, items, targets, args, sink, done: set[str]) -> int:
    """Videos, then images in batches; returns the exit status (1 if any input failed)."""
    from faceland.data.formats import VIDEO_SUFFIXES
    from faceland.outputs import path_key

    videos = [p for p, _ in items if p.suffix.lower() in VIDEO_SUFFIXES]
    images = [p for p, _ in items if p.suffix.lower() not in VIDEO_SUFFIXES]
    if args.resume:
        before = len(images)
        images = [p for p in images if (path_key(p) not in done if sink is not None
                                        else not _complete(p, targets[p], args))]
        if before > len(images):
            print(f"faceland: --resume: {before - len(images)} of {before} image(s) already "
                  "done", file=sys.stderr)
    done_images = set()
    if args.resume and args.csv:  # --csv keeps the rows of the images not run again
        todo = {path_key(p) for p in images}
        done_images = {path_key(p) for p, _ in items
                       if p.suffix.lower() not in VIDEO_SUFFIXES and path_key(p) not in todo}
    with _open_table(args, lm.num_points, done_images if args.resume else None) as table:
        return _run_inputs(lm, items, videos, images, targets, args, sink, table)


def _run_inputs(lm, items, videos, images, targets, args, sink, table) -> int:
    """:func:`_run_files` once the inputs are sorted and ``--csv`` is open."""
    from faceland.data.formats import FormatError

    failed = 0
    for path in videos:
        target = targets[path]
        try:
            n = _predict_video(lm, path, target, args, table)
            print(f"{path}: {n} -> {_out(target, '.jsonl')}")
        except FormatError as e:
            print(f"faceland: error: {e}", file=sys.stderr)
            failed += 1
        except OSError as e:  # full disk, a directory or link in the way: next input
            print(_write_error(e, _out(target, ".jsonl")), file=sys.stderr)
            failed += 1
    with progress(len(images), "images", unit="img") as bar:
        for path, img, faces in _predicted(lm, images, args.workers, args.batch):
            bar.update()
            if faces is None:  # unreadable: reported, skipped
                print(f"faceland: error: {img}", file=sys.stderr)
                failed += 1
            else:
                failed += _save_image_result(path, targets[path], img, faces, args, sink, table)
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
    ``<target>.mp4``, each written under an exclusively created temporary name and renamed onto
    its final name when the video ends (also when decoding stopped early); with ``table``, the
    ``--csv`` rows of each frame (``source`` in their path column)."""

    def __init__(self, target: Path, fps: float, overlay: bool, table=None, source: str = ""
                 ) -> None:
        from faceland.outputs import exclusive_temp

        target.parent.mkdir(parents=True, exist_ok=True)
        self.path = _out(target, ".jsonl")
        self.mp4, self.fps, self.overlay, self.writer = _out(target, ".mp4"), fps, overlay, None
        fd, self._tmp_lines = exclusive_temp(self.path)
        self.lines = os.fdopen(fd, "w", encoding="utf-8")
        self._tmp_mp4: Path | None = None
        self.tracks: set[int] = set()
        self.table, self.source = table, source

    def write(self, index: int, time_ms: float, frame: np.ndarray | None, faces) -> None:
        import cv2

        from faceland.visualize import draw_faces

        self.tracks.update(f.track for f in faces)
        doc = {"frame": int(index), "time_ms": round(float(time_ms), 3),
               "faces": [f.to_dict() for f in faces]}
        self.lines.write(json.dumps(doc) + "\n")
        if self.table is not None:
            self.table.write_faces(self.source, index, time_ms, faces, flush=False)
        if self.overlay and frame is not None:
            if self.writer is None:
                from faceland.outputs import exclusive_temp

                h, w = frame.shape[:2]
                fd, self._tmp_mp4 = exclusive_temp(self.mp4)
                os.close(fd)  # OpenCV opens by name: the file it truncates is our own new one
                self.writer = cv2.VideoWriter(str(self._tmp_mp4), cv2.VideoWriter_fourcc(*"mp4v"),
                                              self.fps, (w, h))
            self.writer.write(np.ascontiguousarray(draw_faces(frame, faces)[..., ::-1]))

    def close(self) -> None:
        """Finish both files and rename them onto their final names.

        Raises:
            OSError: a file could not be finished or renamed (full disk, a link or directory at
                the final name); the temporary files are removed.
        """
        from faceland.outputs import replace_into

        try:
            if self.table is not None:
                self.table.flush()
            self.lines.close()
            replace_into(self._tmp_lines, self.path)
        finally:
            if self.writer is not None:
                self.writer.release()
                replace_into(self._tmp_mp4, self.mp4)


def _predict_video(lm, path: Path, target: Path, args: argparse.Namespace, table=None) -> str:
    """Video: ``<target>.jsonl`` with one line per processed frame, overlay ``<target>.mp4``,
    rows in ``--csv`` (``table``). Returns a summary for the console.

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
    out = _VideoOutput(target, reader.fps / args.every, not args.no_overlay, table, str(path))
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


def _predict_camera(lm, index: int, out: Path, args: argparse.Namespace, table=None) -> int:
    """Camera ``index`` until Ctrl-C or ``--max-frames``: ``camera<N>.jsonl`` + overlay
    ``camera<N>.mp4`` (+ ``--csv`` rows, path ``camera<N>``); time stamps are milliseconds since
    the first frame."""
    import time

    from faceland.data.formats import VideoReader

    try:
        reader = VideoReader(index)
    except OSError as e:
        raise UserError(str(e)) from None
    video = _video_landmarker(lm, args)
    sink = _VideoOutput(out / f"camera{index}", reader.fps, not args.no_overlay, table,
                        f"camera{index}")
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
    p.add_argument("--runtime", choices=["auto", "onnx", "openvino", "torch"], default="auto",
                   help=RUNTIME_HELP)
    p.add_argument("--no-overlay", action="store_true", help="write JSON only")
    p.add_argument("--every", type=int, default=1, help="videos: process every N-th frame")
    p.add_argument("--workers", type=int, default=2,
                   help="images: decoder threads reading ahead (0: decode in the main thread)")
    p.add_argument("--resume", action="store_true",
                   help="skip images whose outputs are complete (outputs are written "
                        "atomically, so a killed run resumes where it stopped)")
    p.add_argument("--jsonl", default=None, metavar="FILE",
                   help="images: one JSON line per image in FILE instead of a JSON per image")
    p.add_argument("--csv", default=None, metavar="FILE",
                   help="also one CSV row per face per image or video frame in FILE: path, "
                        "frame, time_ms, track, box, score, yaw pitch roll (degrees), ear_left "
                        "ear_right mar, x_0..x_K-1, y_0..y_K-1 (image pixels)")
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
