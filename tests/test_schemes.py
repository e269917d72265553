"""Landmark schemes: flip permutations against the published maps and against real faces."""

from __future__ import annotations

import numpy as np
import pytest

from faceland.data.formats import read_asf, read_pts
from faceland.schemes import SCHEMES, get_scheme

# Published flip pairs (0-based), written out here independently of faceland.schemes
# (MMPose / HRNet dataset metadata; FIELD-NOTES section 2).
PUBLISHED_PAIRS = {
    "68": [
        (0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9),
        (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),
        (31, 35), (32, 34),
        (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
        (48, 54), (49, 53), (50, 52), (58, 56), (59, 55), (60, 64), (61, 63), (67, 65),
    ],
    "98": [
        (0, 32), (1, 31), (2, 30), (3, 29), (4, 28), (5, 27), (6, 26), (7, 25),
        (8, 24), (9, 23), (10, 22), (11, 21), (12, 20), (13, 19), (14, 18), (15, 17),
        (33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
        (55, 59), (56, 58),
        (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
        (76, 82), (77, 81), (78, 80), (87, 83), (86, 84), (88, 92), (89, 91), (95, 93),
        (96, 97),
    ],
    "29": [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17),
           (18, 19), (22, 23)],
    "19": [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17)],
}
POINT_COUNTS = {"5": 5, "68": 68, "98": 98, "29": 29, "19": 19, "58": 58, "1": 1, "468": 468}


def _expected_permutation(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_flip_permutation_is_an_involution(name: str) -> None:
    s = get_scheme(name)
    perm = np.array(s.flip_permutation)
    assert s.num_points == POINT_COUNTS[name]
    assert sorted(perm.tolist()) == list(range(s.num_points))  # a permutation
    np.testing.assert_array_equal(perm[perm], np.arange(s.num_points))
    # The pairs are disjoint and each really swaps two distinct points.
    flat = [i for pair in s.flip_pairs for i in pair]
    assert len(flat) == len(set(flat))
    assert all(a != b for a, b in s.flip_pairs)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PAIRS))
def test_flip_pairs_equal_published_map(name: str) -> None:
    s = get_scheme(name)
    expected = {frozenset(p) for p in PUBLISHED_PAIRS[name]}
    assert {frozenset(p) for p in s.flip_pairs} == expected
    assert list(s.flip_permutation) == _expected_permutation(s.num_points, PUBLISHED_PAIRS[name])


@pytest.mark.parametrize(("name", "iod"), [("68", (36, 45)), ("98", (60, 72)), ("29", (8, 9)),
                                           ("19", None)])
def test_normalisation_indices_match_protocol(name: str, iod) -> None:
    s = get_scheme(name)
    assert (None if s.iod_pair is None else set(s.iod_pair)) == (None if iod is None else set(iod))


def test_get_scheme_accepts_int_and_rejects_unknown() -> None:
    assert get_scheme(68) is get_scheme("68")
    with pytest.raises(KeyError, match="unknown landmark scheme"):
        get_scheme("67")
    with pytest.raises(KeyError):
        get_scheme("wflw")


def test_flip_rejects_wrong_point_count() -> None:
    with pytest.raises(ValueError, match="expects"):
        get_scheme("68").flip(np.zeros((67, 2)), 100)


def test_flip_mirrors_x_about_pixel_centres() -> None:
    s = get_scheme("19")
    pts = np.stack([np.arange(19, dtype=float), np.arange(19, dtype=float) * 2], axis=1)
    out = s.flip(pts, width=50)
    perm = _expected_permutation(19, PUBLISHED_PAIRS["19"])
    np.testing.assert_allclose(out[:, 0], 49 - pts[perm, 0])
    np.testing.assert_allclose(out[:, 1], pts[perm, 1])
    # batched (N, K, 2) input behaves like the single face
    np.testing.assert_allclose(s.flip(np.stack([pts, pts + 1]), 50)[1], s.flip(pts + 1, 50))


def test_double_flip_of_real_300w_face_is_identity(data_root) -> None:
    first = sorted((data_root / "300w" / "helen" / "testset").glob("*.pts"))[0]
    pts = read_pts(first, 68)
    s = get_scheme("68")
    once = s.flip(pts, 448)
    assert not np.allclose(once, pts)
    np.testing.assert_allclose(s.flip(once, 448), pts, rtol=0, atol=1e-9)


def _mirror_distances(pts: np.ndarray, name: str, left: list[int], right: list[int],
                      outer_corners: tuple[int, int]):
    """Per-point distance (in IOD units) between the face and its mirror image.

    The face is first levelled (eye centres on a horizontal line) and then mirrored about the
    vertical line through its mean with ``scheme.flip``; a correct flip map makes the mirrored
    shape land on the original for a frontal face.
    """
    le, re = pts[left].mean(0), pts[right].mean(0)
    v = re - le
    ang = -np.arctan2(v[1], v[0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    q = (pts - pts.mean(0)) @ rot.T + 200.0
    cx = q[:, 0].mean()
    mirrored = get_scheme(name).flip(q, width=2 * cx + 1)  # x -> 2 cx - x
    iod = np.linalg.norm(pts[outer_corners[0]] - pts[outer_corners[1]])
    return np.linalg.norm(mirrored - q, axis=1) / iod


def test_imm_flip_maps_each_eye_onto_the_other(data_root) -> None:
    files = sorted((data_root / "imm").glob("*.asf"))
    assert len(files) == 37
    # IMM .asf paths: 13-20 one eye ring, 21-28 the other (path ids 1 and 2 in the file); their
    # first points (13, 21) are the outer eye corners.
    eye_a, eye_b = list(range(13, 21)), list(range(21, 29))
    for f in files:
        d = _mirror_distances(read_asf(f), "58", eye_b, eye_a, (13, 21))
        assert d.mean() < 0.1, f.name
        assert d.max() < 0.25, f.name
        assert d[eye_a + eye_b].max() < 0.15, f.name


def test_imm_identity_map_would_fail_the_mirror_check(data_root) -> None:
    """Guard of the check above: without the index swap the mirror is far from the face."""
    pts = read_asf(sorted((data_root / "imm").glob("*.asf"))[0])
    cx = pts[:, 0].mean()
    mirrored = pts.copy()
    mirrored[:, 0] = 2 * cx - mirrored[:, 0]
    iod = np.linalg.norm(pts[13] - pts[21])
    assert np.linalg.norm(mirrored - pts, axis=1).mean() > 0.3 * iod


def test_68_flip_mirror_check_on_real_frontal_face(data_root) -> None:
    # A near-frontal, upright Helen test face.
    pts = read_pts(data_root / "300w" / "helen" / "testset" / "3166166183_1.pts", 68)
    d = _mirror_distances(pts, "68", list(range(36, 42)), list(range(42, 48)), (36, 45))
    assert d.mean() < 0.15
    assert d.max() < 0.25


def test_wflw_to_68_map_commutes_with_flip(data_root) -> None:
    """Mirroring then converting equals converting then mirroring: the map respects left/right."""
    from faceland.data.formats import read_coco_keypoints
    from faceland.schemes import SCHEME_MAPS, convert_points

    idx = SCHEME_MAPS[("98", "68")]
    assert len(idx) == 68 and len(set(idx)) == 68
    (rec, *_) = read_coco_keypoints(data_root / "fixtures/mmpose-coco/wflw/test_wflw.json")
    pts98, w = rec["points"], rec["width"]
    s98, s68 = get_scheme("98"), get_scheme("68")
    a = convert_points(s98.flip(pts98, w), "98", "68")
    b = s68.flip(convert_points(pts98, "98", "68"), w)
    np.testing.assert_allclose(a, b, atol=1e-9)
    # Outer eye corners of 68 are WFLW's outer corners: the IOD is the same.
    np.testing.assert_allclose(convert_points(pts98, "98", "68")[[36, 45]], pts98[[60, 72]])


def test_mediapipe_to_68_map_is_mirror_consistent() -> None:
    """Each 68-point flip pair maps onto a MediaPipe mirror pair, midline points onto the midline."""
    from faceland.schemes import SCHEME_MAPS

    idx = np.array(SCHEME_MAPS[("468", "68")])
    assert len(idx) == 68 and len(set(idx.tolist())) == 68 and idx.max() < 468
    perm468, perm68 = np.array(get_scheme("468").flip_permutation), get_scheme("68").flip_permutation
    np.testing.assert_array_equal(perm468[idx], idx[list(perm68)])
    # The mesh's outer eye corners (its IOD pair) sit next to the 68 outer corners' vertices.
    assert set(get_scheme("468").iod_pair) == {33, 263}


def test_mediapipe_mesh_of_a_real_face_maps_onto_its_68_landmarks() -> None:
    """MediaPipe's own mesh of the astronaut photo (a stored fixture), mapped to 68 points, lies
    on the face: mirrored meshes map to mirrored 68 points, eyes and mouth are where a 68-point
    face has them."""
    import json
    from pathlib import Path

    from faceland.schemes import convert_points

    doc = json.loads((Path(__file__).parent / "data" / "astronaut_mediapipe468.json").read_text())
    mesh = np.array(doc["points"])
    assert mesh.shape == (468, 2)
    p68 = convert_points(mesh, "468", "68")
    w = 512
    np.testing.assert_allclose(convert_points(get_scheme("468").flip(mesh, w), "468", "68"),
                               get_scheme("68").flip(p68, w), atol=1e-9)
    # Anatomy in the image frame: subject's right eye (36-41) left of the left eye (42-47),
    # brows above eyes above the nose tip (30) above the mouth (48-67) above the chin (8).
    assert p68[36:42, 0].mean() < p68[42:48, 0].mean()
    assert p68[17:27, 1].mean() < p68[36:48, 1].mean() < p68[30, 1] < p68[48:68, 1].mean() \
        < p68[8, 1]
    iod = np.linalg.norm(p68[36] - p68[45])
    assert 40 < iod < 90  # the astronaut's outer eye corners are about 60 px apart


def test_convert_points_errors() -> None:
    from faceland.schemes import convert_points

    with pytest.raises(KeyError, match="no landmark map"):
        convert_points(np.zeros((68, 2)), "68", "98")
    with pytest.raises(ValueError, match="98"):
        convert_points(np.zeros((68, 2)), "98", "68")


def test_flip_normalized_agrees_with_the_pixel_flip() -> None:
    """One flip per frame: pixels (x -> W - 1 - x) and normalised crop coordinates
    (x -> 1 - x + 2b); the two agree through p = (u + 0.5) / N, and each is an involution."""
    scheme = get_scheme("68")
    rng = np.random.default_rng(0)
    n = 128
    px = rng.uniform(0, n - 1, size=(3, 68, 2))
    norm = (px + 0.5) / n
    np.testing.assert_allclose(scheme.flip_normalized(norm), (scheme.flip(px, n) + 0.5) / n)
    np.testing.assert_allclose(scheme.flip_normalized(scheme.flip_normalized(norm)), norm)
    shifted = scheme.flip_normalized(norm.astype(np.float32), x_offset=0.01)
    assert shifted.dtype == np.float32
    np.testing.assert_allclose(shifted[..., 0] - scheme.flip_normalized(norm)[..., 0], 0.02,
                               atol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        scheme.flip_normalized(norm[:, :5])
