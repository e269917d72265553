"""Crop geometry: the image <-> crop maps and the warp agree exactly."""

from __future__ import annotations

import numpy as np
import pytest

from faceland.data.formats import read_image, read_pts
from faceland.geometry import (
    CropParams,
    apply_affine,
    box_iou,
    crop_affine,
    crop_to_normalized,
    invert_affine,
    landmark_box,
    normalized_to_crop,
    warp_crop,
)

PARAMS = [
    CropParams(),
    CropParams(rotation=25.0),
    CropParams(rotation=-40.0, scale=1.2, shift=(0.05, -0.04)),
    CropParams(scale=0.8, shift=(-0.1, 0.07), flip=True),
    CropParams(rotation=13.0, scale=1.1, shift=(0.02, 0.03), flip=True),
]


@pytest.fixture(scope="module")
def face(data_root):
    f = sorted((data_root / "300w" / "helen" / "testset").glob("*.jpg"))[0]
    return read_image(f), read_pts(f.with_suffix(".pts"), 68)


@pytest.mark.parametrize("params", PARAMS)
def test_image_crop_image_round_trip(face, params: CropParams) -> None:
    _, pts = face
    a = crop_affine(landmark_box(pts), 128, 1.25, params)
    assert a.shape == (2, 3) and a.dtype == np.float64
    in_crop = apply_affine(pts, a)
    assert not np.allclose(in_crop, pts)
    back = apply_affine(in_crop, invert_affine(a))
    assert np.abs(back - pts).max() < 1e-4
    # the normalised coordinates the models see survive the round trip too
    norm = crop_to_normalized(in_crop, 128)
    back2 = apply_affine(normalized_to_crop(norm, 128), invert_affine(a))
    assert np.abs(back2 - pts).max() < 1e-4


def test_crop_affine_centres_and_scales_the_box() -> None:
    box = [10.0, 20.0, 110.0, 70.0]  # w = 100, h = 50 -> side 125 with enlarge 1.25
    a = crop_affine(box, 64, 1.25)
    centre = apply_affine(np.array([[60.0, 45.0]]), a)[0]
    np.testing.assert_allclose(centre, [31.5, 31.5], atol=1e-12)  # (N - 1) / 2
    np.testing.assert_allclose(np.linalg.det(a[:, :2]), (64 / 125) ** 2, rtol=1e-12)
    # the crop's outer edges are -0.5 and N - 0.5 (pixel-centre convention)
    edges = apply_affine(np.array([[60.0 - 62.5, 45.0], [60.0 + 62.5, 45.0]]), a)[:, 0]
    np.testing.assert_allclose(edges, [-0.5, 63.5], atol=1e-12)


def test_rotation_is_counter_clockwise_as_displayed() -> None:
    a = crop_affine([0.0, 0.0, 100.0, 100.0], 100, 1.0, CropParams(rotation=90.0))  # scale 1
    # +90 deg counter-clockwise content rotation: a point 40 px right of the centre (50, 50)
    # moves 40 px above the crop centre (49.5, 49.5) (y points down).
    u = apply_affine(np.array([[90.0, 50.0], [50.0, 90.0]]), a)
    np.testing.assert_allclose(u, [[49.5, 9.5], [89.5, 49.5]], atol=1e-9)


def test_crop_affine_rejects_degenerate_input() -> None:
    with pytest.raises(ValueError):
        crop_affine([5.0, 5.0, 5.0, 5.0], 64)
    with pytest.raises(ValueError):
        crop_affine([0.0, 0.0, 10.0, 10.0], 0)
    with pytest.raises(ValueError):
        crop_affine([0.0, 0.0, np.nan, 10.0], 64)


def test_warp_crop_matches_point_map_for_integer_pixel() -> None:
    img = np.zeros((120, 140), np.uint8)
    img[40, 50] = 255  # bright pixel at (x, y) = (50, 40)
    # side = 64 * 1.0 = N -> scale exactly 1, centre (42.5, 52.5): an integer translation
    a = crop_affine([10.5, 20.5, 74.5, 84.5], 64, 1.0)
    np.testing.assert_allclose(a[:, :2], np.eye(2), atol=1e-15)
    u, v = apply_affine(np.array([50.0, 40.0]), a)
    assert (u, v) == (39.0, 19.0)
    crop = warp_crop(img, a, 64)
    assert crop.shape == (64, 64) and crop.dtype == np.uint8
    assert crop[19, 39] == 255
    assert int(crop.sum()) == 255  # nothing else lit


def test_warp_crop_matches_point_map_for_subpixel_translation() -> None:
    img = np.zeros((100, 100, 3), np.float32)
    img[47, 33] = 1.0
    a = crop_affine([20.0, 30.0, 60.0, 70.0], 40, 1.0, CropParams(shift=(0.013, -0.021)))
    crop = warp_crop(img, a, 40)[..., 0].astype(np.float64)
    assert crop.shape == (40, 40)
    ys, xs = np.mgrid[:40, :40]
    centroid = np.array([(crop * xs).sum(), (crop * ys).sum()]) / crop.sum()
    expected = apply_affine(np.array([33.0, 47.0]), a)
    assert np.abs(expected - np.round(expected)).max() > 0.1  # really sub-pixel
    np.testing.assert_allclose(centroid, expected, atol=0.02)


@pytest.mark.parametrize("params", [CropParams(), CropParams(rotation=17.0, shift=(0.03, -0.02))])
@pytest.mark.parametrize("corner", [(1000, 1100), (1203, 757), (600, 1500)])
def test_warp_crop_antialias_path_keeps_point_map(params: CropParams, corner) -> None:
    img = np.zeros((2400, 2400), np.uint8)
    x, y = corner
    img[y:y + 20, x:x + 20] = 255  # 20 x 20 square, pixel centres x .. x+19
    a = crop_affine([200.0, 250.0, 2200.0, 2250.0], 128, 1.0, params)  # 2000 px -> 128: 15.6x
    crop = warp_crop(img, a, 128).astype(np.float64)
    ys, xs = np.mgrid[:128, :128]
    centroid = np.array([(crop * xs).sum(), (crop * ys).sum()]) / crop.sum()
    expected = apply_affine(np.array([x + 9.5, y + 9.5]), a)
    assert np.abs(centroid - expected).max() < 0.15
    # area-averaged, not aliased: the square keeps its mass (20 * 20 * k^2 crop pixels)
    k2 = abs(np.linalg.det(a[:, :2]))
    assert crop.sum() / 255 == pytest.approx(400 * k2, rel=0.2)


def test_flip_mirrors_the_crop_frame(face) -> None:
    img, pts = face
    box = landmark_box(pts)
    for base in (CropParams(), CropParams(rotation=20.0, scale=1.1, shift=(0.05, -0.03))):
        flipped = CropParams(base.rotation, base.scale, base.shift, flip=True)
        a, af = crop_affine(box, 96, 1.25, base), crop_affine(box, 96, 1.25, flipped)
        u, uf = apply_affine(pts, a), apply_affine(pts, af)
        np.testing.assert_allclose(uf[:, 0], 95 - u[:, 0], atol=1e-9)
        np.testing.assert_allclose(uf[:, 1], u[:, 1], atol=1e-9)
        c, cf = warp_crop(img, a, 96).astype(int), warp_crop(img, af, 96).astype(int)
        diff = np.abs(cf - c[:, ::-1])
        # Same samples up to fixed-point rounding; where the crop shrinks the photo by more than
        # 2x, the integer area reduction's block grid is not mirror-symmetric: a few pixels
        # differ by up to 4 levels (measured: max 4, mean 0.003).
        assert diff.max() <= 4 and diff.mean() < 0.05


def test_normalized_crop_conversions_are_inverse() -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 127.5, size=(10, 68, 2))
    np.testing.assert_allclose(normalized_to_crop(crop_to_normalized(pts, 128), 128), pts,
                               atol=1e-12)
    norm = rng.uniform(0, 1, size=(68, 2))
    np.testing.assert_allclose(crop_to_normalized(normalized_to_crop(norm, 64), 64), norm,
                               atol=1e-12)
    # 0 and 1 are the outer pixel edges; pixel centre 0 is 0.5 / N
    np.testing.assert_allclose(crop_to_normalized(np.array([-0.5, 0.0, 127.5]), 128),
                               [0.0, 0.5 / 128, 1.0])


def test_apply_affine_batched() -> None:
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(3, 5, 2))
    mats = rng.normal(size=(3, 2, 3))
    out = apply_affine(pts, mats)
    for i in range(3):
        np.testing.assert_allclose(out[i], pts[i] @ mats[i, :, :2].T + mats[i, :, 2])


def test_landmark_box_ignores_nan_rows_and_rejects_all_nan() -> None:
    pts = np.array([[1.0, 5.0], [np.nan, np.nan], [4.0, 2.0], [np.nan, 100.0], [3.0, 9.0]])
    np.testing.assert_array_equal(landmark_box(pts), [1.0, 2.0, 4.0, 9.0])
    with pytest.raises(ValueError, match="no finite point"):
        landmark_box(np.full((68, 2), np.nan))


def test_nearest_box_is_the_evaluation_matching_rule() -> None:
    from faceland.geometry import nearest_box

    gt = np.array([100.0, 100.0, 200.0, 200.0])  # centre (150, 150), side 100
    cands = np.array([[0, 0, 50, 50], [110, 120, 210, 220], [150, 150, 250, 250.0]])
    assert nearest_box(cands, gt) == 1  # centre (160, 170): 22 px away
    assert nearest_box(cands[[0]], gt) is None  # 125 px away > half the side (50)
    assert nearest_box(np.zeros((0, 4)), gt) is None
    assert nearest_box(np.array([[150, 100, 250, 200.0]]), gt) is None  # exactly 50 px: too far


def test_box_iou() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 5]])
    b = np.array([[5, 0, 15, 10]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150], [0.0]])
