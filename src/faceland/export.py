"""ONNX export of landmark models (the graphs :mod:`faceland.runtimes` runs).

The exported graph takes ``image``: ``(B, N, N, 3)`` **uint8 RGB crops** (dynamic batch), exactly
what one affine warp of the photo produces (:func:`faceland.geometry.warp_crop`), and does the
rest inside the graph: cast, ``/ 255``, NHWC -> NCHW, the model's ImageNet normalisation, the
network and its decoder. It returns ``coords``: ``(B, K, 2)`` normalised crop coordinates
``(u + 0.5) / N`` (0-based pixel centres; 0 and 1 are the crop's outer pixel edges), as
:meth:`faceland.models.LandmarkModel.predict` does, and, for models with a per-landmark
confidence (heatmap heads), ``point_scores``: ``(B, K)`` in ``[0, 1]``. Graphs exported by
faceland before 2026-12 (``input``: ``(B, 3, N, N)`` float32 in ``[0, 1]``; no scores) still
run.

Shipped and saved weights are run (:class:`faceland.runtimes.OnnxLandmarkModel`) by
:class:`faceland.FaceLandmarker`:
:func:`onnx_for_weights` uses the ``.onnx`` shipped beside a ``.safetensors`` when its card
records the same weights hash, else exports once into a cache folder keyed by that hash.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from faceland.outputs import atomic_write_json

# The runner and session settings live in faceland.runtimes; kept importable from here.
from faceland.runtimes import ALLOW_SPINNING, OnnxLandmarkModel, ort_session  # noqa: F401

if TYPE_CHECKING:  # the ONNX Runtime side of this module runs without importing torch
    from faceland.models import LandmarkModel

__all__ = ["export_onnx", "OnnxLandmarkModel", "onnx_for_weights", "cache_dir", "ort_session"]

#: Version of the exported graph's interface, part of cached graphs' names (version 2 added the
#: ``point_scores`` output).
GRAPH_VERSION = 2


def _crops_to_coords(model: LandmarkModel, scores: bool):
    """uint8 NHWC crops -> normalised coordinates (and per-landmark scores): the exported
    graph, as a module wrapping ``model``."""
    from torch import nn

    class CropsToCoords(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, image):
            x = image.permute(0, 3, 1, 2).float() * (1.0 / 255.0)
            out = self.model(x)
            return (out["coords"], out["scores"]) if scores else out["coords"]

    return CropsToCoords()


def export_onnx(model: LandmarkModel, path: str | Path, card: dict | None = None,
                opset: int = 17) -> Path:
    """Export ``model`` to ONNX at ``path`` (written atomically); its card (if given) is
    written beside it as JSON.

    Graph: ``image`` ``(B, N, N, 3)`` uint8 RGB -> ``coords`` ``(B, K, 2)`` normalised crop
    coordinates, plus ``point_scores`` ``(B, K)`` when the model outputs ``"scores"`` (see the
    module docstring).

    Raises:
        ValueError: ``path`` is a directory, or ends in ``.json`` while a card is to be written
            beside it (the card would replace the graph); checked before the export runs.
        RuntimeError: the model cannot be traced (message from the exporter).
    """
    import torch

    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{p}: is a directory, not an .onnx file to write")
    if card is not None and p.suffix.lower() == ".json":
        raise ValueError(f"{p}: the graph's card is written beside it as .json: name the graph "
                         ".onnx")
    p.parent.mkdir(parents=True, exist_ok=True)
    n = int(model.input_size)
    x = torch.randint(0, 256, (2, n, n, 3), dtype=torch.uint8)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        has_scores = "scores" in model(x[:1].permute(0, 3, 1, 2).float() / 255.0)
    wrapper = _crops_to_coords(model, has_scores).eval()
    outputs = ["coords", "point_scores"] if has_scores else ["coords"]
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=p.parent)
    os.close(fd)
    try:
        torch.onnx.export(wrapper, (x,), tmp, input_names=["image"], output_names=outputs,
                          opset_version=opset, dynamo=False,
                          dynamic_axes={name: {0: "batch"} for name in ["image", *outputs]})
        os.replace(tmp, p)
    finally:
        model.train(was_training)
        if os.path.exists(tmp):
            os.unlink(tmp)
    if card is not None:
        meta = {k: v for k, v in card.items() if not k.startswith("_")}  # dict or ModelCard
        atomic_write_json(p.with_suffix(".json"), meta)
    return p


def cache_dir() -> Path:
    """Where exported graphs of saved weights are cached: ``$FACELAND_CACHE`` or
    ``~/.cache/faceland`` (``$XDG_CACHE_HOME/faceland``), subfolder ``onnx``."""
    base = os.environ.get("FACELAND_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "faceland")
    return Path(base) / "onnx"


def onnx_for_weights(weights: str | Path, card: dict) -> Path:
    """The ONNX graph of saved weights, exporting it once if needed.

    Uses ``weights.with_suffix(".onnx")`` when it exists and ``card["onnx"]["weights_sha256"]``
    equals the hash of ``weights`` (shipped models); else ``cache_dir() /
    "<stem>-<weights hash>-v<GRAPH_VERSION>.onnx"``, exported from the weights on first use. A
    cached graph is tied to its weights (and to the graph interface) by its name, so changed
    weights are exported again.

    Raises:
        FileNotFoundError: no such weights file.
    """
    from faceland.checkpoint import load_model, weights_hash

    w = Path(weights)
    h = weights_hash(w)
    beside = w.with_suffix(".onnx")
    if beside.exists() and (card.get("onnx") or {}).get("weights_sha256") == h:
        return beside
    cached = cache_dir() / f"{w.stem}-{h}-v{GRAPH_VERSION}.onnx"
    if not cached.exists():
        model, _ = load_model(w)
        export_onnx(model, cached)
    return cached
