"""Graph runtimes: one interface over ONNX Runtime and OpenVINO (torch-free).

Every ONNX graph faceland runs (the landmark models, the RetinaFace detector) is opened with
:func:`open_graph`, which returns a :class:`GraphSession`: ``run(output_names | None, feeds)``
-> list of numpy arrays, plus the input and output names, types and shapes. A runtime is one
class in :data:`GRAPH_RUNTIMES`:

- ``"onnx"``: ONNX Runtime (core install) with faceland's settings: ``threads`` intra-op
  threads, no spinning, denormals flushed (:func:`ort_session`).
- ``"openvino"``: OpenVINO (``pip install 'faceland[openvino]'``), latency mode; on CPUs with
  bf16 units (AVX-512 BF16 or AMX) it computes in **bf16** (OpenVINO's default there), which
  moves landmarks by a fraction of a pixel (``docs/benchmarks.md`` gives the NME on 300W common
  and the speed).

``"auto"`` is ONNX Runtime (:func:`resolve_runtime`): OpenVINO's bf16 is faster but moves the
default model's YouTube-Faces NME from 5.983 % to 5.996 % (``docs/benchmarks.md``), so it is
chosen explicitly, never by having the package installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from faceland.errors import FormatError, UnknownNameError, require_extra

if TYPE_CHECKING:
    import torch

__all__ = ["GRAPH_RUNTIMES", "GraphSession", "IOInfo", "LandmarkRunner", "OnnxRuntimeSession",
           "OpenVinoSession", "OnnxLandmarkModel", "open_graph", "ort_session", "resolve_runtime"]


@dataclass(frozen=True)
class IOInfo:
    """One graph input or output: ``name``, ``type`` (ONNX Runtime's spelling, e.g.
    ``"tensor(uint8)"``) and ``shape`` (ints, or strings / ``None`` for dynamic axes)."""

    name: str
    type: str
    shape: tuple


class GraphSession(Protocol):
    """What faceland needs of a runtime session."""

    runtime: str

    def get_inputs(self) -> list[IOInfo]:
        """The graph's inputs, in order."""

    def get_outputs(self) -> list[IOInfo]:
        """The graph's outputs, in order."""

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs named (all when ``None``), in that order, for the input arrays ``feeds``."""


class LandmarkRunner(Protocol):
    """What :class:`faceland.FaceLandmarker` and :class:`faceland.VideoLandmarker` call to run
    a landmark model, whatever runs it: :class:`OnnxLandmarkModel` (a graph
    runtime of :data:`GRAPH_RUNTIMES`) or :class:`faceland.models.LandmarkModel` itself (eager
    PyTorch, ``runtime == "torch"``). :func:`faceland.inference.open_landmark_model` builds one.
    """

    runtime: str
    input_size: int  # N, the crop side in pixels
    num_points: int  # K

    def predict_crops_with_scores(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(B, N, N, 3)`` uint8 RGB crops -> ``(B, K, 2)`` float32 normalised crop coordinates
        ``(u + 0.5) / N`` and ``(B, K)`` float32 per-landmark confidence in ``[0, 1]`` (``None``
        for a model without one)."""


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



class OnnxRuntimeSession:
    """ONNX Runtime with faceland's settings (see :func:`faceland.runtimes.ort_session`).

    Raises:
        faceland.errors.FormatError: the file is not a loadable ONNX model.
    """

    runtime = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.session = ort_session(path, threads)

    def get_inputs(self) -> list[IOInfo]:
        return [IOInfo(i.name, i.type, tuple(i.shape)) for i in self.session.get_inputs()]

    def get_outputs(self) -> list[IOInfo]:
        return [IOInfo(o.name, o.type, tuple(o.shape)) for o in self.session.get_outputs()]

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(output_names, feeds)


_OV_TYPES = {"u8": "tensor(uint8)", "f32": "tensor(float)", "f16": "tensor(float16)",
             "i64": "tensor(int64)"}


class OpenVinoSession:
    """OpenVINO on the CPU, latency mode, ``threads`` inference threads (default
    ``min(2, cores)``), inference requests reused (calls from one thread at a time, as
    faceland's own are).

    The graph is also compiled for each of the first :attr:`STATIC_SHAPES` input shapes it sees
    (OpenVINO runs a static shape faster: the landmark model at batch 1 took 2.59 ms against
    3.00 ms with the dynamic batch, ``docs/benchmarks.md``); later shapes run on the dynamic
    graph, so a folder of photos of many sizes compiles at most that many times.

    Raises:
        ImportError: OpenVINO is not installed (one line naming the ``openvino`` extra).
        faceland.errors.FormatError: the file is not a model OpenVINO can read.
    """

    runtime = "openvino"
    STATIC_SHAPES = 8

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        require_extra("runtime 'openvino'", "openvino", "openvino")
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": int(threads or min(2, os.cpu_count() or 1)),
                  "PERFORMANCE_HINT": "LATENCY"}
        self._core, self._config, self._path = core, config, str(path)
        self._static: dict[tuple, object] = {}
        try:
            self.compiled = core.compile_model(str(path), "CPU", config)
        except Exception as e:  # OpenVINO raises its own RuntimeError subclasses
            raise FormatError(f"{path}: not a model OpenVINO can read "
                              f"({str(e).strip().splitlines()[0] if str(e).strip() else e})") \
                from None
        self.request = self.compiled.create_infer_request()
        self._outputs = [self._info(o) for o in self.compiled.outputs]
        self._inputs = [self._info(i) for i in self.compiled.inputs]
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))

    @staticmethod
    def _info(port) -> IOInfo:
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        return IOInfo(port.get_any_name(), _OV_TYPES.get(port.get_element_type().get_type_name(),
                                                         str(port.get_element_type())), shape)

    def get_inputs(self) -> list[IOInfo]:
        return list(self._inputs)

    def get_outputs(self) -> list[IOInfo]:
        return list(self._outputs)

    def _request_for(self, feeds: dict[str, np.ndarray]):
        """The inference request of a graph compiled for these input shapes (see the class
        docstring), else the dynamic graph's."""
        key = tuple((k, v.shape) for k, v in feeds.items())
        if key not in self._static and len(self._static) < self.STATIC_SHAPES:
            model = self._core.read_model(self._path)
            model.reshape({k: list(v.shape) for k, v in feeds.items()})
            self._static[key] = self._core.compile_model(model, "CPU", self._config) \
                .create_infer_request()
        return self._static.get(key, self.request)

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        res = self._request_for(feeds).infer(feeds)
        names = output_names or [o.name for o in self._outputs]
        by_name = {p.get_any_name(): v for p, v in res.items()}
        return [np.array(by_name[n], copy=True) for n in names]


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


#: Graph runtimes by name.
GRAPH_RUNTIMES: dict[str, type] = {"onnx": OnnxRuntimeSession, "openvino": OpenVinoSession}


def resolve_runtime(runtime: str = "auto") -> str:
    """The graph runtime ``"auto"`` stands for (``"onnx"``: same landmarks everywhere); other
    names are checked and returned.

    Raises:
        faceland.errors.UnknownNameError: not ``"auto"`` and not in :data:`GRAPH_RUNTIMES`.
    """
    if runtime == "auto":
        return "onnx"
    if runtime not in GRAPH_RUNTIMES:
        raise UnknownNameError(f"unknown graph runtime {runtime!r}; available: auto, "
                               f"{', '.join(GRAPH_RUNTIMES)}")
    return runtime


def open_graph(path: str | Path, runtime: str = "onnx", threads: int | None = None
               ) -> GraphSession:
    """Open an ONNX graph with a runtime (``"auto"``, ``"onnx"`` or ``"openvino"``).

    Raises:
        FileNotFoundError: no such file.
        faceland.errors.FormatError: not a loadable model.
        faceland.errors.UnknownNameError: unknown runtime; ImportError: its package is missing.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such ONNX model")
    return GRAPH_RUNTIMES[resolve_runtime(runtime)](p, threads)
