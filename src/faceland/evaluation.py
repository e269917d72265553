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
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import faceland
from faceland.data.datasets import FaceRecord
from faceland.data.formats import FormatError, read_image
from faceland.geometry import landmark_box, nearest_box
from faceland.inference import FaceLandmarker, Landmarker
from faceland.metrics import auc, confidence_quality, failure_rate, nme, normalizing_distance
from faceland.results import EvalResult, Protocol
from faceland.schemes import SCHEMES, LandmarkScheme

__all__ = ["evaluate_records", "evaluate_predictions", "read_predictions", "score_predictions",
           "write_result", "run_evaluation", "summary", "result_name", "EvalResult", "Protocol"]


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
        records: annotated faces (points in image pixels, 0-based pixel centres).
        scheme: landmark scheme of the records and the model.
        boxes: ``"gt"`` or ``"detector"`` (see the module docstring).
        threshold: FR / AUC threshold (fraction of the normalising distance).
        progress: print a progress line every 100 images.

    Returns:
        An :class:`~faceland.results.EvalResult`: ``nme_iod``, ``nme_ipd`` (where the scheme has
        eye corners) and ``nme_box`` (sqrt(w h) of the gt landmark box, or of the annotated box
        for AFLW), all percent; ``mean_error_px`` (mean point error in image pixels), ``fr``
        (percent), ``auc`` (fraction), ``n_images`` (evaluated), ``n_missed`` (detector misses),
        ``n_skipped`` and ``skipped`` (unreadable images, reported on stderr and left out),
        ``per_image`` (key -> NME percent or None), ``protocol`` (the
        :class:`~faceland.results.Protocol` card). ``to_dict()`` is its JSON.

    Raises:
        ValueError: unknown box source, model and scheme point counts differ, or no image could
            be read.
    """
    if boxes not in ("gt", "detector"):
        raise ValueError(f"boxes must be 'gt' or 'detector', not {boxes!r}")
    parent = scheme
    if landmarker.num_points != scheme.num_points:
        # A model of a subset scheme (e.g. "1", the IMM nose tip) on its parent's annotations.
        subsets = [s for s in SCHEMES.values()
                   if s.parent == scheme.name and s.num_points == landmarker.num_points]
        if not subsets:
            raise ValueError(f"model predicts {landmarker.num_points} points but the data set "
                             f"uses the {scheme.num_points}-point scheme {scheme.name}")
        scheme = subsets[0]
    check_ground_truth(records, parent)
    preds, used, skipped, point_scores = [], [], [], []
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
        if box is None:
            preds.append(np.full((scheme.num_points, 2), np.nan))
            point_scores.append(np.full(scheme.num_points, np.nan))
        elif scored:
            p, sc = landmarker.landmarks_from_boxes(img, [box], "landmark", return_scores=True)
            preds.append(p[0])
            if sc is None:
                scored = False
            else:
                point_scores.append(sc[0])
        else:
            preds.append(landmarker.landmarks_from_boxes(img, [box], "landmark")[0])
        if progress and (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(records)} images", flush=True)
    if not used:
        raise ValueError("no readable image to evaluate")
    info = landmarker.protocol()
    info["box_definition"] = (
        "tight ground-truth landmark box, square side max(w, h) * enlarge" if boxes == "gt" else
        f"{landmarker.detector.name} detection nearest the face, calibrated to a landmark box; "
        "missed face = NME inf")
    return score_predictions(np.stack(preds), used, scheme, parent, boxes, info, threshold,
                             skipped, np.stack(point_scores) if scored else None)


def read_predictions(path: str | Path) -> dict:
    """Read a stored-predictions file of another system (see :func:`evaluate_predictions`).

    Raises:
        faceland.data.formats.FormatError: missing file, not JSON, or a required key missing.
    """
    import json

    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{p}: no such predictions file")
    try:
        doc = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{p}: not a JSON predictions file ({e})") from None
    missing = [k for k in ("system", "scheme", "box_source", "landmarks")
               if not isinstance(doc, dict) or k not in doc]
    if missing:
        raise FormatError(f"{p}: predictions file lacks {missing}")
    return doc


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
    is a face the system missed (NME = inf, a failure).

    Raises:
        faceland.data.formats.FormatError: unreadable file, or records without a prediction.
        faceland.errors.UnknownNameError: no map from the file's scheme to the data set's.
    """
    from faceland.schemes import convert_points

    doc = read_predictions(path)
    table = doc["landmarks"]
    absent = [r.key for r in records if r.key not in table]
    if absent:
        raise FormatError(f"{path}: no prediction for {len(absent)} of {len(records)} faces "
                          f"(first: {absent[0]}); use null for a missed face")
    preds = []
    for r in records:
        v = table[r.key]
        if v is None:
            preds.append(np.full((scheme.num_points, 2), np.nan))
            continue
        pts = np.asarray(v, dtype=np.float64)
        if str(doc["scheme"]) != scheme.name:
            pts = convert_points(pts, str(doc["scheme"]), scheme.name)
        if pts.shape != (scheme.num_points, 2):
            raise FormatError(f"{path}: {r.key}: expected {scheme.num_points} points, got "
                              f"{pts.shape}")
        preds.append(pts)
    info = {"model": doc["system"], "weights_sha256": None, "enlarge": None, "input_size": None,
            "flip_test": False, "predictions_file": str(path),
            "predictions_command": doc.get("command"),
            "box_definition": doc.get("box_definition", "as stated by the system")}
    return score_predictions(np.stack(preds), list(records), scheme, scheme,
                             str(doc["box_source"]), info, threshold, [])


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
        skipped: unreadable images left out.
        point_scores: optional ``(N, K)`` per-landmark confidence of the predictions; adds
            ``point_scores``: :func:`faceland.metrics.confidence_quality` of the scores against
            each point's error over the normalising distance, bad point = error > ``threshold``.

    Returns:
        The :class:`~faceland.results.EvalResult` described in :func:`evaluate_records`.
    """
    check_ground_truth(records, parent)
    gt = np.stack([scheme.select(r.points) for r in records])
    norm = scheme.default_norm
    # Box normalisation uses the annotated face box where every record has one (AFLW), else the
    # ground-truth landmark box of the full markup (also for subset schemes such as "1").
    # ``nme_box`` is reported for every scheme (next to IOD / IPD where the scheme has eyes).
    ann_boxes = [r.detector_box for r in records]
    if norm == "box" and all(b is not None for b in ann_boxes) and scheme is parent:
        box = np.stack(ann_boxes)
    else:
        box = np.stack([landmark_box(r.points) for r in records])
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
    info = dict(info)
    quality = None
    if point_scores is not None:
        d = normalizing_distance(gt, scheme, norm, box)
        per_point = np.linalg.norm(pred - gt, axis=-1) / d[:, None]
        quality = {**confidence_quality(point_scores, per_point, threshold),
                   "bad_point": f"error > {threshold} {norm}",
                   "mean_score": float(np.nanmean(point_scores))}
    protocol = Protocol(
        box_source=boxes, box_definition=info.pop("box_definition"),
        enlarge=info.pop("enlarge"), input_size=info.pop("input_size"),
        fr_auc_normalisation=norm, threshold=threshold, flip_test=info.pop("flip_test"),
        model=info.pop("model"), weights_sha256=info.pop("weights_sha256"),
        faceland_version=faceland.__version__,
        hardware=f"{platform.machine()}, {os.cpu_count()} CPU cores", extra=info)
    return EvalResult(
        nme_box=values["nme_box"], nme_iod=values.get("nme_iod"), nme_ipd=values.get("nme_ipd"),
        point_scores=quality,
        mean_error_px=float(err_px[found].mean()) if found.any() else float("nan"),
        fr=failure_rate(e_iod, threshold) * 100, auc=auc(e_iod, threshold),
        n_images=len(records), n_missed=int((~found).sum()), n_skipped=len(skipped),
        skipped=list(skipped),
        per_image={r.key or str(r.image): (round(float(e) * 100, 4) if np.isfinite(e) else None)
                   for r, e in zip(records, e_iod, strict=True)},
        protocol=protocol)


def _typed(result: EvalResult | dict) -> EvalResult:
    return result if isinstance(result, EvalResult) else EvalResult.from_dict(result)


def write_result(result: EvalResult | dict, path: str | Path) -> Path:
    """Write an evaluation result as JSON (inf/NaN written as null); see
    :meth:`faceland.results.EvalResult.write`."""
    return _typed(result).write(path)


def summary(result: EvalResult | dict) -> str:
    """The console summary of a result (:meth:`faceland.results.EvalResult.summary`)."""
    return _typed(result).summary()


def result_name(result: EvalResult | dict) -> str:
    """The default file stem of a result, ``<model>-<dataset>-<split>-<boxes>``
    (:attr:`faceland.results.EvalResult.name`)."""
    return _typed(result).name


def run_evaluation(dataset: str, root: str | Path, landmarker=None, *,
                   predictions: str | Path | None = None, split: str | None = None,
                   annotations: str | Path | None = None, boxes: str = "gt",
                   command: str | None = None, json_path: str | Path | None = None,
                   ced_path: str | Path | None = None, progress: bool = False
                   ) -> tuple[EvalResult, Path, Path]:
    """One evaluation run, as ``faceland evaluate`` does it: load the data set, score the
    landmarker (or stored predictions), complete the protocol card, write the result JSON and
    its CED plot.

    Args:
        dataset, root, split, annotations: see :func:`faceland.data.datasets.load_dataset`.
        landmarker: a :class:`~faceland.inference.FaceLandmarker` or an adapter
            (:mod:`faceland.external`); ``None`` with ``predictions``.
        predictions: stored predictions to score instead (:func:`evaluate_predictions`).
        boxes: ``"gt"`` or ``"detector"``.
        command: the command line recorded in the card.
        json_path: result JSON (default ``results/<result_name>.json``); ced_path: the CED
            plot (default: beside the JSON, ``.png``).
        progress: print a progress line every 100 images.

    Returns:
        ``(result, json_path, ced_path)``: the :class:`~faceland.results.EvalResult` (as
        :func:`evaluate_records` describes, its protocol completed with ``dataset``, ``root``,
        ``command`` and ``split``) and the two files written.

    Raises:
        ValueError: neither or both of ``landmarker`` and ``predictions``; errors of the
            loaders and scorers.
    """
    from faceland.data.datasets import DATASETS, load_dataset
    from faceland.metrics import plot_ced
    from faceland.schemes import get_scheme

    if (landmarker is None) == (predictions is None):
        raise ValueError("give a landmarker or stored predictions, not both or neither")
    root = Path(root)
    recs, scheme_name = load_dataset(dataset, root, split, annotations)
    scheme = get_scheme(scheme_name)
    if predictions is not None:
        res = evaluate_predictions(predictions, recs, scheme)
    else:
        res = evaluate_records(landmarker, recs, scheme, boxes=boxes, progress=progress)
    has_splits = bool(DATASETS[dataset].splits)
    res.protocol.extra.update({
        "dataset": dataset, "root": str(root), "command": command,
        "split": split if has_splits else Path(annotations).name if annotations else root.name})
    json_out = Path(json_path) if json_path else Path("results") / f"{res.name}.json"
    res.write(json_out)
    ced = Path(ced_path) if ced_path else json_out.with_suffix(".png")
    per = [v / 100 if v is not None else float("inf") for v in res.per_image.values()]
    plot_ced({res.protocol.model or "model": per}, ced,
             title=f"{dataset} {res.protocol['split']}, {res.protocol.box_source} boxes")
    return res, json_out, ced
