"""Graph runtimes behind one interface (faceland.runtimes): ONNX Runtime and OpenVINO give the
same landmarks (OpenVINO's bf16 within a fraction of a pixel), `auto` stays ONNX Runtime whatever
is installed, and a missing runtime is one line naming its extra. The OpenVINO tests run where
the `openvino` extra is installed (CI installs it into the core venv for a second pass)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from faceland import FaceLandmarker, read_image
from faceland.cli import main
from faceland.errors import UnknownNameError
from faceland.runtimes import GRAPH_RUNTIMES, open_graph, resolve_runtime

pytestmark = pytest.mark.core

REPO = Path(__file__).resolve().parents[1]
IMAGE = read_image(REPO / "assets" / "astronaut.jpg")
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="the openvino extra is not installed")


def test_auto_is_onnx_runtime_whatever_is_installed() -> None:
    assert resolve_runtime("auto") == "onnx"
    assert FaceLandmarker(detector=None).runtime == "onnx"
    assert resolve_runtime("onnx") == "onnx"
    with pytest.raises(UnknownNameError, match="unknown graph runtime 'tensorrt'"):
        resolve_runtime("tensorrt")
    with pytest.raises(ValueError, match="runtime must be"):
        FaceLandmarker(runtime="tensorrt")
    assert set(GRAPH_RUNTIMES) == {"onnx", "openvino"}


def test_a_missing_runtime_names_its_extra(monkeypatch, capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'faceland\[openvino\]'"):
        FaceLandmarker(runtime="openvino")
    assert main(["predict", str(REPO / "assets" / "astronaut.jpg"), "--out", "/nonexistent-x",
                 "--runtime", "openvino"]) == 2
    err = capsys.readouterr().err
    assert "faceland[openvino]" in err and "Traceback" not in err


def test_graph_sessions_share_the_interface() -> None:
    path = REPO / "src" / "faceland" / "weights" / "faceland-300w-mtfl-mnv2dw-128.onnx"
    runtimes = ["onnx"] + (["openvino"] if HAS_OPENVINO else [])
    crops = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    outs = {}
    for rt in runtimes:
        s = open_graph(path, rt)
        assert s.runtime == rt
        assert [i.name for i in s.get_inputs()] == ["image"]
        assert s.get_inputs()[0].type == "tensor(uint8)"
        assert [o.name for o in s.get_outputs()] == ["coords", "point_scores"]
        outs[rt] = s.run(None, {"image": crops})
        assert outs[rt][0].shape == (2, 68, 2) and outs[rt][1].shape == (2, 68)
        only = s.run(["point_scores"], {"image": crops})
        np.testing.assert_allclose(only[0], outs[rt][1], atol=1e-6)
    with pytest.raises(FileNotFoundError):
        open_graph(path.with_name("missing.onnx"))


@needs_openvino
def test_openvino_gives_the_landmarks_of_onnx_runtime() -> None:
    a = FaceLandmarker(runtime="onnx")
    b = FaceLandmarker(runtime="openvino")
    assert b.runtime == "openvino" and b.detector.session.runtime == "openvino"
    fa, fb = a.predict(IMAGE), b.predict(IMAGE)
    assert len(fa) == len(fb) == 1
    iod = np.linalg.norm(fa[0].landmarks[36] - fa[0].landmarks[45])
    # bf16 on CPUs with bf16 units: measured 0.12 px (0.1 % of the IOD) on this photo
    assert np.abs(fa[0].landmarks - fb[0].landmarks).max() < 0.01 * iod
    assert np.abs(fa[0].box - fb[0].box).max() < 2.0


@needs_openvino
def test_openvino_runs_every_shipped_model_and_the_cli(tmp_path) -> None:
    from faceland.pretrained import PRETRAINED

    box = FaceLandmarker(runtime="onnx").predict(IMAGE)[0].box
    for name in PRETRAINED:
        ref = FaceLandmarker(name, runtime="onnx").predict(IMAGE, boxes=[box])[0].landmarks
        got = FaceLandmarker(name, runtime="openvino").predict(IMAGE, boxes=[box])[0].landmarks
        d = np.linalg.norm(ref - got, axis=1)
        # measured in bf16 (face ~59 px IOD): mean 0.04-0.16 px; the hourglass's argmax decoder
        # can move a point by one heatmap cell (3.5 px here), so only the mean is bounded tightly
        assert d.mean() < 0.5 and d.max() < 5.0, (name, d.mean(), d.max())
    assert main(["predict", str(REPO / "assets" / "astronaut.jpg"), "--out", str(tmp_path),
                 "--runtime", "openvino", "--quiet"]) == 0


@needs_openvino
def test_openvino_compiles_the_first_shapes_statically_and_the_rest_dynamically() -> None:
    from faceland.runtimes import OpenVinoSession

    path = REPO / "src" / "faceland" / "weights" / "faceland-300w-mtfl-mnv2dw-128.onnx"
    s = OpenVinoSession(path)
    s.STATIC_SHAPES = 2
    rng = np.random.default_rng(1)
    outs = {}
    for b in (1, 2, 3, 1):  # batch 3 runs on the dynamic graph
        crops = rng.integers(0, 256, (b, 128, 128, 3), dtype=np.uint8)
        outs[b] = (crops, s.run(None, {"image": crops}))
    assert len(s._static) == 2
    dyn = s.compiled.create_infer_request()
    for crops, got in outs.values():
        ref = dyn.infer({"image": crops})
        np.testing.assert_allclose(got[0], ref[s.compiled.outputs[0]], atol=2e-3)
