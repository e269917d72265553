"""`faceland evaluate`: JSON keys, protocol card, CED plot, and the model card's numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from faceland.checkpoint import load_model
from faceland.cli import main


@pytest.fixture()
def pts_folder(tmp_path, data_root) -> Path:
    src = sorted((data_root / "300w" / "lfpw" / "testset").glob("*.jpg"))[:6]
    d = tmp_path / "faces"
    d.mkdir()
    for img in src:
        shutil.copy(img, d)
        shutil.copy(img.with_suffix(".pts"), d)
    return d


@pytest.mark.parametrize("boxes", ["gt", "detector"])
def test_evaluate_pts_folder(pts_folder, tmp_path, capsys, boxes) -> None:
    out = tmp_path / "r.json"
    rc = main(["evaluate", "--dataset", "pts", "--root", str(pts_folder), "--boxes", boxes,
               "--json", str(out)])
    assert rc == 0
    line = capsys.readouterr().out
    assert "NME (IOD)" in line and "FR@0.1" in line and "AUC@0.1" in line
    res = json.loads(out.read_text())
    for key in ("nme_iod", "nme_ipd", "fr", "auc", "n_images"):
        assert key in res, key
    assert res["n_images"] == 6
    assert 0 < res["nme_iod"] < 10
    assert res["nme_ipd"] > res["nme_iod"]  # pupils are closer than the outer corners
    assert 0 <= res["auc"] <= 1
    card = res["protocol"]
    assert card["box_source"] == boxes and card["input_size"] > 0 and card["weights_sha256"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def _predictions_file(path: Path, folder: Path, boxes: str = "gt", drop: int = -1,
                      miss: int = -1, scheme: str = "68", shift=(0.0, 0.0)) -> Path:
    from faceland.data.datasets import load_pts_folder

    recs = load_pts_folder(folder)
    table = {r.key: (r.points + shift).tolist() for i, r in enumerate(recs) if i != drop}
    if miss >= 0:
        table[recs[miss].key] = None
    path.write_text(json.dumps({"system": "oracle", "scheme": scheme, "box_source": boxes,
                                "landmarks": table}))
    return path


def test_evaluate_stored_predictions(pts_folder, tmp_path, capsys) -> None:
    """Another system's stored predictions are scored by the same harness: the ground truth
    itself scores 0, a face marked null counts as missed (a failure)."""
    out = tmp_path / "r.json"
    preds = _predictions_file(tmp_path / "p.json", pts_folder, miss=2)
    assert main(["evaluate", "--dataset", "pts", "--root", str(pts_folder), "--predictions",
                 str(preds), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_images"] == 6 and res["n_missed"] == 1
    assert res["nme_iod"] == pytest.approx(0.0, abs=1e-9)
    assert res["fr"] == pytest.approx(100 / 6)
    assert res["auc"] == pytest.approx(5 / 6)
    card = res["protocol"]
    assert card["model"] == "oracle" and card["predictions_file"] == str(preds)


def test_evaluate_normalisations_by_hand(pts_folder, tmp_path) -> None:
    """Every point off by (3, 4) px: a 5 px error, divided by IOD, IPD and sqrt(w h) of the gt
    landmark box, per image, then averaged: computed here by hand from the .pts files."""
    import numpy as np

    from faceland.data.datasets import load_pts_folder

    out = tmp_path / "r.json"
    preds = _predictions_file(tmp_path / "p.json", pts_folder, shift=(3.0, 4.0))
    assert main(["evaluate", "--dataset", "pts", "--root", str(pts_folder), "--predictions",
                 str(preds), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    pts = np.stack([r.points for r in load_pts_folder(pts_folder)])
    iod = np.linalg.norm(pts[:, 36] - pts[:, 45], axis=1)
    ipd = np.linalg.norm(pts[:, 36:42].mean(1) - pts[:, 42:48].mean(1), axis=1)
    wh = np.sqrt(np.ptp(pts[..., 0], axis=1) * np.ptp(pts[..., 1], axis=1))
    assert res["mean_error_px"] == pytest.approx(5.0)
    assert res["nme_iod"] == pytest.approx(np.mean(500 / iod))
    assert res["nme_ipd"] == pytest.approx(np.mean(500 / ipd))
    assert res["nme_box"] == pytest.approx(np.mean(500 / wh))


def test_evaluate_stored_predictions_errors(pts_folder, tmp_path, capsys) -> None:
    base = ["evaluate", "--dataset", "pts", "--root", str(pts_folder), "--json",
            str(tmp_path / "r.json"), "--predictions"]
    incomplete = _predictions_file(tmp_path / "a.json", pts_folder, drop=0)
    assert main([*base, str(incomplete)]) == 2
    assert "no prediction for 1 of 6" in capsys.readouterr().err
    detector = _predictions_file(tmp_path / "b.json", pts_folder, boxes="detector")
    assert main([*base, str(detector)]) == 2
    assert "pass --boxes detector" in capsys.readouterr().err
    unmapped = _predictions_file(tmp_path / "c.json", pts_folder, scheme="29")
    assert main([*base, str(unmapped)]) == 2
    assert "no landmark map" in capsys.readouterr().err
    (tmp_path / "d.json").write_text("{not json")
    assert main([*base, str(tmp_path / "d.json")]) == 2
    err = capsys.readouterr().err
    assert "d.json" in err and "not a JSON" in err and len(err.strip().splitlines()) == 1


def test_evaluate_youtube_faces_frames(tmp_path, data_root) -> None:
    """`--dataset ytf`: a folder with keypoints.csv (here 5 real frames)."""
    from faceland.data.datasets import load_ytf

    src = data_root / "ytf68" / "train"
    lines = (src / "keypoints.csv").read_text().splitlines()
    d = tmp_path / "ytf"
    d.mkdir()
    keep = [lines[0], *lines[1:4], *lines[-2:]]
    (d / "keypoints.csv").write_text("\n".join(keep) + "\n")
    for row in keep[1:]:
        shutil.copy(src / row.split(",")[0], d)
    recs = load_ytf(d)
    assert len(recs) == 5
    for r in recs:  # identity = the file name before its frame number
        assert r.key == f"{r.meta['person']}_{r.key.rsplit('_', 1)[1]}"
        assert not r.meta["person"][-1].isdigit()
    out = tmp_path / "r.json"
    assert main(["evaluate", "--dataset", "ytf", "--root", str(d), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_images"] == 5 and res["protocol"]["split"] == "ytf"
    assert 0 < res["nme_iod"] < 15  # a model trained on 300W, on lower-quality video labels


def test_evaluate_missing_root_is_one_line_error(tmp_path, capsys) -> None:
    rc = main(["evaluate", "--root", str(tmp_path / "none")])
    assert rc == 2
    assert "none: data set folder not found" in capsys.readouterr().err


def test_evaluate_split_without_images_says_counts(tmp_path, capsys) -> None:
    (tmp_path / "afw").mkdir()  # a 300W root without the ibug folder
    rc = main(["evaluate", "--root", str(tmp_path), "--split", "challenge",
               "--json", str(tmp_path / "r.json")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "challenge" in err and "135" in err


@pytest.mark.slow
def test_evaluate_reproduces_model_card(tmp_path, data_root) -> None:
    """`faceland evaluate` on 300W common (gt boxes) gives the default model card's numbers."""
    _, card = load_model()
    expected = card["results"]["300w_common_gt"]
    out = tmp_path / "common.json"
    assert main(["evaluate", "--root", str(data_root / "300w"), "--split", "common",
                 "--boxes", "gt", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_images"] == expected["n_images"] == 554
    for key in ("nme_iod", "nme_ipd", "fr", "auc"):
        assert res[key] == pytest.approx(expected[key], abs=1e-6), key
    assert res["nme_iod"] < 5.0  # issue 2's target for the default model


@pytest.mark.parametrize(("subset", "k", "norm"), [("wflw", 98, "iod"), ("cofw", 29, "iod"),
                                                    ("aflw", 19, "box")])
def test_evaluate_coco_fixtures_with_any_scheme(tmp_path, data_root, subset, k, norm) -> None:
    """The harness runs on other benchmarks' files for a model of their point count."""
    import torch

    from faceland.checkpoint import save_model
    from faceland.models import create_model

    torch.manual_seed(0)
    model = create_model("integral", num_points=k, input_size=64, backbone="mobilenet_v2",
                         width=16)
    weights = save_model(model.eval(), tmp_path / "m", {"scheme": str(k), "enlarge": 1.25})
    folder = data_root / "fixtures" / "mmpose-coco" / subset
    ann = next(folder.glob("*.json"))
    out = tmp_path / "r.json"
    assert main(["evaluate", "--dataset", "coco", "--root", str(folder), "--annotations",
                 str(ann), "--model", str(weights), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    from faceland.data.formats import read_coco_keypoints

    assert res["n_images"] == len(read_coco_keypoints(ann)) >= 2 and res[f"nme_{norm}"] > 0
    assert res["protocol"]["fr_auc_normalisation"] == norm
    assert ("nme_ipd" in res) == (norm == "iod")


def test_evaluate_subset_scheme_model_on_imm(tmp_path, data_root) -> None:
    """A nose-tip (scheme "1") model is scored on the IMM 58-point files: box NME and pixels."""
    import torch

    from faceland.checkpoint import save_model
    from faceland.models import SMOKE_KWARGS, create_model

    torch.manual_seed(0)
    model = create_model("imm_nose_cnn", **SMOKE_KWARGS["imm_nose_cnn"]).eval()
    weights = save_model(model, tmp_path / "nose", {"scheme": "1", "enlarge": 1.25})
    out = tmp_path / "r.json"
    assert main(["evaluate", "--dataset", "imm", "--root", str(data_root / "imm"), "--split",
                 "test", "--model", str(weights), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_images"] == 8 and "nme_iod" not in res
    assert res["protocol"]["fr_auc_normalisation"] == "box"
    # An untrained model is off by tens of pixels; NME box and pixel error agree in scale.
    assert res["mean_error_px"] > 1 and res["nme_box"] > 0.1


def _edit_pts(path: Path, keep: int | None = None, nan_at: int | None = None) -> None:
    from faceland.data.formats import read_pts, write_pts

    pts = read_pts(path)
    if nan_at is not None:
        pts[nan_at] = float("nan")
    write_pts(path, pts[:keep] if keep else pts)


def test_evaluate_names_the_bad_pts_file(pts_folder, tmp_path, capsys) -> None:
    """A 67-point file that does not sort first, and a NaN point: the error names the file."""
    files = sorted(pts_folder.glob("*.pts"))
    _edit_pts(files[3], keep=67)
    rc = main(["evaluate", "--dataset", "pts", "--root", str(pts_folder), "--json",
               str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and files[3].name in err and "67 points" in err, err
    _edit_pts(files[3])  # back to 68 (read and rewritten)
    shutil.copy(sorted(pts_folder.glob("*.jpg"))[0], pts_folder / "zz.jpg")
    shutil.copy(files[0], pts_folder / "zz.pts")
    _edit_pts(files[0], keep=67)  # the odd one now sorts first
    rc = main(["evaluate", "--dataset", "pts", "--root", str(pts_folder)])
    err = capsys.readouterr().err
    assert rc == 2 and files[0].name in err, err


def test_evaluate_names_the_image_with_a_nan_point(pts_folder, tmp_path, capsys) -> None:
    files = sorted(pts_folder.glob("*.pts"))
    _edit_pts(files[4], nan_at=30)
    rc = main(["evaluate", "--dataset", "pts", "--root", str(pts_folder), "--json",
               str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and files[4].with_suffix(".jpg").name in err and "non-finite" in err, err


def test_evaluate_bad_model_cards_and_onnx(pts_folder, tmp_path, capsys, monkeypatch) -> None:
    from faceland.checkpoint import default_model_path

    monkeypatch.setenv("FACELAND_CACHE", str(tmp_path / "cache"))
    src = default_model_path()
    card = json.loads(src.with_suffix(".json").read_text())
    base = ["evaluate", "--dataset", "pts", "--root", str(pts_folder), "--json",
            str(tmp_path / "r.json")]
    for i, edit in enumerate([lambda c: c["config"].pop("name"),
                              lambda c: c["config"].update(colour="blue"),
                              lambda c: c.pop("config")]):
        w = tmp_path / f"m{i}.safetensors"
        shutil.copy(src, w)
        c = json.loads(json.dumps(card))
        c.pop("onnx", None)  # no shipped graph: the card must be read to export one
        edit(c)
        w.with_suffix(".json").write_text(json.dumps(c))
        assert main([*base, "--model", str(w)]) == 2
        err = capsys.readouterr().err
        assert f"m{i}.json" in err and "Traceback" not in err, err
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    assert main([*base, "--model", str(bad)]) == 2
    assert "broken.onnx" in capsys.readouterr().err


def test_evaluate_output_name_cannot_escape_results(pts_folder, tmp_path, monkeypatch) -> None:
    from faceland.checkpoint import default_model_path

    src = default_model_path()
    w = tmp_path / "m.safetensors"
    shutil.copy(src, w)
    card = json.loads(src.with_suffix(".json").read_text())
    card["name"] = "../../escaped"
    w.with_suffix(".json").write_text(json.dumps(card))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["evaluate", "--dataset", "pts", "--root", str(pts_folder), "--model",
                 str(w)]) == 0
    written = list((work / "results").glob("*.json"))
    assert len(written) == 1 and "escaped" in written[0].name  # inside results/, no folders
    assert not list(tmp_path.glob("escaped*"))


def test_run_evaluation_is_what_the_cli_runs(tmp_path, data_root) -> None:
    from faceland.evaluation import result_name, run_evaluation, summary
    from faceland.inference import FaceLandmarker

    lm = FaceLandmarker("faceland-imm58-cnn-128", detector=None)
    res, json_path, ced = run_evaluation("imm", data_root / "imm", lm, split="test",
                                         json_path=tmp_path / "r.json")
    assert json_path.exists() and ced.exists() and ced.suffix == ".png"
    assert res.protocol["dataset"] == "imm" and res.protocol.extra["split"] == "test"
    assert res.protocol.model == "faceland-imm58-cnn-128" and res.protocol.input_size == 128
    assert result_name(res) == res.name and res.name.endswith("-imm-test-gt")
    assert summary(res) == res.summary() and res.summary().startswith("NME (IOD) ")
    # the file on disk is the typed result's JSON
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(res.to_dict()))
    with pytest.raises(ValueError, match="not both or neither"):
        run_evaluation("imm", data_root / "imm")


def test_eval_result_json_round_trip_on_every_recorded_result() -> None:
    """Typed results: every docs/results JSON reads into EvalResult / Protocol and writes back
    to the same object, key order included."""
    from faceland.results import EvalResult, Protocol

    folder = Path(__file__).resolve().parents[1] / "docs" / "results"
    files = [f for f in folder.rglob("*.json") if not f.name.endswith(".predictions.json")]
    assert len(files) >= 20
    for f in files:
        d = json.loads(f.read_text())
        r = EvalResult.from_json(f)
        assert isinstance(r.protocol, Protocol)
        out = json.loads(json.dumps(r.to_dict()).replace("NaN", "null"))
        assert list(out) == list(d) and list(out["protocol"]) == list(d["protocol"]), f
        assert out == d, f


def test_eval_result_rejects_a_file_that_is_not_a_result(tmp_path) -> None:
    from faceland.errors import FormatError
    from faceland.results import EvalResult

    bad = tmp_path / "bad.json"
    bad.write_text('{"nme_iod": 3.0}')
    with pytest.raises(FormatError, match="bad.json: not a faceland evaluation result"):
        EvalResult.from_json(bad)
