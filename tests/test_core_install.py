"""What the core install (`pip install faceland`, no torch) must run (issue 30): predict on
photos, folders and videos, evaluate of shipped models and stored predictions, `models`, the API
(FaceLandmarker, VideoLandmarker) with every shipped model; training, export and eager PyTorch
give one line naming the `train` extra.

CI runs this file (and every other file marked ``core``) in a second venv with the core install
alone and ``FACELAND_CORE_ONLY=1``, which also asserts that torch is absent; in the full dev
environment the same tests run with torch installed (and check it is never imported)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceland.cli import main

pytestmark = pytest.mark.core

REPO = Path(__file__).resolve().parents[1]
ASTRO = REPO / "assets" / "astronaut.jpg"
DATA = REPO.parent / "shared" / "data"
CORE_ONLY = os.environ.get("FACELAND_CORE_ONLY") == "1"


def _frames(n: int = 6) -> list[np.ndarray]:
    img = cv2.cvtColor(cv2.resize(cv2.imread(str(ASTRO)), (320, 320)), cv2.COLOR_BGR2RGB)
    return [np.ascontiguousarray(np.roll(img, 2 * k, axis=1)) for k in range(n)]


def test_torch_is_absent_in_the_core_install() -> None:
    if not CORE_ONLY:
        pytest.skip("the full environment has torch; CI's core venv sets FACELAND_CORE_ONLY=1")
    for heavy in ("torch", "torchvision", "pytorch_lightning", "timm", "albumentations", "scipy",
                  "matplotlib"):
        assert importlib.util.find_spec(heavy) is None, heavy


def _run(code: str) -> None:
    """Run ``code`` in a fresh interpreter that must never import torch."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    full = code + "\nimport sys; assert 'torch' not in sys.modules, 'torch was imported'\n"
    r = subprocess.run([sys.executable, "-c", full], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]


def test_predict_photo_folder_and_video_without_torch(tmp_path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for k, f in enumerate(_frames(2)):
        cv2.imwrite(str(d / f"{k}.jpg"), f[..., ::-1])
    vw = cv2.VideoWriter(str(d / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 320))
    for f in _frames(6):
        vw.write(np.ascontiguousarray(f[..., ::-1]))
    vw.release()
    out = tmp_path / "out"
    _run(f"from faceland.cli import main\n"
         f"assert main(['predict', {str(ASTRO)!r}, {str(d)!r}, '--out', {str(out)!r}, "
         f"'--quiet']) == 0\n"
         f"assert main(['predict', {str(d / 'clip.avi')!r}, '--out', {str(out / 'sg')!r}, "
         f"'--smoothing', 'savgol', '--no-overlay']) == 0")
    assert len(json.loads((out / "astronaut.json").read_text())["faces"]) == 1
    lines = (out / "clip.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(x)["faces"] for x in lines)
    assert len((out / "sg" / "clip.jsonl").read_text().splitlines()) == 6
    assert (out / "clip.mp4").stat().st_size > 0


def test_every_shipped_model_runs_through_its_shipped_onnx(tmp_path) -> None:
    from faceland.pretrained import PRETRAINED

    for name, m in PRETRAINED.items():
        assert m.onnx and (m.weights.with_suffix(".onnx")).is_file(), name
    _run("import numpy as np, cv2\n"
         "from faceland import FaceLandmarker, read_image\n"
         "from faceland.pretrained import PRETRAINED\n"
         f"img = read_image({str(ASTRO)!r})\n"
         "box = FaceLandmarker().predict(img)[0].box\n"
         "for name, m in PRETRAINED.items():\n"
         "    lm = FaceLandmarker(name)\n"
         "    assert lm.runtime == 'onnx', name\n"
         "    pts = lm.predict(img, boxes=[box])[0].landmarks\n"
         "    assert pts.shape == (lm.num_points, 2) and np.isfinite(pts).all(), name\n"
         "    assert (pts[:, 0] > box[0] - 40).all() and (pts[:, 0] < box[2] + 40).all(), name\n")


def test_video_landmarker_api_without_torch() -> None:
    _run("import numpy as np, cv2\n"
         "from faceland.tracking import VideoLandmarker\n"
         f"img = cv2.cvtColor(cv2.resize(cv2.imread({str(ASTRO)!r}), (320, 320)), "
         "cv2.COLOR_BGR2RGB)\n"
         "v = VideoLandmarker()\n"
         "for k in range(5):\n"
         "    faces = v.process(np.ascontiguousarray(np.roll(img, k, axis=1)), 40.0 * k)\n"
         "    assert len(faces) == 1 and faces[0].landmarks.shape == (68, 2)\n")


def test_top_level_exports_load_lazily_without_torch() -> None:
    """``import faceland`` loads none of its modules; the landmarkers and their options
    dataclasses come from ``faceland`` itself, torch-free."""
    _run("import sys, faceland\n"
         "assert 'faceland.inference' not in sys.modules, 'faceland.inference loaded on import'\n"
         "assert {'FaceLandmarker', 'FaceLandmarkerOptions', 'VideoLandmarker',\n"
         "        'VideoLandmarkerOptions'} <= set(faceland.__all__)\n"
         "from faceland import (FaceLandmarker, FaceLandmarkerOptions, VideoLandmarker,\n"
         "                      VideoLandmarkerOptions)\n"
         "from faceland.tracking import VideoLandmarker as V, VideoLandmarkerOptions as VO\n"
         "from faceland.inference import FaceLandmarkerOptions as FO\n"
         "assert VideoLandmarker is V and VideoLandmarkerOptions is VO\n"
         "assert FaceLandmarkerOptions is FO\n"
         "v = VideoLandmarker(FaceLandmarker(options=FaceLandmarkerOptions(runtime='onnx')),\n"
         "                    options=VideoLandmarkerOptions(detect_every=5))\n"
         "assert v.detect_every == 5 and v.landmarker.runtime == 'onnx'\n")


def test_models_command_without_torch(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "faceland-300w-mtfl-mnv2dw-128 (default)" in out and "retinaface" in out


@pytest.mark.skipif(not (DATA / "300w" / "helen" / "testset").is_dir(),
                    reason="real data not available")
def test_evaluate_shipped_model_and_stored_predictions_without_torch(tmp_path) -> None:
    d = tmp_path / "pts"
    d.mkdir()
    for img in sorted((DATA / "300w" / "helen" / "testset").glob("*.jpg"))[:4]:
        for f in (img, img.with_suffix(".pts")):
            os.symlink(f, d / f.name)
    res = tmp_path / "r.json"
    _run("from faceland.cli import main\n"
         f"assert main(['evaluate', '--dataset', 'pts', '--root', {str(d)!r}, '--json', "
         f"{str(res)!r}]) == 0\n")
    doc = json.loads(res.read_text())
    assert doc["n_images"] == 4 and 0 < doc["nme_iod"] < 8  # percent
    # the same images scored from stored predictions
    from faceland.data.formats import read_pts

    preds = {p.name: (read_pts(p) + 0.5).tolist() for p in sorted(d.glob("*.pts"))}
    pf = tmp_path / "p.json"
    pf.write_text(json.dumps({"system": "gt+0.5", "scheme": "68", "box_source": "gt",
                              "landmarks": {k.replace(".pts", ".jpg"): v
                                            for k, v in preds.items()}}))
    res2 = tmp_path / "r2.json"
    _run("from faceland.cli import main\n"
         f"assert main(['evaluate', '--dataset', 'pts', '--root', {str(d)!r}, '--predictions', "
         f"{str(pf)!r}, '--json', {str(res2)!r}]) == 0\n")
    assert json.loads(res2.read_text())["n_images"] == 4


def test_training_export_and_torch_runtime_name_the_extra(tmp_path, capsys) -> None:
    if not CORE_ONLY:
        pytest.skip("needs the core install alone (CI's second venv)")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: integral\n")
    for argv in (["train", str(cfg)], ["export", "--out", str(tmp_path / "m.onnx")],
                 ["predict", str(ASTRO), "--out", str(tmp_path / "o"), "--runtime", "torch"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "faceland[train]" in err and "Traceback" not in err, err


def test_a_photo_given_as_model_says_what_a_model_is(tmp_path, capsys) -> None:
    for argv in (["predict", str(ASTRO), "--out", str(tmp_path / "o"), "--model", str(ASTRO)],
                 ["evaluate", "--root", str(tmp_path), "--model", str(ASTRO)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "astronaut.jpg: not model weights" in err and "\n" not in err, err
