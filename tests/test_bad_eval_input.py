"""Bad input to `faceland evaluate` and its API: one line naming the file or value and the problem,
never a traceback, never a silent skip.

* output paths (``--json`` / ``--ced``) are checked before anything is evaluated, and written
  atomically (a temporary file made exclusively in the same folder, then renamed; a symbolic
  link is refused);
* a stored-predictions file is checked entry by entry;
* an annotation whose image is missing is left out loudly and counted in ``n_skipped``.

Most tests build a small data set by hand (images of noise, ``.pts`` files of random points in
image pixels, 0-based pixel centres), so they run without the shared real data.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceland.cli import main
from faceland.data.formats import write_pts


def _faces(folder: Path, n: int = 4, seed: int = 0) -> Path:
    """``n`` 128 x 128 noise images ``face_<i>.png``, each with a ``.pts`` of 68 random points
    in the middle of the image (image pixels, 0-based pixel centres)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"face_{i}.png"), rng.integers(0, 255, (128, 128, 3), np.uint8))
        write_pts(folder / f"face_{i}.pts", rng.uniform(30, 98, (68, 2)))
    return folder


def _predictions(path: Path, folder: Path, edit=None, scheme: str = "68") -> Path:
    """The ground truth of ``folder`` as a stored-predictions file, after ``edit(doc)``."""
    from faceland.data.datasets import load_pts_folder

    doc = {"system": "oracle", "scheme": scheme, "box_source": "gt",
           "landmarks": {r.key: r.points.tolist() for r in load_pts_folder(folder)}}
    if edit is not None:
        doc = edit(doc) or doc
    path.write_text(json.dumps(doc))
    return path


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faceland: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture()
def faces(tmp_path) -> Path:
    return _faces(tmp_path / "faces")


@pytest.fixture()
def no_evaluation(monkeypatch) -> None:
    """Any evaluation now fails the test: the error must come before it."""
    import faceland.evaluation as ev

    def ran(*_a, **_k):
        raise AssertionError("the evaluation ran before the output paths were checked")

    monkeypatch.setattr(ev, "evaluate_records", ran)
    monkeypatch.setattr(ev, "evaluate_predictions", ran)


# --- 1. output paths: checked first, written atomically ----------------------------------------

def _bad_outputs(tmp: Path) -> dict[str, tuple[list[str], str, str]]:
    """name -> (evaluate options, the path the message names, the problem)."""
    (tmp / "outdir").mkdir()
    (tmp / "regfile").write_text("not a folder")
    (tmp / "target.json").write_text("precious")
    (tmp / "link.json").symlink_to(tmp / "target.json")
    (tmp / "dangling.json").symlink_to(tmp / "nowhere.json")
    return {
        "json is a folder": (["--json", str(tmp / "outdir")], "outdir", "is a directory"),
        "json under a file": (["--json", str(tmp / "regfile" / "r.json")], "regfile",
                              "is a file, not a folder"),
        "json deep under a file": (["--json", str(tmp / "regfile" / "a" / "b" / "r.json")],
                                   "regfile", "is a file, not a folder"),
        "json is a symlink": (["--json", str(tmp / "link.json")], "link.json", "symbolic link"),
        "json is a dangling symlink": (["--json", str(tmp / "dangling.json")], "dangling.json",
                                       "symbolic link"),
        "ced is a folder": (["--json", str(tmp / "r.json"), "--ced", str(tmp / "outdir")],
                            "outdir", "is a directory"),
        "only ced, a folder": (["--ced", str(tmp / "outdir")], "--ced", "is a directory"),
        "ced under a file": (["--json", str(tmp / "r.json"), "--ced",
                              str(tmp / "regfile" / "c.png")], "regfile", "is a file"),
        "ced without an image suffix": (["--json", str(tmp / "r.json"), "--ced",
                                         str(tmp / "plot.txt")], "plot.txt", "image format"),
        "json and ced are one file": (["--json", str(tmp / "r.png")], "r.png", "same file"),
    }


BAD_OUTPUTS = ["json is a folder", "json under a file", "json deep under a file",
               "json is a symlink", "json is a dangling symlink", "ced is a folder",
               "ced under a file", "ced without an image suffix", "json and ced are one file",
               "only ced, a folder"]


@pytest.mark.parametrize("case", BAD_OUTPUTS)
def test_bad_output_path_is_one_line_before_evaluating(case, faces, tmp_path, capsys,
                                                       no_evaluation) -> None:
    """Before: the whole evaluation ran, then a traceback (IsADirectoryError, FileExistsError,
    NotADirectoryError) lost the result. Now: exit 2 at once, one line naming the path."""
    (tmp_path / "out").mkdir()
    args, named, problem = _bad_outputs(tmp_path / "out")[case]
    rc = main(["evaluate", "--dataset", "pts", "--root", str(faces), *args])
    line = _one_line_error(capsys.readouterr().err)
    assert rc == 2 and named in line and problem in line, line
    assert (tmp_path / "out" / "target.json").read_text() == "precious"  # never written through
    assert not (tmp_path / "out" / "nowhere.json").exists()


def test_bad_output_path_with_stored_predictions(faces, tmp_path, capsys, no_evaluation) -> None:
    preds = _predictions(tmp_path / "p.json", faces)
    (tmp_path / "outdir").mkdir()
    rc = main(["evaluate", "--dataset", "pts", "--root", str(faces), "--predictions",
               str(preds), "--json", str(tmp_path / "outdir")])
    line = _one_line_error(capsys.readouterr().err)
    assert rc == 2 and "outdir" in line and "is a directory" in line


def test_default_output_folder_that_is_a_file(faces, tmp_path, capsys, monkeypatch,
                                              no_evaluation) -> None:
    """No --json: the default results/<name>.json is checked before the run too."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("a file where the results folder goes")
    rc = main(["evaluate", "--dataset", "pts", "--root", str(faces)])
    line = _one_line_error(capsys.readouterr().err)
    assert rc == 2 and "results" in line and "is a file, not a folder" in line, line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="permissions do not bind root")
def test_unwritable_output_folder(faces, tmp_path, capsys, no_evaluation) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc = main(["evaluate", "--dataset", "pts", "--root", str(faces), "--json",
                   str(ro / "r.json")])
    finally:
        ro.chmod(0o755)
    line = _one_line_error(capsys.readouterr().err)
    assert rc == 2 and "ro" in line and "cannot be written" in line, line


def test_result_files_are_written_atomically(faces, tmp_path, monkeypatch) -> None:
    """JSON and CED go through faceland.outputs: a temporary file created exclusively in the
    final folder (mkstemp), renamed over the old file; nothing else is left there; the usual
    permissions."""
    import tempfile

    made = []
    real = tempfile.mkstemp

    def spy(*a, **k):
        fd, name = real(*a, **k)
        made.append(Path(name))
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.json").write_text("old result")
    preds = _predictions(tmp_path / "p.json", faces)
    assert main(["evaluate", "--dataset", "pts", "--root", str(faces), "--predictions",
                 str(preds), "--json", str(out / "r.json")]) == 0
    assert json.loads((out / "r.json").read_text())["n_images"] == 4
    assert (out / "r.png").read_bytes()[:4] == b"\x89PNG"
    parts = [p for p in made if ".part" in p.name]
    assert {p.parent for p in parts} == {out}  # the temporary files lived beside the results
    assert sorted(p.suffix for p in parts) == [".json", ".png"]
    assert sorted(p.name for p in out.iterdir()) == ["r.json", "r.png"]  # no leftovers
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_result_write_refuses_a_symlink(faces, tmp_path) -> None:
    """The API too: EvalResult.write never writes through a link at the final name."""
    from faceland.data.datasets import load_pts_folder
    from faceland.evaluation import evaluate_predictions
    from faceland.outputs import UnsafeOutputError
    from faceland.schemes import get_scheme

    res = evaluate_predictions(_predictions(tmp_path / "p.json", faces), load_pts_folder(faces),
                               get_scheme("68"))
    target = tmp_path / "target.json"
    target.write_text("precious")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(UnsafeOutputError, match="symbolic link"):
        res.write(link)
    assert target.read_text() == "precious" and link.is_symlink()


def test_without_matplotlib_the_json_is_written_and_the_plot_named(faces, tmp_path, capsys,
                                                                   monkeypatch) -> None:
    """The core install has no matplotlib: the result JSON is written and a note says why there
    is no plot; asking for --ced then is one line naming the extra, before evaluating."""
    import faceland.evaluation as ev

    monkeypatch.setattr(ev, "have_plotting", lambda: False)
    preds = _predictions(tmp_path / "p.json", faces)
    base = ["evaluate", "--dataset", "pts", "--root", str(faces), "--predictions", str(preds),
            "--json", str(tmp_path / "r.json")]
    assert main(base) == 0
    cap = capsys.readouterr()
    assert "note: no CED plot beside" in cap.err and "faceland[plot]" in cap.err
    assert (tmp_path / "r.json").exists() and not (tmp_path / "r.png").exists()
    assert f"wrote {tmp_path / 'r.json'}\n" in cap.out
    assert main([*base, "--ced", str(tmp_path / "c.png")]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "--ced" in line and "c.png" in line and "faceland[plot]" in line


def test_a_write_that_fails_after_the_run_keeps_the_numbers(faces, tmp_path, capsys,
                                                            monkeypatch) -> None:
    """A disk that fills during the run: one line naming the file, with the result's summary."""
    from faceland.results import EvalResult

    def full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(EvalResult, "write", full)
    preds = _predictions(tmp_path / "p.json", faces)
    rc = main(["evaluate", "--dataset", "pts", "--root", str(faces), "--predictions", str(preds),
               "--json", str(tmp_path / "r.json")])
    line = _one_line_error(capsys.readouterr().err)
    assert rc == 2 and "r.json" in line and "No space left on device" in line
    assert "NME (IOD) 0.000 %" in line  # the numbers are not lost


# --- 2. stored predictions: every entry checked ----------------------------------------------

KEY = "face_1.png"


def _set(key: str, value):
    def edit(doc):
        doc["landmarks"][key] = value
    return edit


def _set_point(i: int, value):
    def edit(doc):
        doc["landmarks"][KEY][i] = value
    return edit


BAD_PREDICTIONS = {
    "entry without landmarks": (lambda d: d["landmarks"].pop(KEY) and None,
                                "no prediction for 1 of 4 faces (first: face_1.png)"),
    "too few points": (lambda d: d["landmarks"][KEY].pop() and None,
                       "entry 'face_1.png': 67 points, scheme 68 has 68"),
    "no points": (_set(KEY, []), "entry 'face_1.png': 0 points"),
    "non-numeric coordinate": (_set_point(3, ["a", 2.0]),
                               "entry 'face_1.png': point 3 is [\"a\", 2.0], not an [x, y] pair"),
    "numeric string": (_set_point(3, ["1.5", 2.0]), "entry 'face_1.png': point 3"),
    "null point": (_set_point(7, None), "entry 'face_1.png': point 7 is null"),
    "three coordinates": (_set_point(0, [1.0, 2.0, 3.0]), "entry 'face_1.png': point 0"),
    "NaN coordinate": (_set_point(5, [float("nan"), 1.0]),
                       "entry 'face_1.png': point 5 [nan, 1.0] is not a finite coordinate"),
    "infinite coordinate": (_set_point(5, [1.0, float("inf")]),
                            "entry 'face_1.png': point 5 [1.0, inf] is not a finite"),
    "absurd coordinate": (_set_point(5, [1e300, 1.0]), "entry 'face_1.png': point 5"),
    "entry is an object": (_set(KEY, {"landmarks": []}),
                           "entry 'face_1.png': landmarks must be a list of [x, y] pairs or "
                           "null, not a dict"),
    "entry is a number": (_set(KEY, 5), "entry 'face_1.png'"),
    "landmarks is a list": (lambda d: d.update(landmarks=list(d["landmarks"].values())),
                            "'landmarks' must be an object"),
    "file is a list": (lambda d: [d], "a predictions file is a JSON object"),
    "unknown box source": (lambda d: d.update(box_source="magic"),
                           "'box_source' must be 'gt' or 'detector'"),
    "unknown scheme": (lambda d: d.update(scheme="999"), "unknown landmark scheme '999'"),
    "scheme is a list": (lambda d: d.update(scheme=[68]), "'scheme' must be a scheme name"),
}


@pytest.mark.parametrize("case", list(BAD_PREDICTIONS))
def test_bad_predictions_entry_names_file_and_entry(case, faces, tmp_path, capsys) -> None:
    """Before: tracebacks-free but nameless messages ("could not convert string to float"),
    or worse, NaN scored silently as a missed face. Now: one line, file and entry named."""
    edit, expected = BAD_PREDICTIONS[case]
    preds = _predictions(tmp_path / "bad_preds.json", faces, edit)
    rc = main(["evaluate", "--dataset", "pts", "--root", str(faces), "--predictions",
               str(preds), "--json", str(tmp_path / "r.json")])
    line = _one_line_error(capsys.readouterr().err)
    assert rc == 2 and "bad_preds.json" in line and expected in line, line
    assert not (tmp_path / "r.json").exists()


def test_predictions_for_images_outside_the_data_set_are_named(faces, tmp_path, caplog) -> None:
    """Extra keys (another split, a typo, a face the loader left out) are ignored, not
    silently: one warning with their count and first keys."""
    preds = _predictions(tmp_path / "p.json", faces,
                         lambda d: d["landmarks"].update({"typo/face_9.png": None}))
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", "--dataset", "pts", "--root", str(faces), "--predictions",
                     str(preds), "--json", str(tmp_path / "r.json")]) == 0
    assert "p.json: ignored 1 entry for images not in this data set: 'typo/face_9.png'" \
        in caplog.text
    assert json.loads((tmp_path / "r.json").read_text())["n_images"] == 4


def test_keys_relative_to_another_root_get_a_hint(faces, tmp_path, capsys) -> None:
    preds = _predictions(tmp_path / "p.json", faces, lambda d: d.update(
        landmarks={f"faces/{k}": v for k, v in d["landmarks"].items()}))
    assert main(["evaluate", "--dataset", "pts", "--root", str(faces), "--predictions",
                 str(preds), "--json", str(tmp_path / "r.json")]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "no prediction for 4 of 4" in line and "look like 'faces/face_0.png'" in line


# --- 3. annotations without their image: counted and named, never dropped silently -----------

def test_pts_without_its_image_is_counted_and_named(faces, tmp_path, caplog, capsys) -> None:
    """Before: the .pts was dropped silently and the result said n_skipped 0."""
    (faces / "face_2.png").unlink()
    out = tmp_path / "r.json"
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", "--dataset", "pts", "--root", str(faces), "--json",
                     str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_images"] == 3 and res["n_skipped"] == 1
    assert res["skipped"] == [str(faces / "face_2.pts")]
    assert "left out 1 of 4 annotated faces (a .pts file without its image): face_2.pts" \
        in caplog.text
    assert "left out 1" in capsys.readouterr().out  # the summary line says so too
    # stored predictions of the same folder: the same count
    preds = _predictions(tmp_path / "p.json", faces)
    assert main(["evaluate", "--dataset", "pts", "--root", str(faces), "--predictions",
                 str(preds), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["n_skipped"] == 1


def test_many_pts_without_images_are_summarised(tmp_path, caplog) -> None:
    from faceland.data.datasets import load_pts_folder

    folder = _faces(tmp_path / "f", n=6)
    for i in range(5):
        (folder / f"face_{i}.png").unlink()
    with caplog.at_level(logging.WARNING):
        recs = load_pts_folder(folder, None)
    assert len(recs) == 1 and len(recs.skipped) == 5
    line = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(line) == 1  # one line, the first three names and the count
    assert "left out 5 of 6" in line[0] and "face_0.pts, face_1.pts, face_2.pts, ... (5 in all)" \
        in line[0]


def test_only_pts_without_images_says_so(tmp_path, capsys) -> None:
    folder = _faces(tmp_path / "f", n=2)
    for p in folder.glob("*.png"):
        p.unlink()
    assert main(["evaluate", "--dataset", "pts", "--root", str(folder), "--json",
                 str(tmp_path / "r.json")]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "no annotated image found" in line and "2 annotation(s) without their image" in line


def test_imm_asf_without_its_jpg_is_counted(tmp_path, data_root, caplog) -> None:
    from faceland.data.datasets import load_imm
    from faceland.evaluation import run_evaluation
    from faceland.inference import FaceLandmarker

    d = tmp_path / "imm"
    d.mkdir()
    for asf in sorted((data_root / "imm").glob("*.asf"))[:3]:
        shutil.copy(asf, d)
        shutil.copy(asf.with_suffix(".jpg"), d)
    gone = sorted(d.glob("*.jpg"))[1]
    gone.unlink()
    with caplog.at_level(logging.WARNING):
        recs = load_imm(d)
    assert len(recs) == 2 and recs.skipped[0][0] == str(gone.with_suffix(".asf"))
    assert gone.with_suffix(".asf").name in caplog.text
    res, _, _ = run_evaluation("imm", d, FaceLandmarker("faceland-imm58-cnn-128", detector=None),
                               split="all", json_path=tmp_path / "r.json")
    assert (res.n_images, res.n_skipped) == (2, 1)


def test_ytf_and_coco_missing_images_are_counted(tmp_path, data_root, caplog) -> None:
    from faceland.data.datasets import load_coco, load_ytf

    src = data_root / "ytf68" / "train"
    lines = (src / "keypoints.csv").read_text().splitlines()
    d = tmp_path / "ytf"
    d.mkdir()
    (d / "keypoints.csv").write_text("\n".join(lines[:4]) + "\n")
    names = [row.split(",")[0] for row in lines[1:4]]
    for name in names[:2]:
        shutil.copy(src / name, d)
    with caplog.at_level(logging.WARNING):
        recs = load_ytf(d)
    assert len(recs) == 2 and [f for f, _ in recs.skipped] == [str(d / names[2])]
    assert names[2] in caplog.text
    folder = data_root / "fixtures" / "mmpose-coco" / "cofw"
    c = tmp_path / "cofw"
    shutil.copytree(folder, c)
    ann = next(c.glob("*.json"))
    first = sorted(p for p in c.rglob("*") if p.suffix.lower() in (".jpg", ".png"))[0]
    first.unlink()
    recs = load_coco(ann, c)
    assert [f for f, _ in recs.skipped] == [str(first)]


def test_annotation_that_cannot_be_cropped_names_its_image(faces, tmp_path, capsys) -> None:
    """An annotation in another frame (points a million pixels away from a 128 px image): the
    crop bound of FaceLandmarker is reported with the image's name."""
    from faceland.data.formats import read_pts

    pts = faces / "face_2.pts"
    write_pts(pts, read_pts(pts) + 1e6)
    rc = main(["evaluate", "--dataset", "pts", "--root", str(faces), "--json",
               str(tmp_path / "r.json")])
    line = _one_line_error(capsys.readouterr().err)
    assert rc == 2 and "face_2.png: cannot crop the annotated face (box [" in line, line
    assert "too far outside the 128 x 128 image" in line
