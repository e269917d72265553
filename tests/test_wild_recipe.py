"""The recipe for wild faces: MTFL data, 5-point partial supervision, pseudo-labels, the flip
bias, capture degradations, bf16 and initialisation from saved weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceland.data.crops import CropDataset
from faceland.data.datasets import FaceRecord, load_300w, load_mtfl
from faceland.data.formats import FormatError, read_mtfl_csv
from faceland.geometry import landmark_box
from faceland.losses import l1_loss, weighted_l1_loss
from faceland.models import create_model
from faceland.schemes import FIVE_FROM_68, convert_points, five_point_matrix, get_scheme
from faceland.transforms import AugmentConfig, TrainAugment

S68 = get_scheme("68")


def test_five_point_scheme_and_matrix() -> None:
    s5 = get_scheme("5")
    perm = s5.flip_permutation
    assert perm == (1, 0, 2, 4, 3) and tuple(perm[i] for i in perm) == tuple(range(5))
    m = five_point_matrix()
    assert m.shape == (5, 68)
    np.testing.assert_allclose(m.sum(1), 1.0)
    pts = np.random.default_rng(0).uniform(0, 100, (68, 2))
    five = convert_points(pts, "68", "5")
    for i, group in enumerate(FIVE_FROM_68):
        np.testing.assert_allclose(five[i], pts[list(group)].mean(0))
    # The 5-point map commutes with the flip: flipping 68 then mapping == mapping then flipping.
    np.testing.assert_allclose(convert_points(S68.flip(pts, 200), "68", "5"),
                               s5.flip(five, 200), atol=1e-9)


def test_read_mtfl_csv_and_errors(tmp_path) -> None:
    p = tmp_path / "landmarks5.csv"
    header = "image,x0,x1,x2,x3,x4,y0,y1,y2,y3,y4,gender,smile,glasses,pose\n"
    p.write_text(header + "a.jpg,1,2,3,4,5,6,7,8,9,10,1,2,2,3\n")
    (pts, attrs), = read_mtfl_csv(p).values()
    np.testing.assert_array_equal(pts, [[1, 6], [2, 7], [3, 8], [4, 9], [5, 10]])
    assert attrs == {"gender": 1, "smile": 2, "glasses": 2, "pose": 3}
    p.write_text(header + "a.jpg,1,2,3\n")
    with pytest.raises(FormatError, match=r"landmarks5.csv:2: expected 15 columns"):
        read_mtfl_csv(p)
    p.write_text(header + "a.jpg,1,2,3,4,x,6,7,8,9,10,1,2,2,3\n")
    with pytest.raises(FormatError, match=r"landmarks5.csv:2: non-numeric"):
        read_mtfl_csv(p)
    p.write_text("nonsense\n")
    with pytest.raises(FormatError, match="MTFL header"):
        read_mtfl_csv(p)


def test_load_mtfl_real(data_root) -> None:
    recs = load_mtfl(data_root / "mtfl", "train")
    assert len(recs) == 10000
    r = recs[0]
    assert r.points.shape == (5, 2) and r.key.startswith("train/images/")
    # Image-left eye first: on frontal faces (pose 3) the left eye has the smaller x.
    frontal = [x for x in recs[:500] if x.meta["pose"] == 3]
    assert np.mean([x.points[0, 0] < x.points[1, 0] for x in frontal]) > 0.99
    with pytest.raises(ValueError, match="split"):
        load_mtfl(data_root / "mtfl", "val")


def test_weighted_l1_loss() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(4, 68, 2, generator=g), torch.rand(4, 68, 2, generator=g)
    ones = torch.ones(4, 68)
    torch.testing.assert_close(weighted_l1_loss(pred, target, ones), l1_loss(pred, target))
    w = ones.clone()
    w[:, 5] = 0
    moved = target.clone()
    moved[:, 5] += 100.0  # a masked point's target does not matter
    torch.testing.assert_close(weighted_l1_loss(pred, target, w), weighted_l1_loss(pred, moved, w))
    assert weighted_l1_loss(pred, target, 0.5 * ones) == pytest.approx(
        0.5 * float(l1_loss(pred, target)))
    with pytest.raises(ValueError, match="weight"):
        weighted_l1_loss(pred, target, torch.ones(4, 5))


def _face_record(tmp_path) -> FaceRecord:
    import cv2

    img = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), img)
    pts = np.random.default_rng(2).uniform(50, 150, (68, 2))
    return FaceRecord(path, pts, key="face")


def test_flip_respects_label_bias(tmp_path) -> None:
    """A flipped label moves by exactly 2 b N crop pixels relative to the plain flip."""
    rec = _face_record(tmp_path)
    b, n = 0.01, 64

    def flipped_target(offset: float) -> np.ndarray:
        aug = TrainAugment(AugmentConfig(rotation=0, scale=(1, 1), shift=0, flip=1.0,
                                         color_jitter=0, blur=0, erase=0, grayscale=0,
                                         flip_x_offset=offset), seed=0)
        return CropDataset([rec], S68, n, 1.25, aug)[0]["target"].numpy()

    plain, biased = flipped_target(0.0), flipped_target(b)
    np.testing.assert_allclose(biased[:, 0] - plain[:, 0], 2 * b, atol=1e-6)  # normalised units
    np.testing.assert_allclose(biased[:, 1], plain[:, 1], atol=1e-6)
    # Without a flip the offset changes nothing.
    aug = TrainAugment(AugmentConfig(rotation=0, scale=(1, 1), shift=0, flip=0.0, color_jitter=0,
                                     blur=0, erase=0, grayscale=0, flip_x_offset=b), seed=0)
    ref = CropDataset([rec], S68, n, 1.25, None)[0]["target"].numpy()
    np.testing.assert_allclose(CropDataset([rec], S68, n, 1.25, aug)[0]["target"].numpy(), ref,
                               atol=1e-6)


def test_partial_labels_in_crop_dataset(tmp_path) -> None:
    rec = _face_record(tmp_path)
    five = convert_points(rec.points, "68", "5")
    pts = rec.points.copy()
    pts[10] = np.nan  # a missing point
    partial = FaceRecord(rec.image, pts, key="p", meta={"points5": five, "point_weight": 0.5,
                                                        "five_weight": 1.0})
    item = CropDataset([partial], S68, 64, 1.25, None)[0]
    assert item["weight"][10] == 0 and item["target"][10].abs().sum() == 0
    assert torch.all(item["weight"][np.r_[0:10, 11:68]] == 0.5)
    assert torch.all(item["weight5"] == 1.0)
    # The 5 real points land where the 68-point targets' group means are (same crop).
    full = CropDataset([rec], S68, 64, 1.25, None)[0]["target"].numpy().astype(np.float64)
    box_same = np.allclose(landmark_box(pts), landmark_box(rec.points))
    if box_same:
        np.testing.assert_allclose(item["target5"].numpy(), five_point_matrix() @ full, atol=1e-5)
    plain = CropDataset([rec], S68, 64, 1.25, None)[0]
    assert torch.all(plain["weight"] == 1) and torch.all(plain["weight5"] == 0)


def test_capture_degradations_change_the_crop() -> None:
    crop = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for key in ("downscale", "jpeg", "motion_blur", "defocus", "noise"):
        cfg = AugmentConfig(color_jitter=0, blur=0, erase=0, grayscale=0, **{key: 1.0})
        out = TrainAugment(cfg, seed=0).photometric_(crop.copy())
        assert out.shape == crop.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - crop).mean() > 1.0, key


def test_integral_dw_head_is_smaller_and_runs_at_112() -> None:
    dense = create_model("integral", input_size=128)
    dw = create_model("integral", input_size=128, refine="dw")
    n_dense = sum(p.numel() for p in dense.refine.parameters())
    n_dw = sum(p.numel() for p in dw.refine.parameters())
    assert n_dw < n_dense / 5
    m = create_model("integral", input_size=112, refine="dw").eval()
    out = m(torch.rand(2, 3, 112, 112))
    assert out["coords"].shape == (2, 68, 2) and out["heatmaps"].shape == (2, 68, 28, 28)
    with pytest.raises(ValueError, match="refine"):
        create_model("integral", refine="dense")
    with pytest.raises(ValueError, match="multiple of 16"):
        create_model("integral", input_size=120)


def test_soft_argmax_stays_fp32_under_bf16_autocast() -> None:
    m = create_model("integral", input_size=64, refine="dw").eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)["coords"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(x)["coords"]
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.02  # bf16 features, fp32 decoding


def test_init_from_copies_matching_tensors() -> None:
    from faceland.checkpoint import load_model
    from faceland.training import init_weights

    src, _ = load_model("faceland-300w-mnv2-integral-128")
    m = create_model("integral", input_size=128, refine="dw")
    info = init_weights(m, "faceland-300w-mnv2-integral-128")
    assert info["copied"] > 300 and info["skipped"] > 0
    torch.testing.assert_close(m.backbone.body[0][0].weight, src.backbone.body[0][0].weight)
    torch.testing.assert_close(m.heatmap.weight, src.heatmap.weight)


@pytest.mark.slow
def test_train_smoke_with_mtfl_pseudo_labels_bf16(tmp_path, data_root) -> None:
    """Two steps of the wild-face recipe on real 300W + MTFL faces (pseudo-labels made up from
    the 5 real points' frame, since only the mechanics are under test)."""
    from faceland.training import TrainConfig, train

    mtfl = load_mtfl(data_root / "mtfl", "train")[:16]
    mean_face = np.array([r.points for r in load_300w(data_root / "300w", "train")[:50]])
    # A crude 68-point "teacher": the mean 300W shape fitted to each face's eye centres.
    ref = mean_face.mean(0)
    ref5 = convert_points(ref, "68", "5")
    pts = []
    for r in mtfl:
        s = np.linalg.norm(r.points[1] - r.points[0]) / np.linalg.norm(ref5[1] - ref5[0])
        pts.append((ref - ref5[:2].mean(0)) * s + r.points[:2].mean(0))
    npz = tmp_path / "pseudo.npz"
    np.savez(npz, keys=np.array([r.key for r in mtfl]), points68=np.array(pts, np.float32),
             err5=np.zeros(len(mtfl)))
    cfg = TrainConfig(model="integral", model_args={"refine": "dw"}, root=str(data_root / "300w"),
                      input_size=64, epochs=1, batch_size=8, max_images=24, num_workers=0,
                      limit_train_batches=2, precision="bf16-mixed",
                      init_from="faceland-300w-mnv2-integral-128",
                      augment={"downscale": 0.5, "jpeg": 0.5, "flip_x_offset": 0.00265},
                      mtfl={"root": str(data_root / "mtfl"), "pseudo": str(npz)},
                      out_dir=str(tmp_path / "run"))
    out = train(cfg)
    import json

    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["n_mtfl"] == 16
    assert card["training"]["init"]["copied"] > 300
    assert card["training"]["precision"] == "bf16-mixed"
