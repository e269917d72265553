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
