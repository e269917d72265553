"""Datasets: annotated face records for the standard benchmarks, and the crop dataset for models.

A :class:`FaceRecord` is one annotated face: an image path, ``(K, 2)`` landmarks (pixels, 0-based
pixel centres, image frame) and optionally a detector box in the same frame.

The loaders return a :class:`FaceRecords` list: an annotation whose image is missing is left out
of it, never silently: it is listed in ``FaceRecords.skipped`` (file and reason, which the
evaluation counts in ``n_skipped``) and one warning per source names the count and the first few.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceland.data.formats import (
    IMAGE_SUFFIXES,
    FormatError,
    read_asf,
    read_coco_keypoints,
    read_mtfl_csv,
    read_pts,
    read_wflw_list,
    read_ytf_csv,
)
from faceland.errors import UnknownNameError

__all__ = [
    "FaceRecord",
    "FaceRecords",
    "W300_SPLITS",
    "W300_EXPECTED",
    "load_300w",
    "load_pts_folder",
    "load_imm",
    "load_coco",
    "load_wflw",
    "load_ytf",
    "load_mtfl",
    "split_train_val",
    "DatasetSpec",
    "DATASETS",
    "load_dataset",
]

log = logging.getLogger(__name__)


@dataclass
class FaceRecord:
    """One annotated face.

    Attributes:
        image: path of the image file.
        points: ``(K, 2)`` float64, pixels, 0-based pixel centres, image frame.
        detector_box: optional ``[x0, y0, x1, y1]`` face-detector box, same frame.
        key: identifier, e.g. the image path relative to the data set root.
    """

    image: Path
    points: np.ndarray
    detector_box: np.ndarray | None = None
    key: str = ""
    meta: dict = field(default_factory=dict)


class FaceRecords(list[FaceRecord]):
    """A list of :class:`FaceRecord` that also names what its loader left out.

    Attributes:
        skipped: ``(file, reason)`` per annotated face left out (e.g. a ``.pts`` file whose
            image is missing), in the loader's order; the evaluation counts them in
            ``n_skipped``. Slicing or copying gives a plain list without them.
    """

    def __init__(self, records: Sequence[FaceRecord] = (),
                 skipped: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(records)
        self.skipped: list[tuple[str, str]] = list(skipped)


def _warn_skipped(source: Path | str, skipped: Sequence[tuple[str, str]], total: int) -> None:
    """One warning line: how many of ``source``'s ``total`` annotated faces were left out,
    why, and the first three files."""
    if not skipped:
        return
    reasons = sorted({why for _, why in skipped})
    names = ", ".join(Path(f).name for f, _ in skipped[:3])
    more = f", ... ({len(skipped)} in all)" if len(skipped) > 3 else ""
    log.warning("%s: left out %d of %d annotated faces (%s): %s%s", source, len(skipped), total,
                "; ".join(reasons), names, more)


#: Standard 300W splits -> folders relative to the 300W root (iBUG layout).
W300_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenge": ("ibug",),
    "full": ("helen/testset", "lfpw/testset", "ibug"),
    "private": ("300W/01_Indoor", "300W/02_Outdoor"),
}
#: Official image counts of each split.
W300_EXPECTED = {"train": 3148, "common": 554, "challenge": 135, "full": 689, "private": 600}


def load_pts_folder(folder: str | Path, num_points: int | None = 68,
                    root: str | Path | None = None) -> FaceRecords:
    """Every image in ``folder`` (recursively) that has a ``.pts`` file beside it.

    Args:
        folder: directory to scan.
        num_points: expected K per ``.pts`` (a file with another count raises); ``None``:
            any, but the same in every file (the most common count; another raises).
        root: keys are paths relative to this (default: ``folder``).

    Returns:
        The records sorted by image path (points in image pixels, 0-based pixel centres); a
        ``.pts`` file with no image beside it (same name, an image suffix) is left out, listed
        in ``skipped`` and warned about.

    Raises:
        FormatError: a ``.pts`` file is malformed or has the wrong point count.
    """
    folder = Path(folder)
    root = Path(root) if root is not None else folder
    out = FaceRecords()
    files = sorted(folder.rglob("*"))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    for img in images:
        pts = img.with_suffix(".pts")
        if pts.exists():
            out.append(FaceRecord(img, read_pts(pts, num_points),
                                  key=img.relative_to(root).as_posix()))
    stems = {img.with_suffix("") for img in images}
    out.skipped = [(str(p), "a .pts file without its image") for p in files
                   if p.suffix == ".pts" and p.with_suffix("") not in stems]
    _warn_skipped(folder, out.skipped, len(out) + len(out.skipped))
    if num_points is None and out:  # one markup per folder: the majority's count decides
        counts = [len(r.points) for r in out]
        k = max(set(counts), key=counts.count)
        odd = next((r for r in out if len(r.points) != k), None)
        if odd is not None:
            raise FormatError(f"{odd.image.with_suffix('.pts')}: has {len(odd.points)} points, "
                              f"the other .pts files in {folder} have {k}")
    return out


def load_300w(root: str | Path, split: str, strict: bool = False) -> FaceRecords:
    """Load a standard 300W split from an iBUG-layout folder.

    Args:
        root: folder holding ``afw/``, ``helen/``, ``lfpw/``, ``ibug/`` (and optionally
            ``detector_boxes.json`` with 0-based pixel-edge ``[x0, y0, x1, y1]`` boxes, converted to
            faceland's pixel-centre frame by subtracting 0.5).
        split: ``train``, ``common``, ``challenge``, ``full`` or ``private``.
        strict: raise instead of warning when fewer images than the official count are found.

    Returns:
        Records sorted by key; ``.pts`` files without their image are listed in ``skipped``
        (see :func:`load_pts_folder`).

    Raises:
        KeyError: unknown split.
        FileNotFoundError: no image of the split is present (the message gives the counts).
    """
    if split not in W300_SPLITS:
        raise UnknownNameError(f"unknown 300W split {split!r}; known: {sorted(W300_SPLITS)}")
    root = Path(root)
    boxes = {}
    bfile = root / "detector_boxes.json"
    if bfile.exists():
        try:
            boxes = json.loads(bfile.read_text())
        except (ValueError, OSError) as e:
            raise FormatError(f"{bfile}: not a JSON box file ({e})") from None
    records = FaceRecords()
    per_folder = {}
    for sub in W300_SPLITS[split]:
        d = root / sub
        found = load_pts_folder(d, 68, root) if d.is_dir() else FaceRecords()
        per_folder[sub] = len(found)
        records += found
        records.skipped += found.skipped
    for r in records:
        if r.key in boxes:
            r.detector_box = np.asarray(boxes[r.key], dtype=np.float64) - 0.5
    expected = W300_EXPECTED[split]
    counts = ", ".join(f"{k}: {v}" for k, v in per_folder.items())
    if not records:
        orphans = (f"; {len(records.skipped)} .pts without their image, first "
                   f"{records.skipped[0][0]}" if records.skipped else "")
        raise FileNotFoundError(
            f"300W split '{split}': no images found under {root} ({counts}; official "
            f"{expected}{orphans})"
        )
    if len(records) < expected:
        msg = (f"300W split '{split}': found {len(records)} of {expected} official images "
               f"under {root} ({counts})")
        if strict:
            raise FileNotFoundError(msg)
        log.warning(msg)
    return records


#: IMM split by person, as in the course exercise (seed 004): persons 1-32 train, 33-40 test.
IMM_TEST_PERSONS = range(33, 41)


def load_imm(root: str | Path, split: str = "all") -> FaceRecords:
    """IMM face database: every ``*.asf`` with its image (58 points, 640 x 480 frame).

    Args:
        root: folder with ``NN-Vs.jpg`` / ``NN-Vs.asf`` pairs.
        split: ``"all"``, ``"train"`` (persons 1-32) or ``"test"`` (persons 33-40): the split by
            person of seed 004.

    The person id (``NN``) is stored in ``meta["person"]`` so that validation splits can also be
    made by person. An ``.asf`` of the split without its ``.jpg`` is left out, listed in
    ``skipped`` and warned about.

    Raises:
        faceland.errors.UnknownNameError: unknown split.
        FileNotFoundError: no image of the split under ``root``.
    """
    if split not in ("all", "train", "test"):
        raise UnknownNameError(f"unknown IMM split {split!r}; known: ['all', 'test', 'train']")
    root = Path(root)
    out = FaceRecords()
    for asf in sorted(root.glob("*.asf")):
        img = asf.with_suffix(".jpg")
        person = asf.stem.split("-")[0]
        is_test = person.isdigit() and int(person) in IMM_TEST_PERSONS
        if not (split == "all" or (split == "test") == is_test):
            continue
        if not img.is_file():
            out.skipped.append((str(asf), "an .asf file without its .jpg"))
            continue
        out.append(FaceRecord(img, read_asf(asf), key=img.name, meta={"person": person}))
    if not out:
        raise FileNotFoundError(f"IMM split '{split}': no .asf/.jpg pairs under {root}"
                                + (f" ({len(out.skipped)} .asf without their .jpg)"
                                   if out.skipped else ""))
    _warn_skipped(root, out.skipped, len(out) + len(out.skipped))
    return out


def load_ytf(root: str | Path) -> FaceRecords:
    """YouTube-Faces frames with 68 points: ``root/keypoints.csv`` and the images beside it.

    The identity (the file name before its last ``_NN``) is stored in ``meta["person"]``, so that
    validation splits can be made by identity. Coordinates are taken as 0-based pixel centres
    (see :func:`faceland.data.formats.read_ytf_csv`). A listed image that is missing is left
    out, listed in ``skipped`` and warned about.

    Raises:
        faceland.data.formats.FormatError: missing or malformed CSV.
        FileNotFoundError: no listed image exists under ``root``.
    """
    root = Path(root)
    table = read_ytf_csv(root / "keypoints.csv")
    recs = [FaceRecord(root / name, pts, key=name, meta={"person": name.rsplit("_", 1)[0]})
            for name, pts in sorted(table.items())]
    return _present(recs, root / "keypoints.csv", root)


def load_mtfl(root: str | Path, split: str = "train") -> FaceRecords:
    """MTFL faces (Zhang et al., ECCV 2014) with their 5 points (scheme ``"5"``).

    Args:
        root: the MTFL folder holding ``train/`` and ``test/``, each with ``landmarks5.csv``
            and ``images/``.
        split: ``"train"`` (10,000 faces) or ``"test"`` (2,995 AFLW faces).

    Points are pixels of the stored crop, 0-based pixel centres; attributes are in ``meta``.

    Raises:
        ValueError: unknown split.
        faceland.data.formats.FormatError: missing or malformed CSV.
        FileNotFoundError: none of the listed images exists.
    """
    if split not in ("train", "test"):
        raise ValueError(f"MTFL split must be 'train' or 'test', not {split!r}")
    base = Path(root) / split
    table = read_mtfl_csv(base / "landmarks5.csv")
    recs = [FaceRecord(base / name, pts, key=f"{split}/{name}", meta=attrs)
            for name, (pts, attrs) in sorted(table.items())]
    return _present(recs, base / "landmarks5.csv", base)


def load_coco(annotations: str | Path, images: str | Path | None = None) -> FaceRecords:
    """Faces of a COCO-keypoints JSON (MMPose's WFLW / COFW / AFLW / 300W-LP / LaPa files).

    Args:
        annotations: the JSON file (see :func:`faceland.data.formats.read_coco_keypoints` for
            the coordinate conventions).
        images: folder the ``file_name`` entries are relative to (default: the JSON's folder).

    The COCO ``bbox`` becomes ``detector_box``.

    Raises:
        faceland.errors.FormatError: malformed JSON.
        FileNotFoundError: no annotation's image exists.
    """
    annotations = Path(annotations)
    base = Path(images) if images is not None else annotations.parent
    out = [FaceRecord(base / a["image"], a["points"], a["box"], key=a["image"])
           for a in read_coco_keypoints(annotations)]
    return _present(out, annotations, base)


def load_wflw(annotations: str | Path, images: str | Path) -> FaceRecords:
    """Faces of a WFLW annotation list (full test list or one of the six attribute subsets).

    Args:
        annotations: e.g. ``list_98pt_test_largepose.txt`` (see
            :func:`faceland.data.formats.read_wflw_list`).
        images: the ``WFLW_images`` folder.

    Raises:
        FileNotFoundError: no listed image exists (the message gives the counts).
    """
    images = Path(images)
    recs = [FaceRecord(images / w.image, w.points,
                       None if np.isnan(w.box).any() else w.box, key=w.image,
                       meta={"attributes": w.attributes})
            for w in read_wflw_list(annotations)]
    return _present(recs, annotations, images)


def _present(recs: list[FaceRecord], source: Path | str, base: Path) -> FaceRecords:
    """The records whose image exists; the others are listed in ``skipped`` and warned about
    (count and first names); raises when none exists."""
    present = FaceRecords(r for r in recs if r.image.is_file())
    if not present:
        first = f" (first: {recs[0].image})" if recs else ""
        raise FileNotFoundError(f"{source}: none of its {len(recs)} images under {base}{first}")
    present.skipped = [(str(r.image), f"image listed in {Path(source).name} is missing")
                       for r in recs if not r.image.is_file()]
    _warn_skipped(source, present.skipped, len(recs))
    return present


def split_train_val(records: Sequence[FaceRecord], val_fraction: float = 0.1, seed: int = 0,
                    group: Callable[[FaceRecord], str] | None = None
                    ) -> tuple[list[FaceRecord], list[FaceRecord]]:
    """Deterministic split of training records into train and validation parts.

    Args:
        records: the records.
        val_fraction: share of records (or groups) that go to validation.
        seed: random seed of the shuffle.
        group: optional function record -> group id; a group never straddles the split
            (e.g. one identity of YouTube Faces, one person of IMM).
    """
    group = group or (lambda r: r.key)
    ids = sorted({group(r) for r in records})
    random.Random(seed).shuffle(ids)
    n_val = max(1, round(len(ids) * val_fraction))
    val_ids = set(ids[:n_val])
    train = [r for r in records if group(r) not in val_ids]
    val = [r for r in records if group(r) in val_ids]
    return train, val



# --------------------------------------------------------------------------------------------
# The data set table: one entry per data set, used by `faceland evaluate`, `faceland train` and
# the API. Adding a data set is one entry here.


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one data set.

    Attributes:
        name: the name used by ``--dataset`` and training configs.
        load: ``(root, split, annotations) -> records`` (points in image pixels, 0-based pixel
            centres).
        scheme: its landmark scheme, or ``None`` to take the point count of the records.
        splits: the split names it knows (empty: none; the whole folder).
        needs_annotations: whether an annotation file is needed besides the image folder.
        group: record -> group id for the train / validation split (a person never lands on
            both sides), or ``None`` (per record).
        help: one line for ``--help``.
    """

    name: str
    load: Callable[[Path, str | None, Path | None], list[FaceRecord]]
    scheme: str | None
    splits: tuple[str, ...] = ()
    needs_annotations: bool = False
    group: Callable[[FaceRecord], str] | None = None
    help: str = ""


def _by_person(r: FaceRecord) -> str:
    return r.meta["person"]


DATASETS: dict[str, DatasetSpec] = {d.name: d for d in (
    DatasetSpec("300w", lambda root, split, _: load_300w(root, split or "common"), "68",
                tuple(W300_SPLITS), help="iBUG 300-W (splits)"),
    DatasetSpec("imm", lambda root, split, _: load_imm(root, split or "all"), "58",
                ("all", "train", "test"), group=_by_person, help="IMM face database"),
    DatasetSpec("ytf", lambda root, _s, _a: load_ytf(root), "68", group=_by_person,
                help="YouTube-Faces frames: a folder with keypoints.csv"),
    DatasetSpec("pts", lambda root, _s, _a: load_pts_folder(root, None), None,
                help="any folder of images with .pts files"),
    DatasetSpec("coco", lambda root, _s, ann: load_coco(ann, root), None, needs_annotations=True,
                help="a COCO-keypoints JSON: WFLW/COFW/AFLW/..."),
    DatasetSpec("wflw", lambda root, _s, ann: load_wflw(ann, root), None, needs_annotations=True,
                help="a WFLW list file"),
)}


def load_dataset(name: str, root: str | Path, split: str | None = None,
                 annotations: str | Path | None = None) -> tuple[list[FaceRecord], str]:
    """Records and scheme name of a data set in :data:`DATASETS`.

    Args:
        name: a key of :data:`DATASETS`.
        root: the data set folder (coco / wflw: the images folder).
        split: a split name where the data set has splits (default: its first use, e.g. 300W
            ``common``).
        annotations: the annotation file, for data sets that need one.

    Returns:
        ``(records, scheme name)``: a :class:`FaceRecords` (its ``skipped`` lists the annotated
        faces left out for a missing image); points in image pixels, 0-based pixel centres.

    Raises:
        faceland.errors.UnknownNameError: an unknown data set.
        FileNotFoundError: ``root`` does not exist.
        ValueError: a missing annotation file, or no annotated image found; the loaders' own
            errors for an unknown split or a bad file.
    """
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: data set folder not found")
    if spec.needs_annotations and not annotations:
        raise ValueError(f"dataset {name} needs an annotation file (--annotations FILE)")
    recs = spec.load(root, split, Path(annotations) if annotations else None)
    if not recs:
        skipped = getattr(recs, "skipped", [])
        why = (f"; {len(skipped)} annotation(s) without their image, first {skipped[0][0]}"
               if skipped else "")
        raise ValueError(f"{root}: no annotated image found ({spec.help}{why})")
    return recs, spec.scheme or str(len(recs[0].points))
