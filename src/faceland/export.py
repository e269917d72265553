"""ONNX export of landmark models and an ONNX Runtime runner with the model interface.

The exported graph takes ``input``: ``(B, 3, N, N)`` float32 RGB in ``[0, 1]`` (dynamic batch) and
returns ``coords``: ``(B, K, 2)`` normalised crop coordinates, exactly like
:meth:`faceland.models.LandmarkModel.predict`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from faceland.models import LandmarkModel

__all__ = ["export_onnx", "OnnxLandmarkModel"]


class _CoordsOnly(nn.Module):
    def __init__(self, model: LandmarkModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["coords"]


def export_onnx(model: LandmarkModel, path: str | Path, card: dict | None = None,
                opset: int = 17) -> Path:
    """Export ``model`` to ONNX at ``path``; its card (if given) is written beside it as JSON.

    Raises:
        RuntimeError: the model cannot be traced (message from the exporter).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = int(model.input_size)
    x = torch.rand(2, 3, n, n)
    was_training = model.training
    wrapper = _CoordsOnly(model).eval()  # the exporter restores the wrapper's mode afterwards
    try:
        torch.onnx.export(wrapper, (x,), str(p), input_names=["input"], output_names=["coords"],
                          opset_version=opset, dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "coords": {0: "batch"}})
    finally:
        model.train(was_training)
    if card is not None:
        meta = {k: v for k, v in card.items() if not k.startswith("_")}
        p.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return p


class OnnxLandmarkModel:
    """Runs an exported model with ONNX Runtime behind the :class:`LandmarkModel` calls used by
    :class:`faceland.inference.FaceLandmarker` (``predict``, ``num_points``, ``input_size``).

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (default: ONNX Runtime's choice).

    Raises:
        FileNotFoundError: missing file.
        ImportError: onnxruntime is not installed.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("running .onnx models needs onnxruntime: pip install "
                              "'faceland[onnx]'") from None

        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such ONNX model")
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
        self.input_size = int(self.session.get_inputs()[0].shape[-1])
        k = self.session.get_outputs()[0].shape[1]
        if not isinstance(k, int):  # symbolic in the graph: ask the model
            k = self.predict(torch.zeros(1, 3, self.input_size, self.input_size)).shape[1]
        self.num_points = int(k)
        self.path = p

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, N, N)`` in ``[0, 1]`` -> ``(B, K, 2)`` normalised crop coordinates."""
        out = self.session.run(["coords"], {"input": x.cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)

    def to(self, *_args, **_kwargs) -> OnnxLandmarkModel:
        return self

    def eval(self) -> OnnxLandmarkModel:
        return self
