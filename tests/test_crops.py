"""CropDataset + TrainAugment: targets map back exactly onto the annotated landmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceland.data.crops import CropDataset, image_to_tensor
from faceland.data.datasets import load_300w
from faceland.geometry import apply_affine, invert_affine, normalized_to_crop
from faceland.schemes import get_scheme
from faceland.transforms import AugmentConfig, TrainAugment

N = 96
S68 = get_scheme("68")


@pytest.fixture(scope="module")
def records(data_root):
    recs = load_300w(data_root / "300w", "common")
    return recs[::111][:5]  # a few faces from both Helen and LFPW


def _to_image_frame(item: dict) -> np.ndarray:
    crop_px = normalized_to_crop(item["target"].numpy().astype(np.float64), N)
    return apply_affine(crop_px, invert_affine(item["affine"].numpy()))


def test_items_without_augmentation(records) -> None:
    ds = CropDataset(records, S68, N)
    assert len(ds) == len(records)
    for i in range(len(ds)):
        item = ds[i]
        img, tgt = item["image"], item["target"]
        assert img.shape == (3, N, N) and img.dtype == torch.float32
        assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0 and float(img.max()) > 0.5
        assert tgt.shape == (68, 2) and tgt.dtype == torch.float32
        assert item["affine"].shape == (2, 3) and item["index"] == i
        # gt box enlarged 1.25x: every landmark inside the crop, away from the edges
        assert float(tgt.min()) > 0.05 and float(tgt.max()) < 0.95
        assert np.abs(_to_image_frame(item) - records[i].points).max() < 1e-4


def test_evaluation_crop_is_deterministic_and_cached(records) -> None:
    ds = CropDataset(records[:1], S68, N)
    a, b = ds[0], ds[0]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"], b["target"])
    assert 0 in ds._cache


def test_record_box_source(records) -> None:
    ds = CropDataset(records[:2], S68, N, box_source="record")
    for i in range(2):
        assert np.abs(_to_image_frame(ds[i]) - records[i].points).max() < 1e-4
    with pytest.raises(ValueError):
        CropDataset(records, S68, N, box_source="yolo")


@pytest.mark.parametrize("seed", [0, 1])
def test_flipped_augmented_targets_map_back_with_index_swap(records, seed: int) -> None:
    aug = TrainAugment(AugmentConfig(flip=1.0), seed=seed)
    ds = CropDataset(records, S68, N, augment=aug)
    perm = list(S68.flip_permutation)
    for i in range(len(ds)):
        item = ds[i]
        back = _to_image_frame(item)  # target j is the mirror of gt point perm[j]
        assert np.abs(back - records[i].points[perm]).max() < 1e-4
        assert np.abs(back[perm] - records[i].points).max() < 1e-4
        # after the swap the markup still reads left-to-right as displayed: point 36 (outer
        # corner of the eye on the image's left) stays left of point 45
        t = item["target"].numpy()
        assert t[36, 0] < t[45, 0] and t[0, 0] < t[16, 0]
        assert item["image"].shape == (3, N, N)


def test_flip_only_augmentation_mirrors_the_image(records) -> None:
    cfg = AugmentConfig(rotation=0.0, scale=(1.0, 1.0), shift=0.0, flip=1.0, color_jitter=0.0,
                        blur=0.0, erase=0.0, grayscale=0.0)
    flipped = CropDataset(records[:2], S68, N, augment=TrainAugment(cfg, seed=3))
    plain = CropDataset(records[:2], S68, N)
    for i in range(2):
        f, p = flipped[i], plain[i]
        diff = (f["image"] - p["image"].flip(-1)).abs()
        assert float(diff.max()) <= 4 / 255 + 1e-6  # see test_flip_mirrors_the_crop_frame
        assert float(diff.mean()) < 0.05 / 255
        expected = p["target"].numpy()[list(S68.flip_permutation)].copy()
        expected[:, 0] = 1.0 - expected[:, 0]  # normalised x of a mirrored N-pixel crop
        np.testing.assert_allclose(f["target"].numpy(), expected, atol=1e-6)


def test_train_augment_seeded_geometry_is_reproducible() -> None:
    a = [TrainAugment(seed=7).sample_geometry() for _ in range(2)]
    assert a[0] == a[1]
    assert TrainAugment(seed=11).sample_geometry() != TrainAugment(seed=12).sample_geometry()
    aug = TrainAugment(AugmentConfig(rotation=10.0, scale=(0.9, 1.1), shift=0.05, flip=0.0),
                       seed=0)
    for _ in range(50):
        g = aug.sample_geometry()
        assert abs(g.rotation) <= 10.0 and 0.9 <= g.scale <= 1.1
        assert max(abs(g.shift[0]), abs(g.shift[1])) <= 0.05 and not g.flip


def test_image_to_tensor_layout() -> None:
    crop = np.zeros((4, 5, 5, 3), np.uint8)
    crop[1, 2, 3] = (255, 0, 51)
    t = image_to_tensor(crop)
    assert t.shape == (4, 3, 5, 5) and t.dtype == torch.float32
    assert t[1, :, 2, 3].tolist() == pytest.approx([1.0, 0.0, 0.2])
    assert image_to_tensor(crop[1]).shape == (3, 5, 5)
