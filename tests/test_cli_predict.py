"""`faceland predict` never overwrites or loses results: mirrored output paths, --out checked
before the model loads, per-file write failures, truncated videos."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np

from faceland.cli import main

ASTRO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"


def test_outputs_mirror_inputs_and_never_collide(tmp_path, capsys) -> None:
    d = tmp_path / "mixed"
    (d / "sub").mkdir(parents=True)
    for rel in ("a_2.jpg", "a.jpg", "sub/a.png", "a.png", "photo.v2.jpg"):
        img = cv2.imread(str(ASTRO))
        cv2.imwrite(str(d / rel), img)
    out = tmp_path / "out"
    assert main(["predict", str(d), "--out", str(out), "--no-overlay"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert written == ["a.json", "a.png.json", "a_2.json", "photo.v2.json", "sub/a.json"]
    images = {json.loads(p.read_text())["image"] for p in out.rglob("*.json")}
    assert len(images) == 5  # one result per input, none overwritten


def test_out_is_checked_before_the_model_loads(tmp_path, capsys) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["predict", str(ASTRO), "--out", str(f)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert main(["predict", str(ASTRO), "--out", str(f / "sub")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_a_write_failure_is_reported_and_the_batch_continues(tmp_path, capsys) -> None:
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(ASTRO, d / "one.jpg")
    shutil.copy(ASTRO, d / "two.jpg")
    out = tmp_path / "out"
    (out / "one.json").mkdir(parents=True)  # a directory in the way of an output file
    assert main(["predict", str(d), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "one.json" in err and "cannot write" in err and "Traceback" not in err
    assert json.loads((out / "two.json").read_text())["faces"]


def test_truncated_video_says_where_it_stopped(tmp_path, capsys) -> None:
    img = cv2.resize(cv2.imread(str(ASTRO)), (256, 256))
    path = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    for k in range(20):
        vw.write(np.roll(img, k, axis=1))
    vw.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    rc = main(["predict", str(path), "--out", str(out), "--no-overlay"])
    err = capsys.readouterr().err
    assert rc == 1 and "of the 20 frames" in err and "truncated" in err, err
    lines = [json.loads(x) for x in (out / "clip.jsonl").read_text().splitlines()]
    m = re.search(r"after (\d+) of the 20 frames", err)
    assert m and 0 < int(m.group(1)) < 20 and len(lines) == int(m.group(1))
    assert [x["frame"] for x in lines] == list(range(len(lines)))
