"""ONNX export of landmark models and the ONNX Runtime runner (faceland's default runtime).

The exported graph takes ``image``: ``(B, N, N, 3)`` **uint8 RGB crops** (dynamic batch), exactly
what one affine warp of the photo produces (:func:`faceland.geometry.warp_crop`), and does the
rest inside the graph: cast, ``/ 255``, NHWC -> NCHW, the model's ImageNet normalisation, the
network and its decoder. It returns ``coords``: ``(B, K, 2)`` normalised crop coordinates
``(u + 0.5) / N`` (0-based pixel centres; 0 and 1 are the crop's outer pixel edges), as
:meth:`faceland.models.LandmarkModel.predict` does, and, for models with a per-landmark
confidence (heatmap heads), ``point_scores``: ``(B, K)`` in ``[0, 1]``. Graphs exported by
faceland before 2026-12 (``input``: ``(B, 3, N, N)`` float32 in ``[0, 1]``; no scores) still
run.

Shipped and saved weights are run through ONNX Runtime by :class:`faceland.FaceLandmarker`:
:func:`onnx_for_weights` uses the ``.onnx`` shipped beside a ``.safetensors`` when its card
records the same weights hash, else exports once into a cache folder keyed by that hash.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from faceland.errors import FormatError

if TYPE_CHECKING:  # the ONNX Runtime side of this module runs without importing torch
    import torch

    from faceland.models import LandmarkModel

__all__ = ["export_onnx", "OnnxLandmarkModel", "onnx_for_weights", "cache_dir", "ort_session"]

#: ONNX Runtime's thread spinning, off in every faceland session: it makes one session alone
#: faster but makes the detector's and the landmark model's pools fight on 2 cores
#: (``benchmarks/bench_threads.py``).
ALLOW_SPINNING = False


def ort_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session with faceland's thread settings: ``threads`` intra-op
    threads (default ``min(2, os.cpu_count())``), one inter-op thread, no spinning (see
    :data:`ALLOW_SPINNING`), denormal floats flushed to zero.

    Raises:
        faceland.errors.FormatError: the file is not a loadable ONNX model.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if ALLOW_SPINNING else "0")
    # Denormal floats flushed to zero: a fine-tuned graph whose activations go denormal would
    # otherwise run ~30x slower on some CPUs (the public PFLD ONNX: 80 ms against 2.3 ms per
    # face on Intel); faceland's own graphs give the same landmarks (golden tests). Measured:
    # a plain ONNX Runtime session created earlier in the same process keeps the flush off.
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise FormatError(f"{path}: not a loadable ONNX model ({str(e).splitlines()[0]})") \
            from None


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
        p.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
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


class OnnxLandmarkModel:
    """Runs an exported model with a graph runtime (ONNX Runtime, or OpenVINO: see
    :mod:`faceland.runtimes`).

    :meth:`predict_crops` is the fast path (uint8 crops in, numpy coordinates out),
    :meth:`predict_crops_with_scores` adds the per-landmark confidence; :meth:`predict` keeps
    the :class:`LandmarkModel` call (float tensor in ``[0, 1]``).

    Attributes:
        has_scores: whether the graph outputs ``point_scores``.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (see :func:`ort_session`).
        runtime: ``"onnx"`` (default), ``"openvino"`` or ``"auto"``
            (:func:`faceland.runtimes.resolve_runtime`).

    Raises:
        FileNotFoundError: missing file.
        faceland.errors.FormatError: the file is not a loadable ONNX model.
        ImportError: the runtime's package is not installed.
    """

    def __init__(self, path: str | Path, threads: int | None = None, runtime: str = "onnx") -> None:
        from faceland.runtimes import open_graph

        p = Path(path)
        self.session = open_graph(p, runtime, threads)
        self.runtime = self.session.runtime
        inp = self.session.get_inputs()[0]
        self._input = inp.name
        self._uint8 = inp.type == "tensor(uint8)"
        self.input_size = int(inp.shape[2] if self._uint8 else inp.shape[-1])
        k = self.session.get_outputs()[0].shape[1]
        if not isinstance(k, int):  # symbolic in the graph: ask the model
            n = self.input_size
            k = self.predict_crops(np.zeros((1, n, n, 3), np.uint8)).shape[1]
        self.has_scores = len(self.session.get_outputs()) > 1
        self.num_points = int(k)
        self.path = p

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(B, N, N, 3)`` uint8 RGB crops -> ``(B, K, 2)`` float32 normalised crop
        coordinates."""
        return self.predict_crops_with_scores(crops)[0]

    def predict_crops_with_scores(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(B, N, N, 3)`` uint8 RGB crops -> ``(B, K, 2)`` float32 normalised crop coordinates
        and ``(B, K)`` float32 per-landmark confidence in ``[0, 1]`` (``None`` when the graph
        has no ``point_scores`` output)."""
        if self._uint8:
            out = self.session.run(None, {self._input: np.ascontiguousarray(crops)})
        else:
            x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
            out = self.session.run(None, {self._input: x})
        return out[0], (out[1] if len(out) > 1 else None)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, N, N)`` float in ``[0, 1]`` -> ``(B, K, 2)`` normalised crop coordinates."""
        import torch

        a = x.detach().cpu().numpy()
        if self._uint8:
            crops = np.clip(np.rint(a.transpose(0, 2, 3, 1) * 255.0), 0, 255).astype(np.uint8)
            return torch.from_numpy(self.predict_crops(crops))
        return torch.from_numpy(self.session.run(None, {self._input: a.astype(np.float32)})[0])

    def to(self, *_args, **_kwargs) -> OnnxLandmarkModel:
        return self

    def eval(self) -> OnnxLandmarkModel:
        return self
