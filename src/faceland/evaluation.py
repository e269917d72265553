"""The evaluation harness behind ``faceland evaluate``: one protocol, stated in full.

Protocol (written into every result as its ``protocol`` card):

* boxes ``gt``: crop from the tight ground-truth landmark box, square side ``max(w, h) * enlarge``
  (the model card's enlargement, 1.25 for the default model); ``detector``: faceland's default
  face detector runs on the image, the detection nearest to the ground-truth face is converted
  with the detector's calibration; a face it misses gets ``NME = inf`` (a failure, 0 in the AUC)
  and is counted in ``n_missed``.
* NME in percent, normalised by the inter-ocular distance (outer eye corners, ``nme_iod``) and by
  the inter-pupil distance (eye-contour means, ``nme_ipd``); mean over images. A missed face is
  left out of the NME means (reported separately), but counts in FR and AUC. ``nme_box``
  normalises by ``sqrt(w * h)`` of the gt landmark box (AFLW: of the annotated face box).
* ``fr``: percent of images with IOD-NME > 10 %; ``auc``: area under the IOD CED from 0 to 0.1
  divided by 0.1 (exact step-function integral, see :mod:`faceland.metrics`).
* Predictions are compared in the image frame, 0-based pixel centres.
* An annotated face whose image is missing (the loader's ``FaceRecords.skipped``) or unreadable
  is left out, reported on stderr, and counted in ``n_skipped`` (listed in ``skipped``).

Bad input fails early with one line naming the file and the problem: output paths that cannot be
written are refused before the data set is loaded (:func:`run_evaluation`), and a stored
predictions file is checked entry by entry (:func:`evaluate_predictions`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import faceland
from faceland.data.datasets import FaceRecord
from faceland.data.formats import FormatError, read_image
from faceland.errors import UnknownNameError
from faceland.geometry import landmark_box, nearest_box
from faceland.inference import FaceLandmarker, Landmarker
from faceland.metrics import auc, confidence_quality, failure_rate, nme, normalizing_distance
from faceland.results import EvalResult, Protocol, result_stem
from faceland.schemes import SCHEMES, LandmarkScheme, get_scheme

__all__ = ["evaluate_records", "evaluate_predictions", "read_predictions", "score_predictions",
           "run_evaluation", "summary", "result_name", "EvalResult", "Protocol",
           "check_outputs", "have_plotting"]

log = logging.getLogger(__name__)


def _match(landmarker: Landmarker, image: np.ndarray,
           gt_box: np.ndarray) -> np.ndarray | None:
    """The detector box (converted to a landmark box) of the face nearest to ``gt_box``
    (:func:`faceland.geometry.nearest_box`)."""
    dets = landmarker.detect(image)
    if not dets:
        return None
    cands = np.stack([landmarker.detector.to_landmark_box(d.box) for d in dets])
    i = nearest_box(cands, gt_box)
    return None if i is None else cands[i]


def evaluate_records(landmarker: Landmarker, records: Sequence[FaceRecord],
                     scheme: LandmarkScheme, boxes: str = "gt", threshold: float = 0.1,
                     progress: bool = False) -> EvalResult:
    """Evaluate a landmarker on annotated faces.

    Args:
        landmarker: any :class:`~faceland.inference.Landmarker`: a
            :class:`~faceland.inference.FaceLandmarker` or an adapter of another system
            (:mod:`faceland.external`), with a detector for ``boxes="detector"``.
        records: annotated faces (points in image pixels, 0-based pixel centres); a
            :class:`~faceland.data.datasets.FaceRecords` also brings the faces its loader left
            out (``skipped``: missing images), which are counted in ``n_skipped``.
        scheme: landmark scheme of the records and the model.
        boxes: ``"gt"`` or ``"detector"`` (see the module docstring).
        threshold: FR / AUC threshold (fraction of the normalising distance).
        progress: print a progress line every 100 images.

    Returns:
        An :class:`~faceland.results.EvalResult`: ``nme_iod``, ``nme_ipd`` (where the scheme has
        eye corners) and ``nme_box`` (sqrt(w h) of the gt landmark box, or of the annotated box
        for AFLW), all percent; ``mean_error_px`` (mean point error in image pixels), ``fr``
        (percent), ``auc`` (fraction), ``n_images`` (evaluated), ``n_missed`` (detector misses),
        ``n_skipped`` and ``skipped`` (faces left out: images missing or unreadable, reported
        on stderr),
        ``per_image`` (key -> NME percent or None), ``protocol`` (the
        :class:`~faceland.results.Protocol` card). ``to_dict()`` is its JSON.

    Raises:
        ValueError: unknown box source, model and scheme point counts differ, or no image could
            be read; faceland.errors.FormatError: an annotation whose box cannot be cropped
            (the message names its image).
    """
    if boxes not in ("gt", "detector"):
        raise ValueError(f"boxes must be 'gt' or 'detector', not {boxes!r}")
    parent, scheme = scheme, _predicted_scheme(landmarker, scheme)
    check_ground_truth(records, parent)
    preds, used, point_scores, skipped = _predict_records(landmarker, records, scheme, boxes,
                                                          progress)
    if not used:
        raise ValueError(f"no readable image to evaluate ({len(skipped)} left out, first: "
                         f"{skipped[0] if skipped else '-'})")
    info = landmarker.protocol()
    info["box_definition"] = (
        "tight ground-truth landmark box, square side max(w, h) * enlarge" if boxes == "gt" else
        f"{landmarker.detector.name} detection nearest the face, calibrated to a landmark box; "
        "missed face = NME inf")
    return score_predictions(preds, used, scheme, parent, boxes, info, threshold, skipped,
                             point_scores)


def _predicted_scheme(landmarker: Landmarker, scheme: LandmarkScheme) -> LandmarkScheme:
    """``scheme``, or the subset scheme of it the model predicts (e.g. ``"1"``, the IMM nose
    tip, on 58-point annotations).

    Raises:
        ValueError: no known subset of ``scheme`` has the model's point count.
    """
    if landmarker.num_points == scheme.num_points:
        return scheme
    subsets = [s for s in SCHEMES.values()
               if s.parent == scheme.name and s.num_points == landmarker.num_points]
    if not subsets:
        raise ValueError(f"model predicts {landmarker.num_points} points but the data set "
                         f"uses the {scheme.num_points}-point scheme {scheme.name}")
    return subsets[0]


def _predict_records(landmarker: Landmarker, records: Sequence[FaceRecord],
                     scheme: LandmarkScheme, boxes: str, progress: bool
                     ) -> tuple[np.ndarray, list[FaceRecord], np.ndarray | None, list[str]]:
    """Run the landmarker on every record's face: ``(predictions (N, K, 2) image pixels, NaN
    for a face the detector missed; the N records read; (N, K) point scores or None; the files
    left out)``. An unreadable image is reported on stderr and left out."""
    preds, used, point_scores = [], [], []
    skipped = [f for f, _ in getattr(records, "skipped", ())]  # left out by the loader
    scored = isinstance(landmarker, FaceLandmarker)
    for i, r in enumerate(records):
        try:
            img = read_image(r.image)
        except FormatError as e:  # reported and skipped, never silently
            print(f"faceland: error: {e} (skipped)", file=sys.stderr)
            skipped.append(str(r.image))
            continue
        used.append(r)
        box = landmark_box(r.points)
        if boxes == "detector":
            box = _match(landmarker, img, box)
        try:
            if box is None:
                preds.append(np.full((scheme.num_points, 2), np.nan))
                point_scores.append(np.full(scheme.num_points, np.nan))
            elif scored:
                p, sc = landmarker.landmarks_from_boxes(img, [box], "landmark",
                                                        return_scores=True)
                preds.append(p[0])
                if sc is None:
                    scored = False
                else:
                    point_scores.append(sc[0])
            else:
                preds.append(landmarker.landmarks_from_boxes(img, [box], "landmark")[0])
        except ValueError as e:  # e.g. an annotation far outside its image
            raise FormatError(f"{r.image}: cannot crop the annotated face ({e})") from None
        if progress and (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(records)} images", flush=True)
    stacked = np.stack(preds) if preds else np.zeros((0, scheme.num_points, 2))
    return stacked, used, np.stack(point_scores) if scored and point_scores else None, skipped


def read_predictions(path: str | Path) -> dict:
    """Read a stored-predictions file of another system (see :func:`evaluate_predictions`) and
    check its layout (the entries' points are checked by :func:`evaluate_predictions`).

    Raises:
        faceland.data.formats.FormatError: missing file, not JSON, not a JSON object, a required
            key missing, ``box_source`` not ``"gt"`` / ``"detector"``, or ``landmarks`` not an
            object keyed by image; the message names the file.
    """
    p = Path(path)
    if p.is_dir():
        raise FormatError(f"{p}: is a folder, not a predictions file")
    if not p.is_file():
        raise FormatError(f"{p}: no such predictions file")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise FormatError(f"{p}: cannot read the predictions file ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{p}: not a JSON predictions file ({e})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{p}: a predictions file is a JSON object with 'system', 'scheme', "
                          f"'box_source' and 'landmarks', not a {type(doc).__name__}")
    missing = [k for k in ("system", "scheme", "box_source", "landmarks") if k not in doc]
    if missing:
        raise FormatError(f"{p}: predictions file lacks {missing}")
    if doc["box_source"] not in ("gt", "detector"):
        raise FormatError(f"{p}: 'box_source' must be 'gt' or 'detector', not "
                          f"{doc['box_source']!r}")
    if not isinstance(doc["scheme"], str | int) or isinstance(doc["scheme"], bool):
        raise FormatError(f"{p}: 'scheme' must be a scheme name such as \"68\", not "
                          f"{doc['scheme']!r}")
    if not isinstance(doc["landmarks"], dict):
        raise FormatError(f"{p}: 'landmarks' must be an object {{image key: [[x, y], ...] or "
                          f"null}}, not a {type(doc['landmarks']).__name__}")
    return doc


#: Largest magnitude of a stored prediction's coordinate, image pixels (no image is that large;
#: beyond it the metrics' squares overflow).
MAX_COORDINATE = 1e7


def _entry_points(path: str | Path, key: str, value: object, k: int, scheme: str) -> np.ndarray:
    """One stored prediction as ``(k, 2)`` finite float64 points (image pixels, 0-based pixel
    centres).

    Raises:
        faceland.data.formats.FormatError: naming the file and the entry: not a list of ``k``
            ``[x, y]`` number pairs (the first bad point is shown), or a coordinate that is not
            finite or beyond :data:`MAX_COORDINATE`.
    """
    where = f"{path}: entry {key!r}"
    if not isinstance(value, list):
        raise FormatError(f"{where}: landmarks must be a list of [x, y] pairs or null, not a "
                          f"{type(value).__name__}")
    if len(value) != k:
        raise FormatError(f"{where}: {len(value)} points, scheme {scheme} has {k}")

    def number(v: object) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    for i, xy in enumerate(value):
        if not (isinstance(xy, list) and len(xy) == 2 and number(xy[0]) and number(xy[1])):
            raise FormatError(f"{where}: point {i} is {json.dumps(xy)}, not an [x, y] pair of "
                              "numbers")
    pts = np.asarray(value, dtype=np.float64)
    bad = ~(np.abs(pts) <= MAX_COORDINATE).all(axis=1)  # NaN and inf too
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FormatError(f"{where}: point {i} {value[i]} is not a finite coordinate within "
                          f"{MAX_COORDINATE:g} px; use null for a missed face")
    return pts


def evaluate_predictions(path: str | Path, records: Sequence[FaceRecord],
                         scheme: LandmarkScheme, threshold: float = 0.1) -> EvalResult:
    """Score another system's stored predictions under faceland's protocol.

    For systems that cannot run inside faceland's environment (MediaPipe needs numpy < 2, say):
    the system runs elsewhere and writes a JSON file, which is scored exactly like
    :func:`evaluate_records` scores a live model.

    File format::

        {"system": str, "scheme": "68" (or any scheme with a map to the data set's, e.g. "468"),
         "box_source": "gt" | "detector", "box_definition": str (optional), "command": str
         (optional: how the file was made), "landmarks": {record key: [[x, y], ...] | null}}

    Keys are the data set's record keys (300W: the image path relative to the 300W root, e.g.
    ``"helen/testset/296814969_3.jpg"``); points are image pixels, 0-based pixel centres; ``null``
    is a face the system missed (NME = inf, a failure). Entries for images that are not in
    ``records`` (another split, or a face the loader left out) are ignored with one warning
    (logged) giving their count and the first few keys. Faces the loader left out
    (``records.skipped``) are counted in ``n_skipped``.

    Raises:
        faceland.data.formats.FormatError: unreadable file, records without a prediction, or a
            bad entry (not a list of ``[x, y]`` number pairs, another point count than the
            file's scheme, a non-finite coordinate); the message names the file and the entry.
        faceland.errors.UnknownNameError: an unknown scheme, or no map from the file's scheme to
            the data set's (the message names the file).
    """
    from faceland.schemes import convert_points

    doc = read_predictions(path)
    table = doc["landmarks"]
    source = str(doc["scheme"])
    try:
        k = get_scheme(source).num_points
        if source != scheme.name:  # the map exists (checked once, not per entry)
            convert_points(np.zeros((k, 2)), source, scheme.name)
    except UnknownNameError as e:
        raise UnknownNameError(f"{path}: {e}") from None
    _check_prediction_keys(path, table, records)
    preds = []
    for r in records:
        v = table[r.key]
        if v is None:
            preds.append(np.full((scheme.num_points, 2), np.nan))
            continue
        pts = _entry_points(path, r.key, v, k, source)
        if source != scheme.name:
            pts = convert_points(pts, source, scheme.name)
        preds.append(pts)
    info = {"model": doc["system"], "weights_sha256": None, "enlarge": None, "input_size": None,
            "flip_test": False, "predictions_file": str(path),
            "predictions_command": doc.get("command"),
            "box_definition": doc.get("box_definition", "as stated by the system")}
    skipped = [f for f, _ in getattr(records, "skipped", ())]
    return score_predictions(np.stack(preds), list(records), scheme, scheme,
                             str(doc["box_source"]), info, threshold, skipped)


def _check_prediction_keys(path: str | Path, table: dict, records: Sequence[FaceRecord]
                           ) -> None:
    """Every record has an entry in a stored-predictions table (else FormatError naming the
    first missing and a sample of the table's unmatched keys); entries for other images are
    logged once and ignored."""
    keys = {r.key for r in records}
    absent = [r.key for r in records if r.key not in table]
    unknown = [key for key in table if key not in keys]
    if absent:
        hint = (f"; the file's keys that match no face look like {unknown[0]!r}"
                if unknown else "")
        raise FormatError(f"{path}: no prediction for {len(absent)} of {len(records)} faces "
                          f"(first: {absent[0]}); use null for a missed face{hint}")
    if unknown:
        names = ", ".join(repr(key) for key in unknown[:3])
        more = f", ... ({len(unknown)} in all)" if len(unknown) > 3 else ""
        log.warning("%s: ignored %d entr%s for images not in this data set: %s%s", path,
                    len(unknown), "y" if len(unknown) == 1 else "ies", names, more)


def check_ground_truth(records: Sequence[FaceRecord], scheme: LandmarkScheme) -> None:
    """Every record has ``(K, 2)`` finite points of ``scheme``.

    Raises:
        faceland.errors.FormatError: naming the first record's image whose annotation has
            another point count or a non-finite point.
    """
    k = scheme.num_points
    for r in records:
        pts = np.asarray(r.points)
        if pts.shape != (k, 2):
            raise FormatError(f"{r.image}: annotation has {pts.shape[0] if pts.ndim else 0} "
                              f"points, the {scheme.name}-point scheme needs {k}")
        if not np.isfinite(pts).all():
            i = int(np.flatnonzero(~np.isfinite(pts).all(axis=1))[0])
            raise FormatError(f"{r.image}: annotation has a non-finite point (index {i})")


def score_predictions(pred: np.ndarray, records: Sequence[FaceRecord], scheme: LandmarkScheme,
                      parent: LandmarkScheme, boxes: str, info: dict, threshold: float = 0.1,
                      skipped: Sequence[str] = (), point_scores: np.ndarray | None = None
                      ) -> EvalResult:
    """Metrics and protocol card for ``(N, K, 2)`` predictions of ``records``.

    Args:
        pred: image pixels, 0-based pixel centres; a face that was missed is all NaN.
        records: the annotated faces, in the same order.
        scheme: the predicted scheme (a subset scheme of ``parent`` for subset models).
        parent: the data set's scheme.
        boxes: the box source (``"gt"`` or ``"detector"``).
        info: what the card records about the system: ``model``, ``weights_sha256``,
            ``enlarge``, ``input_size``, ``flip_test``, ``box_definition`` and any extra keys.
        threshold: FR / AUC threshold (fraction of the normalising distance).
        skipped: the files of the faces left out (images missing or unreadable).
        point_scores: optional ``(N, K)`` per-landmark confidence of the predictions; adds
            ``point_scores``: :func:`faceland.metrics.confidence_quality` of the scores against
            each point's error over the normalising distance, bad point = error > ``threshold``.

    Returns:
        The :class:`~faceland.results.EvalResult` described in :func:`evaluate_records`.
    """
    check_ground_truth(records, parent)
    gt = np.stack([scheme.select(r.points) for r in records])
    norm = scheme.default_norm
    box = _normalising_boxes(records, scheme, parent, norm)
    e_iod = nme(pred, gt, scheme, norm, box)
    err_px = np.linalg.norm(pred - gt, axis=-1).mean(axis=1)
    found = np.isfinite(e_iod)

    def mean_percent(e: np.ndarray) -> float:
        return float(e[found].mean() * 100) if found.any() else float("nan")

    values = {f"nme_{norm}": mean_percent(e_iod)}
    if scheme.ipd_groups:
        values["nme_ipd"] = mean_percent(nme(pred, gt, scheme, "ipd"))
    if norm != "box":
        values["nme_box"] = mean_percent(nme(pred, gt, scheme, "box", box))
    quality = None
    if point_scores is not None:
        d = normalizing_distance(gt, scheme, norm, box)
        per_point = np.linalg.norm(pred - gt, axis=-1) / d[:, None]
        quality = {**confidence_quality(point_scores, per_point, threshold),
                   "bad_point": f"error > {threshold} {norm}",
                   "mean_score": float(np.nanmean(point_scores))}
    return EvalResult(
        nme_box=values["nme_box"], nme_iod=values.get("nme_iod"), nme_ipd=values.get("nme_ipd"),
        point_scores=quality,
        mean_error_px=float(err_px[found].mean()) if found.any() else float("nan"),
        fr=failure_rate(e_iod, threshold) * 100, auc=auc(e_iod, threshold),
        n_images=len(records), n_missed=int((~found).sum()), n_skipped=len(skipped),
        skipped=list(skipped),
        per_image={r.key or str(r.image): (round(float(e) * 100, 4) if np.isfinite(e) else None)
                   for r, e in zip(records, e_iod, strict=True)},
        protocol=system_protocol(info, boxes, norm, threshold))


def _normalising_boxes(records: Sequence[FaceRecord], scheme: LandmarkScheme,
                       parent: LandmarkScheme, norm: str) -> np.ndarray:
    """``(N, 4)`` boxes of box normalisation: the annotated face box where every record has
    one (AFLW), else the ground-truth landmark box of the full markup (also for subset schemes
    such as ``"1"``). ``nme_box`` is reported for every scheme (next to IOD / IPD where the
    scheme has eyes)."""
    ann_boxes = [r.detector_box for r in records]
    if norm == "box" and all(b is not None for b in ann_boxes) and scheme is parent:
        return np.stack(ann_boxes)
    return np.stack([landmark_box(r.points) for r in records])


#: The fields a system reports about itself (``Landmarker.protocol()`` or a stored-predictions
#: file) that become typed fields of the :class:`~faceland.results.Protocol` card; every other
#: key goes to its ``extra``.
SYSTEM_FIELDS = ("model", "weights_sha256", "enlarge", "input_size", "flip_test",
                 "box_definition")


def system_protocol(info: dict, boxes: str, norm: str, threshold: float) -> Protocol:
    """The :class:`~faceland.results.Protocol` card of an evaluation: what the system reports
    (``info``: every key of :data:`SYSTEM_FIELDS`, plus any extra keys), the box source, the
    FR / AUC normalisation and threshold, and this faceland and machine.

    Raises:
        KeyError: ``info`` lacks a key of :data:`SYSTEM_FIELDS`.
    """
    missing = [k for k in SYSTEM_FIELDS if k not in info]
    if missing:
        raise KeyError(f"the system's protocol lacks {', '.join(missing)}")
    typed = {k: info[k] for k in SYSTEM_FIELDS}
    return Protocol(box_source=boxes, fr_auc_normalisation=norm, threshold=threshold,
                    faceland_version=faceland.__version__,
                    hardware=f"{platform.machine()}, {os.cpu_count()} CPU cores",
                    extra={k: v for k, v in info.items() if k not in SYSTEM_FIELDS}, **typed)


def _typed(result: EvalResult | dict) -> EvalResult:
    return result if isinstance(result, EvalResult) else EvalResult.from_dict(result)


def summary(result: EvalResult | dict) -> str:
    """The console summary of a result (:meth:`faceland.results.EvalResult.summary`)."""
    return _typed(result).summary()


def result_name(result: EvalResult | dict) -> str:
    """The default file stem of a result, ``<model>-<dataset>-<split>-<boxes>``
    (:attr:`faceland.results.EvalResult.name`)."""
    return _typed(result).name


def have_plotting() -> bool:
    """Whether matplotlib, which draws the CED plot, is installed (it is not part of faceland's
    core install: ``pip install 'faceland[plot]'``)."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _check_output(path: str | Path, what: str) -> Path:
    """:func:`faceland.outputs.check_output_file` with plain messages for the usual mistakes;
    creates the file's folders.

    Raises:
        ValueError: ``"<what> <path>: <problem>"``: the path is a symbolic link or a directory,
            lies under a regular file, is not a regular file, or its folder is not writable.
    """
    from faceland.outputs import UnsafeOutputError, check_output_file

    p = Path(path)
    if p.is_symlink():
        raise ValueError(f"{what} {p}: is a symbolic link; faceland does not write through links "
                         "(remove it or give another path)")
    if p.is_dir():
        raise ValueError(f"{what} {p}: is a directory; give a file name")
    folder = p.parent
    while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {p}: cannot be written: {folder} is a file, not a folder")
    try:
        return check_output_file(p, what)
    except UnsafeOutputError as e:
        raise ValueError(e.strerror if e.filename is None else str(e)) from None


def check_outputs(json_path: str | Path | None, ced_path: str | Path | None,
                  names: tuple[str, str] = ("result JSON", "CED plot")
                  ) -> tuple[Path | None, Path | None]:
    """Check, before an evaluation runs, that its result JSON and CED plot can be written (their
    folders are created).

    Args:
        json_path: the result JSON; ced_path: the CED plot (its suffix picks the format:
            ``.png``, ``.pdf``, ``.svg``, ...); ``None``: not checked.
        names: how the messages name the two (the CLI: ``("--json", "--ced")``).

    Returns:
        The two paths.

    Raises:
        ValueError: one line naming the path and the problem: a symbolic link, a directory, a
            path under a regular file, a folder that cannot be written
            (:func:`faceland.outputs.check_output_file`), a CED suffix matplotlib cannot write,
            or both naming one file.
        ImportError: a CED plot asked for without matplotlib installed.
    """
    j = None if json_path is None else _check_output(json_path, names[0])
    if ced_path is None:
        return j, None
    c = Path(ced_path)
    if j is not None and os.path.abspath(j) == os.path.abspath(c):
        raise ValueError(f"{names[0]} {j}: the result JSON and the CED plot would be the same "
                         f"file; give the JSON a .json name or the plot another path")
    if not have_plotting():
        raise ImportError(f"{names[1]} {c}: the CED plot needs matplotlib, which faceland's core "
                          "install leaves out: pip install 'faceland[plot]'")
    _check_output(c, names[1])
    from matplotlib.backend_bases import FigureCanvasBase

    if c.suffix[1:].lower() not in FigureCanvasBase.get_supported_filetypes():
        raise ValueError(f"{names[1]} {c}: the suffix must name an image format matplotlib "
                         f"writes (.png, .pdf, .svg, ...; got {c.suffix or 'none'})")
    return j, c


def run_evaluation(dataset: str, root: str | Path, landmarker=None, *,
                   predictions: str | Path | None = None, split: str | None = None,
                   annotations: str | Path | None = None, boxes: str = "gt",
                   command: str | None = None, json_path: str | Path | None = None,
                   ced_path: str | Path | None = None, progress: bool = False
                   ) -> tuple[EvalResult, Path, Path | None]:
    """One evaluation run, as ``faceland evaluate`` does it: check the output paths, load the
    data set, score the landmarker (or stored predictions), complete the protocol card, write
    the result JSON and its CED plot.

    Args:
        dataset, root, split, annotations: see :func:`faceland.data.datasets.load_dataset`.
        landmarker: a :class:`~faceland.inference.FaceLandmarker` or an adapter
            (:mod:`faceland.external`); ``None`` with ``predictions``.
        predictions: stored predictions to score instead (:func:`evaluate_predictions`).
        boxes: ``"gt"`` or ``"detector"``.
        command: the command line recorded in the card.
        json_path: result JSON (default ``results/<result_name>.json``); ced_path: the CED
            plot (default: beside the JSON, ``.png``; none, with a note on stderr, when
            matplotlib is not installed). Both are checked before the data set is loaded
            (:func:`check_outputs`) and written atomically through :mod:`faceland.outputs`
            (a symbolic link at either name is refused).
        progress: print a progress line every 100 images.

    Returns:
        ``(result, json_path, ced_path)``: the :class:`~faceland.results.EvalResult` (as
        :func:`evaluate_records` describes, its protocol completed with ``dataset``, ``root``,
        ``command`` and ``split``) and the files written (``ced_path`` ``None`` when no plot
        was drawn).

    Raises:
        ValueError: neither or both of ``landmarker`` and ``predictions``; an output path that
            cannot be written (before the evaluation; a write that fails after it carries the
            result's summary line in its message); errors of the loaders and scorers.
        ImportError: ``ced_path`` given without matplotlib installed.
    """
    from faceland.data.datasets import DATASETS, load_dataset

    if (landmarker is None) == (predictions is None):
        raise ValueError("give a landmarker or stored predictions, not both or neither")
    root = Path(root)
    has_splits = bool(DATASETS[dataset].splits) if dataset in DATASETS else False
    split_name = split if has_splits else Path(annotations).name if annotations else root.name
    json_out, ced = _output_paths(dataset, split_name, landmarker, predictions, boxes, json_path,
                                  ced_path)
    check_outputs(json_out, ced)

    recs, scheme_name = load_dataset(dataset, root, split, annotations)
    scheme = get_scheme(scheme_name)
    if predictions is not None:
        res = evaluate_predictions(predictions, recs, scheme)
    else:
        res = evaluate_records(landmarker, recs, scheme, boxes=boxes, progress=progress)
    res.protocol.extra.update({"dataset": dataset, "root": str(root), "command": command,
                               "split": split_name})
    try:
        res.write(json_out)
        if ced is not None:
            _write_ced(res, ced, f"{dataset} {res.protocol['split']}, "
                                 f"{res.protocol.box_source} boxes")
    except OSError as e:  # incl. faceland.outputs.UnsafeOutputError
        why = f"{e.strerror} ({e.filename})" if e.strerror and e.filename else e.strerror or e
        raise ValueError(f"{json_out}: the result could not be written: {why}; it was: "
                         f"{res.summary().splitlines()[0]}") from None
    return res, json_out, ced


def _output_paths(dataset: str, split_name: str, landmarker, predictions: str | Path | None,
                  boxes: str, json_path: str | Path | None, ced_path: str | Path | None
                  ) -> tuple[Path, Path | None]:
    """``(result JSON, CED plot or None)`` of :func:`run_evaluation`: the JSON defaults to the
    result's own name (``EvalResult.name``, known before the run) under ``results/``, the plot
    to the JSON's ``.png`` (none, with a note, without matplotlib)."""
    if json_path:
        json_out = Path(json_path)
    else:
        if predictions is not None:
            doc = read_predictions(predictions)
            model, box_source = doc["system"], doc["box_source"]
        else:
            model, box_source = landmarker.protocol().get("model"), boxes
        json_out = Path("results") / f"{result_stem(model, dataset, split_name, box_source)}.json"
    if ced_path is None and not have_plotting():
        print(f"faceland: note: no CED plot beside {json_out}: matplotlib is not installed "
              "(pip install 'faceland[plot]')", file=sys.stderr)
        return json_out, None
    return json_out, Path(ced_path) if ced_path else json_out.with_suffix(".png")


def _write_ced(res: EvalResult, path: Path, title: str) -> None:
    """The result's CED plot, written atomically (:func:`faceland.outputs.atomic_path`)."""
    from faceland.metrics import plot_ced
    from faceland.outputs import atomic_path

    per = [v / 100 if v is not None else float("inf") for v in res.per_image.values()]
    with atomic_path(path) as tmp:  # the temporary name keeps the suffix: the plot's format
        plot_ced({res.protocol.model or "model": per}, tmp, title=title)
