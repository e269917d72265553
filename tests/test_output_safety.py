"""`faceland predict` never destroys a user's files and never writes outside --out (issue 26):
outputs that would replace inputs are refused, links are never followed, temporary names are
unique, resume matches inputs exactly, write failures are one line and the batch goes on."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faceland.cli import main
from faceland.cli.predict import _images, _planned_outputs, _unique_stems
from faceland.outputs import (
    UnsafeOutputError,
    append_file,
    atomic_write_text,
    check_not_inputs,
    same_source,
    source_record,
)

pytestmark = pytest.mark.core  # runs on the core install too (no torch)

ASTRO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"


def _small_face(path: Path) -> Path:
    """The astronaut photo at 256 px (fast to run), written in ``path``'s format."""
    img = cv2.resize(cv2.imread(str(ASTRO)), (256, 256))
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def _video(path: Path, frames: int = 4) -> Path:
    img = cv2.resize(cv2.imread(str(ASTRO)), (256, 256))
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    for k in range(frames):
        vw.write(np.roll(img, k, axis=1))
    vw.release()
    return path


# 1. outputs never replace inputs -------------------------------------------------------------


def test_out_dot_beside_the_input_photo_is_refused_and_the_photo_kept(tmp_path, capsys,
                                                                       monkeypatch) -> None:
    photos = tmp_path / "photos"
    photo = _small_face(photos / "photo.png")
    before = photo.read_bytes()
    monkeypatch.chdir(photos)
    assert main(["predict", "photo.png", "--out", "."]) == 2
    err = capsys.readouterr().err
    assert "would overwrite the input" in err and "photo.png" in err and "Traceback" not in err
    assert photo.read_bytes() == before
    assert sorted(p.name for p in photos.iterdir()) == ["photo.png"]
    # --no-overlay writes only photo.json: allowed, and the photo is untouched
    assert main(["predict", "photo.png", "--out", ".", "--no-overlay"]) == 0
    assert photo.read_bytes() == before and (photos / "photo.json").is_file()


def test_a_video_is_never_overwritten_by_its_overlay(tmp_path, capsys, monkeypatch) -> None:
    clip = _video(tmp_path / "clip.mp4")
    before = clip.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "clip.mp4", "--out", "."]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert clip.read_bytes() == before


def test_out_equal_to_the_input_folder_is_refused(tmp_path, capsys) -> None:
    d = tmp_path / "in"
    _small_face(d / "a.jpg")
    assert main(["predict", str(d), "--out", str(d)]) == 2
    assert "is the input folder" in capsys.readouterr().err
    assert sorted(p.name for p in d.iterdir()) == ["a.jpg"]


def test_out_inside_the_input_folder_is_left_out_of_the_walk(tmp_path, capsys) -> None:
    d = tmp_path / "in"
    _small_face(d / "a.jpg")
    out = d / "out"
    for _ in range(2):  # the second run must not read its own overlays
        assert main(["predict", str(d), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["a.json", "a.png"]


def test_an_output_folder_that_is_a_link_is_refused(tmp_path, capsys) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert main(["predict", str(_small_face(tmp_path / "a.jpg")), "--out",
                 str(tmp_path / "link")]) == 2
    assert "symbolic link" in capsys.readouterr().err


# 2. links and temporary names ----------------------------------------------------------------


def test_planted_links_are_never_followed(tmp_path, capsys) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    src = _small_face(tmp_path / "in" / "x.jpg")
    clip = _video(tmp_path / "in" / "v.avi")
    out = tmp_path / "out"
    out.mkdir()
    # the temporary names of the old code, and the final names
    for name in (".x.json.part.json", ".x.png.part.png", "x.json", "v.jsonl"):
        (out / name).symlink_to(victim)
    assert main(["predict", str(src), str(clip), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "symbolic link" in err and "Traceback" not in err
    assert victim.read_text() == "precious"
    assert (out / "x.json").is_symlink()  # refused, left as it was
    assert (out / "x.png").is_file() and not (out / "x.png").is_symlink()
    leftovers = [p.name for p in out.iterdir() if ".part" in p.name and not p.is_symlink()]
    assert leftovers == []


def test_a_device_node_is_never_replaced(tmp_path) -> None:
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    with pytest.raises(UnsafeOutputError, match="not a regular file"):
        atomic_write_text("/dev/null", "x")
    assert Path("/dev/null").is_char_device()


def test_concurrent_writers_to_one_name_never_clash(tmp_path) -> None:
    target = tmp_path / "x.json"
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(50):
                atomic_write_text(target, json.dumps({"writer": k, "i": i}))
        except BaseException as e:  # noqa: BLE001 - collected for the assert
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads(target.read_text())["i"] == 49
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.slow
def test_two_predict_runs_into_one_out_both_succeed(tmp_path) -> None:
    d = tmp_path / "in"
    for k in range(3):
        _small_face(d / f"{k}.jpg")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "faceland.cli", "predict", str(d), "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{k}.{e}" for k in range(3) for e in ("json", "png"))


# 3-4. resume is exact ------------------------------------------------------------------------


def test_resume_never_takes_a_new_input_for_one_with_the_same_stem(tmp_path, capsys) -> None:
    d = tmp_path / "in"
    _small_face(d / "a.jpg")
    out = tmp_path / "out"
    assert main(["predict", str(d), "--out", str(out), "--no-overlay", "--quiet"]) == 0
    shutil.copy(d / "a.jpg", d / "a.bmp")  # same stem, new input
    capsys.readouterr()
    assert main(["predict", str(d), "--out", str(out), "--no-overlay", "--resume"]) == 0
    sources = sorted(json.loads(p.read_text())["source"]["path"] for p in out.glob("*.json"))
    assert sources == sorted(str((d / n).resolve()) for n in ("a.bmp", "a.jpg"))


def test_resume_redoes_an_input_that_changed(tmp_path, capsys) -> None:
    d = tmp_path / "in"
    a = _small_face(d / "a.jpg")
    out = tmp_path / "out"
    assert main(["predict", str(d), "--out", str(out), "--no-overlay", "--quiet"]) == 0
    cv2.imwrite(str(a), cv2.flip(cv2.imread(str(a)), 1))
    os.utime(a, ns=(1, 1))
    capsys.readouterr()
    assert main(["predict", str(d), "--out", str(out), "--no-overlay", "--resume"]) == 0
    assert "already done" not in capsys.readouterr().err
    assert json.loads((out / "a.json").read_text())["source"]["mtime_ns"] == 1


def test_jsonl_resume_matches_resolved_paths(tmp_path, capsys, monkeypatch) -> None:
    d = tmp_path / "in"
    for k in range(3):
        _small_face(d / f"{k}.jpg")
    jsonl = tmp_path / "all.jsonl"
    monkeypatch.chdir(tmp_path)
    args = ["--out", str(tmp_path / "out"), "--no-overlay", "--jsonl", str(jsonl), "--quiet"]
    assert main(["predict", "in", *args]) == 0
    assert main(["predict", str(d.resolve()), *args, "--resume"]) == 0  # absolute spelling
    assert main(["predict", "./in/../in", *args, "--resume"]) == 0
    lines = jsonl.read_text().splitlines()
    assert len(lines) == 3
    assert "3 of 3 image(s) already done" in capsys.readouterr().err


# write failures are one line and the batch goes on --------------------------------------------


def test_jsonl_that_is_a_directory_is_refused_before_the_model_loads(tmp_path, capsys) -> None:
    (tmp_path / "j").mkdir()
    assert main(["predict", str(ASTRO), "--out", str(tmp_path / "o"), "--jsonl",
                 str(tmp_path / "j")]) == 2
    err = capsys.readouterr().err
    assert "--jsonl" in err and "is a directory" in err and "Traceback" not in err


def test_full_disk_during_jsonl_is_one_line_per_image(tmp_path, capsys, monkeypatch) -> None:
    d = tmp_path / "in"
    for k in range(2):
        _small_face(d / f"{k}.jpg")

    class Full:
        def write(self, s):
            raise OSError(errno.ENOSPC, "No space left on device")

        flush = close = lambda self: None

    monkeypatch.setattr("faceland.outputs.append_file", lambda path, keep=None: Full())
    rc = main(["predict", str(d), "--out", str(tmp_path / "o"), "--no-overlay", "--jsonl",
               str(tmp_path / "all.jsonl")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert err.count("No space left on device") == 2 and "all.jsonl" in err


def test_full_disk_during_a_video_goes_on_with_the_next_input(tmp_path, capsys,
                                                              monkeypatch) -> None:
    from faceland.cli import predict as pred

    clip = _video(tmp_path / "in" / "v.avi")
    photo = _small_face(tmp_path / "in" / "p.jpg")

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(pred._VideoOutput, "write", full)
    rc = main(["predict", str(clip), str(photo), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "No space left on device" in err and "Traceback" not in err
    assert (tmp_path / "o" / "p.json").is_file()
    assert not any(".part" in p.name for p in (tmp_path / "o").iterdir())


def test_skipped_files_in_a_folder_are_reported_and_counted(tmp_path, capsys) -> None:
    d = tmp_path / "in"
    _small_face(d / "a.jpg")
    _small_face(d / "b.jpe")  # a JPEG suffix OpenCV reads: taken like a.jpg
    (d / "notes.txt").write_text("x")
    (d / "a.pts").write_text("x")
    items = _images([str(d)])
    assert sorted(p.name for p, _ in items) == ["a.jpg", "b.jpe"]
    err = capsys.readouterr().err
    assert "skipped 2 file(s)" in err and "notes.txt" in err


# property-based path handling ------------------------------------------------------------------

_SUFFIXES = [".jpg", ".JPG", ".png", ".bmp", ".jpeg", ".webp", ".mp4", ".txt"]
_names = st.lists(
    st.tuples(st.sampled_from(["", "sub", "sub/deeper", "out", "o2"]),
              st.sampled_from(["a", "a_2", "a.png", "b", "photo.v2", "A"]),
              st.sampled_from(_SUFFIXES)),
    min_size=1, max_size=12, unique=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=_names, out_rel=st.sampled_from(["out", "in/out", "in/sub/out", "in/o2"]),
       spell=st.sampled_from(["relative", "absolute", "dotted"]),
       overlay=st.booleans(), link=st.booleans())
def test_planned_outputs_never_touch_inputs_and_stay_in_out(tmp_path_factory, names, out_rel,
                                                            spell, overlay, link) -> None:
    root = tmp_path_factory.mktemp("p")
    d = root / "in"
    for sub, stem, suf in names:
        f = d / sub / f"{stem}{suf}"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    if link:  # an input reached through a symlinked folder
        (root / "linked").symlink_to(d, target_is_directory=True)
    out = root / out_rel
    spelled = {"relative": os.path.relpath(root / ("linked" if link else "in")),
               "absolute": str(root / ("linked" if link else "in")),
               "dotted": str(root / ("linked" if link else "in") / "sub" / "..")}[spell]
    items = _images([spelled], out)
    stems = _unique_stems(items)
    assert len(set(map(str, stems))) == len(stems)  # no two inputs share an output
    targets = dict(zip((p for p, _ in items), (out / s for s in stems), strict=True))
    for p in targets:  # nothing under --out is ever an input
        assert out.resolve() not in p.resolve().parents
    args = type("A", (), {"jsonl": None, "no_overlay": not overlay})()
    outs = _planned_outputs(targets, args)
    assert len({o.resolve() for o in outs}) == len(outs)
    for o in outs:
        assert out.resolve() in o.resolve().parents
    check_not_inputs(outs, targets)  # never raises for a --out outside the walked inputs


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stem=st.sampled_from(["a", "photo", "x.v2"]), suffix=st.sampled_from([".png", ".mp4"]))
def test_an_output_on_an_input_is_always_refused(tmp_path_factory, stem, suffix) -> None:
    root = tmp_path_factory.mktemp("q")
    f = root / f"{stem}{suffix}"
    f.write_bytes(b"x")
    hard = root / "hard.png"
    os.link(f, hard)
    for spelled in (f, Path(os.path.relpath(f)), root / "." / f.name):
        with pytest.raises(UnsafeOutputError, match="would overwrite the input"):
            check_not_inputs([root / f.name], [spelled])
    with pytest.raises(UnsafeOutputError):  # a hard link to an input is the input
        check_not_inputs([hard], [f])


def test_source_record_round_trip(tmp_path) -> None:
    f = tmp_path / "a.jpg"
    f.write_bytes(b"abc")
    rec = json.loads(json.dumps(source_record(f)))
    assert same_source(rec, f) and same_source(rec, tmp_path / "." / "a.jpg")
    assert not same_source(rec, tmp_path / "b.jpg") and not same_source(None, f)
    f.write_bytes(b"abcd")
    assert not same_source(rec, f)


def test_append_file_refuses_a_link(tmp_path) -> None:
    victim = tmp_path / "v"
    victim.write_text("keep")
    (tmp_path / "l.jsonl").symlink_to(victim)
    with pytest.raises(UnsafeOutputError, match="symbolic link"):
        append_file(tmp_path / "l.jsonl")
    assert victim.read_text() == "keep"
