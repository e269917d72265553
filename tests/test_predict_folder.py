"""Large folders: batched landmarks across images, --resume, --jsonl, atomic outputs, no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from faceland.cli import main
from faceland.data.formats import read_image
from faceland.inference import FaceLandmarker

ASTRO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"


def _folder(tmp_path: Path, n: int = 5) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    img = read_image(ASTRO)
    import cv2

    for k in range(n):  # different images: shifted and mirrored copies
        im = np.roll(img, 7 * k, axis=1)
        if k % 2:
            im = np.ascontiguousarray(im[:, ::-1])
        cv2.imwrite(str(d / f"p{k}.jpg"), im[..., ::-1])
    return d


def test_predict_batch_equals_predict_per_image(tmp_path) -> None:
    lm = FaceLandmarker()
    imgs = [read_image(p) for p in sorted(_folder(tmp_path).glob("*.jpg"))]
    imgs.append(np.zeros((64, 64, 3), np.uint8))  # no face
    batched = lm.predict_batch(imgs, max_batch=3)
    assert [len(f) for f in batched] == [1, 1, 1, 1, 1, 0]
    for im, faces in zip(imgs, batched, strict=True):
        for a, b in zip(lm.predict(im), faces, strict=True):
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)
            np.testing.assert_allclose(a.point_scores, b.point_scores, atol=1e-4)


def test_resume_skips_complete_outputs_and_redoes_broken_ones(tmp_path, capsys) -> None:
    d = _folder(tmp_path)
    out = tmp_path / "out"
    assert main(["predict", str(d), "--out", str(out), "--no-overlay", "--quiet"]) == 0
    first = json.loads((out / "p1.json").read_text())
    (out / "p2.json").write_text('{"image": "p2.jpg", "fa')  # killed mid-write (old style)
    (out / "p3.json").unlink()
    capsys.readouterr()
    assert main(["predict", str(d), "--out", str(out), "--no-overlay", "--resume"]) == 0
    res = capsys.readouterr()
    assert "3 of 5 image(s) already done" in res.err
    assert sorted(line.split(":")[0].split("/")[-1] for line in res.out.splitlines()) == \
        ["p2.jpg", "p3.jpg"]
    assert json.loads((out / "p2.json").read_text())["faces"]
    assert json.loads((out / "p1.json").read_text()) == first
    assert not list(out.glob(".*part*"))  # atomic writes leave no temporary files


def test_jsonl_output_and_resume_after_a_partial_line(tmp_path, capsys) -> None:
    d = _folder(tmp_path)
    jl = tmp_path / "all.jsonl"
    args = ["predict", str(d), "--out", str(tmp_path / "o"), "--no-overlay", "--quiet",
            "--jsonl", str(jl), "--batch", "2"]
    assert main(args) == 0
    lines = jl.read_text().splitlines()
    assert len(lines) == 5 and all(len(json.loads(x)["faces"]) == 1 for x in lines)
    jl.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])  # killed mid-line
    assert main([*args, "--resume"]) == 0
    again = [json.loads(x)["image"] for x in jl.read_text().splitlines()]
    assert sorted(again) == sorted(json.loads(x)["image"] for x in lines)  # no duplicate
    assert not list((tmp_path / "o").glob("*.json"))


def test_onnx_predict_path_never_imports_torch(tmp_path) -> None:
    shutil.copy(ASTRO, tmp_path / "a.jpg")
    code = ("import sys; from faceland.cli import main; "
            f"rc = main(['predict', {str(tmp_path / 'a.jpg')!r}, '--out', "
            f"{str(tmp_path / 'o')!r}, '--no-overlay']); "
            "assert rc == 0 and 'torch' not in sys.modules, sorted(sys.modules)[:5]")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
