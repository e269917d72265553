"""Readers and writers for the real annotation formats and for images.

All readers return landmarks in faceland's convention: pixels, 0-based pixel centres, image frame
(see :mod:`faceland.geometry`). Each reader states the conversion it applies.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceland.errors import FormatError

__all__ = [
    "FormatError",
    "read_image",
    "read_pts",
    "write_pts",
    "read_asf",
    "read_wflw_list",
    "WflwRecord",
    "read_coco_keypoints",
    "read_ytf_csv",
    "VideoReader",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
]

#: Every still-image format OpenCV's decoder reads (a folder walk takes these; a file named
#: directly is decoded by its content whatever its suffix).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                  ".jp2", ".pbm", ".pgm", ".ppm", ".pnm", ".pxm", ".pfm", ".sr", ".ras", ".hdr",
                  ".pic", ".avif", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


class VideoReader:
    """Frames of a video file or a camera, decoded with OpenCV, as ``(H, W, 3)`` uint8 RGB.

    >>> with VideoReader("clip.mp4") as video:
    ...     for index, frame in video:   # 0-based frame index
    ...         ...
    ... video.truncated                  # True when decoding stopped before the declared count

    Args:
        source: a video file OpenCV can decode (mp4, avi, mov, mkv, ...) or a camera index.
        every: yield every ``every``-th frame (indices still count every decoded frame).

    Attributes:
        fps: frames per second from the header (camera: its reported rate; 30 when unknown).
        declared: the frame count the file's header declares (0 when unknown, e.g. a camera).
        decoded: frames decoded so far.
        name: the file path or ``"camera N"``, for messages.

    Raises:
        FormatError: a missing file, or a file with no decodable frame.
        OSError: a camera that cannot be opened.
        ValueError: ``every < 1``.
    """

    def __init__(self, source: str | Path | int, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every, self.decoded = int(every), 0
        if isinstance(source, int):
            self.name = f"camera {source}"
            self._cap = cv2.VideoCapture(source)
            if not self._cap.isOpened():
                self._cap.release()
                raise OSError(f"camera {source}: cannot be opened (no such device, or it is busy)")
        else:
            p = Path(source)
            self.name = str(p)
            if not p.exists():
                raise FormatError(f"{p}: no such file")
            self._cap = cv2.VideoCapture(str(p))
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        self.declared = 0 if isinstance(source, int) else \
            max(int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        ok, self._first = self._cap.read()
        if not ok:
            self._cap.release()
            raise FormatError(f"{self.name}: not a readable video")

    @property
    def truncated(self) -> bool:
        """Decoding stopped before the frame count the header declares."""
        return bool(self.declared) and self.decoded < self.declared

    def __iter__(self):
        frame, i = self._first, 0
        self._first = None
        while frame is not None:
            self.decoded = i + 1
            if i % self.every == 0:
                yield i, np.ascontiguousarray(frame[..., ::-1])
            ok, frame = self._cap.read()
            frame = frame if ok else None
            i += 1
        self.close()

    def close(self) -> None:
        """Release the file or camera."""
        self._cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as it is displayed: ``(H, W, 3)`` uint8 **RGB**.

    EXIF orientation of JPEG files is applied (landmarks land on the face as displayed; other
    formats are read as stored); grayscale is expanded
    to three channels; an alpha channel is dropped; 16-bit images are scaled to 8 bits.

    Raises:
        FormatError: missing file, not an image, or a truncated / corrupt file.
    """
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: no such file")
    if p.is_dir():
        raise FormatError(f"{p}: is a directory, not an image")
    data = np.fromfile(str(p), dtype=np.uint8)
    if data.size == 0:
        raise FormatError(f"{p}: empty file")
    _check_complete(p, data)
    # IMREAD_ANYDEPTH keeps 16-bit; IMREAD_COLOR would drop EXIF handling only with IGNORE flag.
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise FormatError(f"{p}: not a readable image (unknown format or corrupt data)")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise FormatError(f"{p}: unsupported channel count {img.shape[2]}")
    # IMREAD_UNCHANGED ignores EXIF orientation: apply it ourselves.
    img = _apply_exif_orientation(img, data)
    return np.ascontiguousarray(img)


def _check_complete(p: Path, data: np.ndarray) -> None:
    """Reject truncated JPEG / PNG files that OpenCV would silently decode as partly grey."""
    head = bytes(data[:8])
    tail = bytes(data[-12:])
    if head[:2] == b"\xff\xd8":
        # A complete JPEG ends with EOI (possibly followed by padding).
        if b"\xff\xd9" not in bytes(data[-64:]):
            raise FormatError(f"{p}: truncated or corrupt JPEG (no end-of-image marker)")
    elif head == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in tail:
            raise FormatError(f"{p}: truncated or corrupt PNG (no IEND chunk)")


def _apply_exif_orientation(img: np.ndarray, data: np.ndarray) -> np.ndarray:
    orientation = _exif_orientation(bytes(data[: 64 * 1024]))
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    return ops[orientation](img) if orientation in ops else img


def _exif_orientation(buf: bytes) -> int:
    """EXIF orientation tag (1-8) of a JPEG, or 1 when absent."""
    if buf[:2] != b"\xff\xd8":
        return 1
    i = 2
    while i + 4 <= len(buf) and buf[i] == 0xFF:
        marker, seg_len = buf[i + 1], int.from_bytes(buf[i + 2 : i + 4], "big")
        if marker == 0xE1 and buf[i + 4 : i + 10] == b"Exif\x00\x00":
            tiff = buf[i + 10 : i + 2 + seg_len]
            if len(tiff) < 8:
                return 1
            endian = "little" if tiff[:2] == b"II" else "big"
            ifd = int.from_bytes(tiff[4:8], endian)
            if ifd + 2 > len(tiff):
                return 1
            n = int.from_bytes(tiff[ifd : ifd + 2], endian)
            for k in range(n):
                e = ifd + 2 + 12 * k
                if e + 12 > len(tiff):
                    break
                if int.from_bytes(tiff[e : e + 2], endian) == 0x0112:
                    return int.from_bytes(tiff[e + 8 : e + 10], endian)
            return 1
        if marker in (0xDA, 0xD9):
            break
        i += 2 + seg_len
    return 1


def read_pts(path: str | Path, num_points: int | None = None) -> np.ndarray:
    """Read an iBUG ``.pts`` file.

    The file stores **1-based** coordinates (Matlab convention); this returns ``(K, 2)`` float64
    **0-based** pixel-centre coordinates (1 is subtracted).

    Args:
        path: the ``.pts`` file.
        num_points: if given, the expected K.

    Raises:
        FormatError: missing file, malformed content, or a point count other than ``num_points``.
    """
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as e:
        raise FormatError(f"{p}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise FormatError(f"{p}: not a text .pts file") from None
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "{")
        end = next(i for i, ln in enumerate(lines) if ln.strip() == "}")
        header = {
            k.strip(): v.strip()
            for k, v in (ln.split(":", 1) for ln in lines[:start] if ":" in ln)
        }
        pts = np.array([[float(v) for v in ln.split()] for ln in lines[start + 1 : end]
                        if ln.strip()], dtype=np.float64)
    except (StopIteration, ValueError):
        raise FormatError(f"{p}: malformed .pts file (expected 'n_points' header and {{ }})") \
            from None
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise FormatError(f"{p}: malformed .pts file (each point needs 2 values)")
    try:
        declared = int(header.get("n_points", len(pts)))
    except ValueError:
        raise FormatError(f"{p}: malformed n_points header {header.get('n_points')!r}") from None
    if declared != len(pts):
        raise FormatError(f"{p}: header says {declared} points but the file has {len(pts)}")
    if num_points is not None and len(pts) != num_points:
        raise FormatError(f"{p}: has {len(pts)} points, expected {num_points}")
    return pts - 1.0


def write_pts(path: str | Path, points: np.ndarray) -> None:
    """Write ``(K, 2)`` 0-based landmarks as an iBUG ``.pts`` file (1-based, as the format wants)."""
    pts = np.asarray(points, dtype=np.float64) + 1.0
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    Path(path).write_text(f"version: 1\nn_points: {len(pts)}\n{{\n{body}\n}}\n")


def read_asf(path: str | Path, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an IMM AAM shape file (``.asf``), 58 points.

    The file stores coordinates **relative** to the image width and height. With ``image_size =
    (W, H)`` (IMM: 640 x 480, the default) this returns ``(K, 2)`` float64 pixels, 0-based
    pixel-centre frame (``x = rel_x * W - 0.5``: relative 0 is the left image edge).

    Raises:
        FormatError: missing or malformed file.
    """
    p = Path(path)
    w, h = image_size or (640, 480)
    try:
        rows = [ln.split() for ln in p.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"{p}: cannot read .asf ({e})") from None
    body = [r for r in rows if r and not r[0].startswith("#")]
    try:
        n = int(body[0][0])
        pts = np.array([[float(r[2]), float(r[3])] for r in body[1 : 1 + n]])
    except (IndexError, ValueError):
        raise FormatError(f"{p}: malformed .asf file") from None
    if pts.shape != (n, 2):
        raise FormatError(f"{p}: declares {n} points but has {len(pts)}")
    return pts * np.array([w, h]) - 0.5


@dataclass
class WflwRecord:
    """One face of a WFLW annotation list.

    Attributes:
        image: image path relative to the WFLW images folder.
        points: ``(98, 2)`` pixels; WFLW lists are treated as 0-based pixel centres.
        box: ``[x0, y0, x1, y1]`` detection rectangle from the list, pixels (all NaN for the
            197-field test lists, which carry no rectangle).
        attributes: dict of the six 0/1 flags (pose, expression, illumination, make-up,
            occlusion, blur). The 197-field per-attribute test lists
            (``list_98pt_test_<attribute>.txt``) carry no flags: there only the list's own
            attribute is known (``{attribute: 1}``); for other 197-field lists it is empty.
    """

    image: str
    points: np.ndarray
    box: np.ndarray
    attributes: dict[str, int]


WFLW_ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")


def read_wflw_list(path: str | Path) -> list[WflwRecord]:
    """Read a WFLW annotation list.

    Two layouts exist: the raw ``list_98pt_rect_attr_*.txt`` lists (196 coordinates, 4 box values,
    6 flags, image path: 207 fields per line) and the official test lists ``list_98pt_test*.txt``
    (196 coordinates and the image path: 197 fields); see :class:`WflwRecord` for what the short
    layout leaves unknown.

    Raises:
        FormatError: with the file and line number of a malformed line.
    """
    p = Path(path)
    subset = p.stem.rsplit("_", 1)[-1] if p.stem.startswith("list_98pt_test_") else None
    subset = {"largepose": "pose"}.get(subset, subset)
    out = []
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"{p}: cannot read WFLW list ({e})") from None
    for i, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) not in (197, 207):
            raise FormatError(f"{p}:{i}: expected 207 (or 197) fields, got {len(f)}")
        try:
            v = np.array(f[:-1], dtype=np.float64)
        except ValueError:
            raise FormatError(f"{p}:{i}: non-numeric coordinate") from None
        if len(f) == 207:
            box = v[196:200]
            attrs = dict(zip(WFLW_ATTRIBUTES, v[200:206].astype(int).tolist(), strict=True))
        else:
            box = np.full(4, np.nan)
            attrs = {subset: 1} if subset in WFLW_ATTRIBUTES else {}
        out.append(WflwRecord(f[-1], v[:196].reshape(98, 2), box, attrs))
    return out


def read_coco_keypoints(path: str | Path) -> list[dict]:
    """Read a COCO-keypoints JSON (as used by MMPose for face sets).

    Returns one dict per annotation: ``{"image": file_name, "width", "height", "points": (K, 2)
    float64, "visible": (K,) bool, "box": [x0, y0, x1, y1]}``. Keypoints are treated as pixel
    indices, i.e. 0-based pixel centres (as Detectron2 and MMPose use them) and returned
    unchanged; unlabelled keypoints (``v = 0``) are NaN. The COCO ``bbox`` ``[x, y, w, h]`` is in
    pixel-edge coordinates; it becomes ``[x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5]`` in
    faceland's pixel-centre frame.

    Raises:
        FormatError: missing file or malformed JSON.
    """
    p = Path(path)
    try:
        d = json.loads(p.read_text())
        images = {im["id"]: im for im in d["images"]}
        out = []
        for a in d["annotations"]:
            kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
            im = images[a["image_id"]]
            x, y, w, h = a.get("bbox", [np.nan] * 4)
            pts = kp[:, :2].copy()
            pts[kp[:, 2] <= 0] = np.nan
            out.append({"image": im["file_name"], "width": im.get("width"),
                        "height": im.get("height"), "points": pts,
                        "visible": kp[:, 2] > 0,
                        "box": np.array([x, y, x + w, y + h], dtype=np.float64) - 0.5})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FormatError(f"{p}: not a COCO keypoints file ({type(e).__name__}: {e})") from None
    return out


def read_ytf_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read the YouTube-Faces 68-point CSV (``image, x0, y0, ..., x67, y67``).

    Returns ``{image_name: (68, 2) float64}``; the source does not document its pixel origin, so
    the values are taken as 0-based pixel centres unchanged.

    Raises:
        FormatError: missing file or a row with the wrong number of values.
    """
    p = Path(path)
    out = {}
    if not p.is_file():
        raise FormatError(f"{p}: no such file")
    for i, row in _csv_rows(p, "image"):
        if len(row) != 137:
            raise FormatError(f"{p}:{i}: expected 137 columns, got {len(row)}")
        try:
            out[row[0]] = np.array(row[1:], dtype=np.float64).reshape(68, 2)
        except ValueError:
            raise FormatError(f"{p}:{i}: non-numeric coordinate") from None
    return out


def _csv_rows(p: Path, first: str) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of the data rows of a UTF-8 CSV whose header starts with
    ``first``; every decoding or CSV problem becomes a :class:`FormatError` naming the file."""
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as e:
        raise FormatError(f"{p}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise FormatError(f"{p}: not a UTF-8 text CSV file") from None
    except csv.Error as e:
        raise FormatError(f"{p}: malformed CSV ({e})") from None
    if not rows:
        raise FormatError(f"{p}: empty file")
    if not rows[0] or rows[0][0] != first:
        raise FormatError(f"{p}: expected a header starting with {first!r}")
    return [(i, r) for i, r in enumerate(rows[1:], 2) if r]


def read_mtfl_csv(path: str | Path) -> dict[str, tuple[np.ndarray, dict]]:
    """Read MTFL's ``landmarks5.csv`` (``image, x0..x4, y0..y4, gender, smile, glasses, pose``).

    Returns ``{image_name: ((5, 2) float64 points, attributes dict)}``; points are in pixels of
    the stored image, taken as 0-based pixel centres (the source does not document its origin),
    in MTFL's order: left eye centre, right eye centre, nose tip, left mouth corner, right mouth
    corner ("left" = image left). Attributes: ``gender`` (1 male, 2 female), ``smile`` /
    ``glasses`` (1 yes, 2 no), ``pose`` (1 left profile .. 3 frontal .. 5 right profile).

    Raises:
        FormatError: missing file, wrong header, a row with the wrong number of values or a
            non-numeric value (the message names the file and line).
    """
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{p}: no such file")
    out = {}
    names = ("gender", "smile", "glasses", "pose")
    try:
        rows = _csv_rows(p, "image")
    except FormatError as e:
        if "header" in str(e):
            raise FormatError(f"{p}: expected the 15-column MTFL header starting with "
                              "'image'") from None
        raise
    for i, row in rows:
        if len(row) != 15:
            raise FormatError(f"{p}:{i}: expected 15 columns, got {len(row)}")
        try:
            v = np.array(row[1:], dtype=np.float64)
        except ValueError:
            raise FormatError(f"{p}:{i}: non-numeric value") from None
        if not np.isfinite(v).all():
            raise FormatError(f"{p}:{i}: non-finite value")
        out[row[0]] = (np.stack([v[0:5], v[5:10]], axis=1),
                       {k: int(x) for k, x in zip(names, v[10:], strict=True)})
    return out
