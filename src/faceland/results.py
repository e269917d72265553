"""Typed evaluation results: the protocol card and the result, with a JSON round trip.

``faceland evaluate`` writes one :class:`EvalResult` per run as JSON (``EvalResult.to_dict``,
the layout of every file in ``docs/results/``); :meth:`EvalResult.from_json` reads any of them
back. The :class:`Protocol` states how the numbers were made: box source and definition, crop
enlargement, input size, normalisations, FR / AUC threshold and rule, flip test, model and
weights hash, faceland version and hardware; run-specific keys (data set, root, split, command,
stored-prediction file, ...) are kept in ``extra`` in their order.

Units: NME values in percent, ``auc`` a fraction in ``[0, 1]``, ``fr`` in percent of images,
``mean_error_px`` in image pixels (0-based pixel centres, image frame).

A result is written atomically (:mod:`faceland.outputs`: a temporary file created exclusively in
the same folder, then renamed over the final name, which must not be a symbolic link).

Torch-free.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from faceland.metrics import NORMALIZATIONS

__all__ = ["Protocol", "EvalResult", "PIXEL_ORIGIN", "AUC_RULE", "result_stem"]

PIXEL_ORIGIN = "0-based pixel centres (iBUG .pts minus 1)"
AUC_RULE = "exact integral of the empirical CED step function / threshold"

# JSON key order of the protocol card (files written before the types existed use it too).
_PROTOCOL_ORDER = ("box_source", "box_definition", "enlarge", "input_size", "pixel_origin",
                   "normalisation", "fr_auc_normalisation", "threshold", "auc_rule", "flip_test",
                   "model", "weights_sha256", "faceland_version", "hardware")


@dataclass
class Protocol:
    """How an evaluation was run (the ``protocol`` card of a result).

    Attributes:
        box_source: ``"gt"`` or ``"detector"``.
        box_definition: how the crop box was made, in words.
        enlarge: crop side / box side (``None`` for stored predictions).
        input_size: the model's crop side N in pixels (``None`` for stored predictions).
        fr_auc_normalisation: ``"iod"``, ``"ipd"`` or ``"box"``: the distance of FR and AUC.
        threshold: FR / AUC threshold, a fraction of that distance (0.1).
        flip_test: flip test-time augmentation.
        model: the system's name.
        weights_sha256: first 16 hex digits of the weights file's SHA-256 (``None``: not a
            faceland model).
        faceland_version, hardware: where the numbers were made.
        pixel_origin, normalisation, auc_rule: the conventions (constants of this harness).
        extra: further keys in order (``dataset``, ``root``, ``split``, ``command``, ...).
    """

    box_source: str
    box_definition: str
    enlarge: float | None
    input_size: int | None
    fr_auc_normalisation: str
    threshold: float
    flip_test: bool
    model: str
    weights_sha256: str | None
    faceland_version: str
    hardware: str
    pixel_origin: str = PIXEL_ORIGIN
    normalisation: dict = field(default_factory=lambda: dict(NORMALIZATIONS))
    auc_rule: str = AUC_RULE
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON object: the fixed keys in their documented order, then ``extra``."""
        d = {k: getattr(self, k) for k in _PROTOCOL_ORDER}
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> Protocol:
        """Read a card written by :meth:`to_dict` (unknown keys go to ``extra``).

        Raises:
            KeyError: a required key is missing (the message names it).
        """
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**known, extra=extra)

    def __getitem__(self, key: str) -> Any:
        """Dict-style read of a fixed key or an ``extra`` key (``protocol["split"]``)."""
        if key in self.extra:
            return self.extra[key]
        if key in _PROTOCOL_ORDER:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` over the fixed and ``extra`` keys."""
        try:
            return self[key]
        except KeyError:
            return default


@dataclass
class EvalResult:
    """The result of one evaluation run.

    Attributes:
        nme_box: NME normalised by ``sqrt(w h)`` of the gt box, percent (every scheme).
        nme_iod, nme_ipd: NME by the outer-eye-corner and the eye-centre distance, percent
            (``None`` for schemes without eyes).
        mean_error_px: mean point error in image pixels.
        fr: failure rate at ``protocol.threshold``, percent of images.
        auc: area under the CED up to the threshold, divided by it, in ``[0, 1]``.
        n_images, n_missed, n_skipped: images evaluated, faces the detector missed (NME inf),
            annotated faces left out (image missing or unreadable); ``skipped`` lists the
            latter's files.
        per_image: image key -> NME percent (FR/AUC normalisation), ``None`` for a miss.
        protocol: the :class:`Protocol`.
        point_scores: quality of the per-landmark confidence
            (:func:`faceland.metrics.confidence_quality`), when the model gives one.
        extra: further top-level keys in order (e.g. ``ablation`` from scripts/ablations.py).
    """

    nme_box: float
    mean_error_px: float
    fr: float
    auc: float
    n_images: int
    n_missed: int
    n_skipped: int
    skipped: list[str]
    per_image: dict[str, float | None]
    protocol: Protocol
    nme_iod: float | None = None
    nme_ipd: float | None = None
    point_scores: dict | None = None
    extra: dict = field(default_factory=dict)

    def nme(self, norm: str | None = None) -> float:
        """NME in percent by ``norm`` (default: the protocol's FR / AUC normalisation).

        Raises:
            KeyError: no NME for that normalisation in this result.
        """
        norm = norm or self.protocol.fr_auc_normalisation
        value = getattr(self, f"nme_{norm}", None)
        if value is None:
            raise KeyError(f"this result has no nme_{norm}")
        return value

    def to_dict(self) -> dict:
        """The JSON object of ``docs/results/*.json`` (key order as written since the start)."""
        norm = self.protocol.fr_auc_normalisation
        d: dict[str, Any] = {f"nme_{norm}": self.nme(norm)}
        if self.nme_ipd is not None:
            d["nme_ipd"] = self.nme_ipd
        if norm != "box":
            d["nme_box"] = self.nme_box
        if self.point_scores is not None:
            d["point_scores"] = self.point_scores
        d.update({"mean_error_px": self.mean_error_px, "fr": self.fr, "auc": self.auc,
                  "n_images": self.n_images, "n_missed": self.n_missed,
                  "n_skipped": self.n_skipped, "skipped": list(self.skipped),
                  "per_image": self.per_image, "protocol": self.protocol.to_dict()})
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> EvalResult:
        """Read a result written by :meth:`to_dict` (``null`` numbers become NaN).

        Raises:
            KeyError: a required key is missing.
        """
        def num(v: Any) -> float:
            return float("nan") if v is None else float(v)

        known = {"nme_iod", "nme_ipd", "nme_box", "point_scores", "mean_error_px", "fr", "auc",
                 "n_images", "n_missed", "n_skipped", "skipped", "per_image", "protocol"}
        return cls(nme_box=num(d["nme_box"]), mean_error_px=num(d["mean_error_px"]),
                   fr=num(d["fr"]), auc=num(d["auc"]), n_images=int(d["n_images"]),
                   n_missed=int(d.get("n_missed", 0)), n_skipped=int(d.get("n_skipped", 0)),
                   skipped=list(d.get("skipped", [])), per_image=dict(d["per_image"]),
                   protocol=Protocol.from_dict(d["protocol"]),
                   nme_iod=None if "nme_iod" not in d else num(d["nme_iod"]),
                   nme_ipd=None if "nme_ipd" not in d else num(d["nme_ipd"]),
                   point_scores=d.get("point_scores"),
                   extra={k: v for k, v in d.items() if k not in known})

    @classmethod
    def from_json(cls, path: str | Path) -> EvalResult:
        """Read a result JSON file.

        Raises:
            faceland.errors.FormatError: not a readable result (the message names the file).
        """
        from faceland.errors import FormatError

        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise FormatError(f"{path}: not a faceland evaluation result ({e})") from None

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON (inf / NaN written as ``null``), atomically
        (:func:`faceland.outputs.atomic_write_json`); returns the path.

        Raises:
            faceland.outputs.UnsafeOutputError: ``path`` is a symbolic link or a directory.
            OSError: the file cannot be written (the temporary file is removed).
        """
        from faceland.outputs import atomic_write_json

        def clean(o: Any) -> Any:
            if isinstance(o, float) and not math.isfinite(o):
                return None
            if isinstance(o, dict):
                return {k: clean(v) for k, v in o.items()}
            if isinstance(o, list):
                return [clean(v) for v in o]
            return o

        return atomic_write_json(path, clean(self.to_dict()))

    @property
    def name(self) -> str:
        """Default file stem ``<model>-<dataset>-<split>-<boxes>``, safe as a file name."""
        p = self.protocol
        return result_stem(p.model, p.get("dataset"), p.get("split"), p.box_source)

    def summary(self) -> str:
        """The console summary: NME (FR/AUC normalisation, IPD, box), mean pixel error, FR and
        AUC at the threshold, image count (and misses, and faces left out for a missing or
        unreadable image); a second line with the point-score quality when there is one."""
        norm, thr = self.protocol.fr_auc_normalisation, self.protocol.threshold
        line = f"NME ({norm.upper()}) {self.nme(norm):.3f} %"
        if self.nme_ipd is not None:
            line += f" | NME (IPD) {self.nme_ipd:.3f} %"
        if norm != "box":
            line += f" | NME (box) {self.nme_box:.3f} %"
        line += f" | error {self.mean_error_px:.2f} px"
        line += (f" | FR@{thr:g} {self.fr:.2f} % | AUC@{thr:g} {self.auc:.4f} | images "
                 f"{self.n_images}" + (f" (missed {self.n_missed})" if self.n_missed else "")
                 + (f" | left out {self.n_skipped}" if self.n_skipped else ""))
        if self.point_scores is not None:
            q = self.point_scores
            line += (f"\npoint scores: AUROC {q['auroc']:.3f} for points with {q['bad_point']} "
                     f"({q['n_bad']} of {q['n_points']}) | Spearman(score, error) "
                     f"{q['spearman']:+.3f}")
        return line


def result_stem(model: Any, dataset: Any, split: Any, box_source: Any) -> str:
    """The default file stem of a result, ``<model>-<dataset>-<split>-<boxes>``, made safe as
    a file name (no folders, no leading dot); :attr:`EvalResult.name`."""
    text = f"{model}-{dataset}-{split}-{box_source}"
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).lstrip(".") or "result"
