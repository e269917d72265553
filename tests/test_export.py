"""ONNX export: eager and ONNX Runtime landmarks agree on real images; every model exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceland.checkpoint import load_model
from faceland.data.crops import image_to_tensor
from faceland.data.datasets import load_300w
from faceland.data.formats import read_image
from faceland.export import GRAPH_VERSION, OnnxLandmarkModel, export_onnx
from faceland.geometry import landmark_box
from faceland.inference import FaceLandmarker
from faceland.models import SMOKE_KWARGS, create_model, list_models


def test_default_model_onnx_parity_on_real_faces(tmp_path, data_root) -> None:
    model, card = load_model()
    path = export_onnx(model, tmp_path / "m.onnx", card)
    assert not model.training  # export must not leave the model in training mode
    eager = FaceLandmarker(model, detector=None)
    onnx = FaceLandmarker(path, detector=None)
    assert onnx.enlarge == eager.enlarge and onnx.input_size == eager.input_size
    recs = load_300w(data_root / "300w", "common")[::60]
    for r in recs:
        img = read_image(r.image)
        box = [landmark_box(r.points)]
        a = eager.landmarks_from_boxes(img, box)
        b = onnx.landmarks_from_boxes(img, box)
        assert np.abs(a - b).max() <= 1e-3, r.image


#: Models that cannot be exported, with the reason (checked: they must keep failing).
NOT_EXPORTABLE = {
    "iact": "torchvision::deform_conv2d has no ONNX symbolic",
}


@pytest.mark.parametrize("name", list_models())
def test_every_model_exports(tmp_path, name) -> None:
    model = create_model(name, **SMOKE_KWARGS[name]).eval()
    if name in NOT_EXPORTABLE:
        with pytest.raises(Exception, match="deform_conv2d"):
            export_onnx(model, tmp_path / f"{name}.onnx")
        return
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    n = model.input_size
    crops = np.random.default_rng(0).integers(0, 256, (3, n, n, 3), dtype=np.uint8)
    ort = OnnxLandmarkModel(path)
    assert ort.input_size == n and ort.num_points == model.num_points
    expected = model.predict(image_to_tensor(crops)).numpy()
    np.testing.assert_allclose(ort.predict_crops(crops), expected, atol=1e-4)
    # The LandmarkModel-style call (float input in [0, 1]) gives the same on uint8-exact input.
    np.testing.assert_allclose(ort.predict(image_to_tensor(crops)).numpy(), expected, atol=1e-4)


def test_cli_export_and_predict_with_onnx(tmp_path) -> None:
    import json
    from pathlib import Path

    from faceland.cli import main

    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "--out", str(onnx_path)]) == 0
    assert onnx_path.exists() and onnx_path.with_suffix(".json").exists()
    astro = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"
    assert main(["predict", str(astro), "--out", str(tmp_path / "a")]) == 0
    assert main(["predict", str(astro), "--out", str(tmp_path / "b"), "--model",
                 str(onnx_path)]) == 0
    a = json.loads((tmp_path / "a" / "astronaut.json").read_text())["faces"][0]["landmarks"]
    b = json.loads((tmp_path / "b" / "astronaut.json").read_text())["faces"][0]["landmarks"]
    assert np.abs(np.array(a) - np.array(b)).max() <= 2e-3  # JSON rounds to 1e-3 px


def test_cli_models_lists_registry_and_default(capsys) -> None:
    from faceland.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert name in out
    assert "(default)" in out


def test_saved_weights_run_through_cached_onnx_keyed_by_hash(tmp_path, monkeypatch) -> None:
    from faceland.checkpoint import save_model, weights_hash

    monkeypatch.setenv("FACELAND_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = create_model("integral", input_size=64, refine="dw").eval()
    w = save_model(model, tmp_path / "m", {"scheme": "68", "enlarge": 1.25})
    lm = FaceLandmarker(w, detector=None)
    assert lm.runtime == "onnx"
    cached = tmp_path / "cache" / "onnx" / f"m-{weights_hash(w)}-v{GRAPH_VERSION}.onnx"
    assert cached.exists()
    stamp = cached.stat().st_mtime_ns
    FaceLandmarker(w, detector=None)
    assert cached.stat().st_mtime_ns == stamp  # exported once, then reused
    img = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    box = [[30.0, 30.0, 90.0, 90.0]]
    eager = FaceLandmarker(w, detector=None, runtime="torch").landmarks_from_boxes(img, box)
    np.testing.assert_allclose(lm.landmarks_from_boxes(img, box), eager, atol=1e-3)
    torch.manual_seed(1)
    save_model(create_model("integral", input_size=64, refine="dw").eval(), tmp_path / "m",
               {"scheme": "68"})
    FaceLandmarker(w, detector=None)  # new weights, new hash, new graph
    assert len(list((tmp_path / "cache" / "onnx").glob("m-*.onnx"))) == 2


def test_runtime_arguments_are_checked(tmp_path) -> None:
    model = create_model("integral", input_size=64)
    with pytest.raises(ValueError, match="runtime"):
        FaceLandmarker(model, detector=None, runtime="onnx")
    with pytest.raises(ValueError, match="runtime"):
        FaceLandmarker(model, detector=None, runtime="tensorrt")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    from faceland.errors import FormatError

    with pytest.raises(FormatError, match="bad.onnx"):
        FaceLandmarker(bad, detector=None)


def test_shipped_default_onnx_matches_eager_on_astronaut() -> None:
    """The default path (ONNX Runtime, uint8 crops in the graph) and eager PyTorch agree."""
    from pathlib import Path

    img = read_image(Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg")
    fast = FaceLandmarker()
    assert fast.runtime == "onnx"
    eager = FaceLandmarker(runtime="torch")
    a, b = fast.predict(img), eager.predict(img)
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a[0].landmarks, b[0].landmarks, atol=1e-3)
    fa = FaceLandmarker(flip_test=True).predict(img)[0].landmarks
    fb = FaceLandmarker(flip_test=True, runtime="torch").predict(img)[0].landmarks
    np.testing.assert_allclose(fa, fb, atol=1e-3)


def test_ort_sessions_flush_denormals(tmp_path) -> None:
    """A graph whose values go denormal runs with them flushed to zero (the public PFLD ONNX:
    80 ms against 2.3 ms per face on Intel); a plain session keeps the denormals. Run in a fresh
    process: the CPU's flush mode is per thread and outlives a session."""
    onnx = pytest.importorskip("onnx")
    import subprocess
    import sys

    from onnx import TensorProto, helper

    n = 1 << 16
    g = helper.make_graph([helper.make_node("Mul", ["x", "k"], ["y"])], "d",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])],
                          [helper.make_tensor("k", TensorProto.FLOAT, [1], [1e-20])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "d.onnx"
    onnx.save(m, str(path))
    def zeros(session: str) -> float:  # share of flushed outputs, in a fresh process
        code = ("import numpy as np, onnxruntime as ort\n"
                "from faceland.export import ort_session\n"
                f"x = np.full({n}, 1e-20, dtype=np.float32)  # times 1e-20: 1e-40, denormal\n"
                f"print((({session}).run(None, {{'x': x}})[0] == 0).mean())\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        return float(out.stdout)

    assert zeros(f"ort.InferenceSession({str(path)!r}, providers=['CPUExecutionProvider'])") == 0
    assert zeros(f"ort_session({str(path)!r})") == 1.0


def _export_error(capsys, argv: list[str]) -> str:
    """``faceland export ...`` must exit 2 with exactly one ``faceland: error:`` line."""
    from faceland.cli import main

    rc = main(["export", *argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("faceland: error:")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_export_out_that_cannot_be_the_graph_fails_before_the_model_loads(tmp_path, capsys,
                                                                          monkeypatch) -> None:
    import faceland.checkpoint

    def no_load(*_a, **_k):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(faceland.checkpoint, "load_model", no_load)
    folder = tmp_path / "folder"
    folder.mkdir()
    line = _export_error(capsys, ["--out", str(folder)])
    assert line == (f"faceland: error: --out {folder}: is a directory; give the .onnx file to "
                    f"write, e.g. --out {folder / 'model.onnx'}")
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    line = _export_error(capsys, ["--out", str(afile / "sub" / "m.onnx")])
    assert line == f"faceland: error: --out {afile / 'sub' / 'm.onnx'}: {afile} is a file, not a folder"
    assert afile.read_text() == "keep me"
    line = _export_error(capsys, ["--out", str(tmp_path / "m.json")])
    assert "must end in .onnx" in line  # its card m.json would overwrite the graph


def test_export_says_an_onnx_model_is_already_a_graph(tmp_path, capsys) -> None:
    onnx = tmp_path / "x.onnx"
    onnx.write_bytes(b"\x08\x07 not weights")
    onnx.with_suffix(".json").write_text('{"config": {"name": "integral"}}')
    line = _export_error(capsys, ["--model", str(onnx), "--out", str(tmp_path / "y.onnx")])
    assert line.startswith(f"faceland: error: --model {onnx}: export takes saved weights "
                           "(.safetensors) or a model name")
    assert "x.onnx is already an ONNX graph" in line and "header" not in line
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"")
    line = _export_error(capsys, ["--model", str(ckpt), "--out", str(tmp_path / "y.onnx")])
    assert "last.ckpt is a training checkpoint" in line


def test_export_corrupt_or_misplaced_weights_are_one_line(tmp_path, capsys) -> None:
    from faceland.checkpoint import save_model

    run = tmp_path / "run"
    w = save_model(create_model("integral", input_size=64, width=8).eval(), run / "model",
                   {"scheme": "68"})
    good = w.read_bytes()
    out = str(tmp_path / "y.onnx")
    for data in (good[: len(good) // 2], b"\x00" * 7, b"", bytes(range(256)) * 4):
        w.write_bytes(data)
        line = _export_error(capsys, ["--model", str(w), "--out", out])
        assert line.startswith(f"faceland: error: {w}: not a readable safetensors file"), line
    line = _export_error(capsys, ["--model", str(run), "--out", out])
    assert line == (f"faceland: error: {run}: is a folder, not a model weights file "
                    f"(.safetensors); did you mean {w}?")


def test_export_of_an_unexportable_architecture_is_one_line(tmp_path, capsys) -> None:
    from faceland.checkpoint import save_model

    w = save_model(create_model("iact", **SMOKE_KWARGS["iact"]).eval(), tmp_path / "iact",
                   {"scheme": "68"})
    line = _export_error(capsys, ["--model", str(w), "--out", str(tmp_path / "i.onnx")])
    assert line.startswith(f"faceland: error: --model {w}: cannot be exported to ONNX (")
    assert "deform_conv2d" in line and not (tmp_path / "i.onnx").exists()


def test_export_onnx_refuses_a_folder_or_a_json_name_before_tracing(tmp_path) -> None:
    model = create_model("integral", input_size=64, width=8).eval()
    with pytest.raises(ValueError, match="is a directory"):
        export_onnx(model, tmp_path)
    with pytest.raises(ValueError, match="name the graph .onnx"):
        export_onnx(model, tmp_path / "m.json", {"scheme": "68"})
    assert list(tmp_path.iterdir()) == []
