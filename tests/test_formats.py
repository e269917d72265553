"""Annotation readers/writers on real files, and read_image on real and hand-made images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from imaging import exif_app1

from faceland.data.formats import (
    FormatError,
    read_asf,
    read_coco_keypoints,
    read_image,
    read_pts,
    read_wflw_list,
    read_ytf_csv,
    write_pts,
)

# ----------------------------------------------------------------------------- .pts


def _first_helen_pts(data_root: Path) -> Path:
    return sorted((data_root / "300w" / "helen" / "testset").glob("*.pts"))[0]


def test_read_pts_returns_zero_based_file_values(data_root) -> None:
    f = _first_helen_pts(data_root)
    lines = f.read_text().splitlines()
    start = lines.index("{")
    raw = np.array([[float(v) for v in ln.split()] for ln in lines[start + 1: start + 69]])
    pts = read_pts(f, num_points=68)
    assert pts.shape == (68, 2) and pts.dtype == np.float64
    np.testing.assert_array_equal(pts, raw - 1.0)


def test_write_read_pts_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    pts = np.round(rng.uniform(-0.5, 300.0, size=(68, 2)), 3)
    f = tmp_path / "face.pts"
    write_pts(f, pts)
    text = f.read_text()
    assert text.startswith("version: 1\nn_points: 68\n{\n")
    # the file itself is 1-based
    assert text.splitlines()[3] == f"{pts[0, 0] + 1:.3f} {pts[0, 1] + 1:.3f}"
    np.testing.assert_allclose(read_pts(f, 68), pts, rtol=0, atol=1e-9)


def test_read_pts_wrong_point_count_names_the_file(tmp_path) -> None:
    f = tmp_path / "short.pts"
    write_pts(f, np.zeros((67, 2)))
    assert read_pts(f).shape == (67, 2)  # fine without an expectation
    with pytest.raises(FormatError, match="67 points, expected 68") as e:
        read_pts(f, num_points=68)
    assert str(f) in str(e.value)


@pytest.mark.parametrize(
    "content",
    [
        "version: 1\nn_points: 2\n1 2\n3 4\n",  # no braces
        "version: 1\nn_points: 2\n{\n1 2\n3 four\n}\n",  # non-numeric
        "version: 1\nn_points: 2\n{\n1 2 5\n3 4 6\n}\n",  # three values per point
        "version: 1\nn_points: 2\n{\n1 2\n3\n}\n",  # ragged
        "version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n",  # header disagrees with the body
        "",  # empty
    ],
    ids=["no-braces", "non-numeric", "three-values", "ragged", "header-count", "empty"],
)
def test_read_pts_malformed_raises_format_error(tmp_path, content: str) -> None:
    f = tmp_path / "bad.pts"
    f.write_text(content)
    with pytest.raises(FormatError) as e:
        read_pts(f)
    assert str(f) in str(e.value)


def test_read_pts_missing_and_binary_files(tmp_path) -> None:
    with pytest.raises(FormatError, match="cannot read"):
        read_pts(tmp_path / "nope.pts")
    f = tmp_path / "binary.pts"
    f.write_bytes(b"\xff\xfe\x00\x80\x81" * 10)
    with pytest.raises(FormatError):
        read_pts(f)


# ----------------------------------------------------------------------------- IMM .asf


def test_read_asf_real_imm_files(data_root) -> None:
    files = sorted((data_root / "imm").glob("*.asf"))
    assert len(files) == 37
    for f in files:
        pts = read_asf(f)
        assert pts.shape == (58, 2), f.name
        assert (pts >= -0.5).all() and (pts[:, 0] <= 639.5).all() and (pts[:, 1] <= 479.5).all()
    # relative 0 is the left image edge: x = rel * 640 - 0.5 (first point of the first file)
    first = files[0]
    rows = [ln.split() for ln in first.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]
    rel = float(rows[1][2]), float(rows[1][3])
    np.testing.assert_allclose(read_asf(first)[0], [rel[0] * 640 - 0.5, rel[1] * 480 - 0.5])


def test_read_asf_malformed(tmp_path) -> None:
    f = tmp_path / "bad.asf"
    f.write_text("# header\n58\n0 0 0.1 0.2 0 0 1\n0 0 0.3\n")
    with pytest.raises(FormatError) as e:
        read_asf(f)
    assert str(f) in str(e.value)


# ----------------------------------------------------------------------------- WFLW lists


def test_read_wflw_blur_test_list(data_root) -> None:
    f = data_root / "annotations-only" / "wflw-test" / "list_98pt_test_blur.txt"
    recs = read_wflw_list(f)
    n_lines = sum(1 for ln in f.read_text().splitlines() if ln.strip())
    assert len(recs) == n_lines > 0
    for r in recs:
        assert r.points.shape == (98, 2)
        assert np.isfinite(r.points).all()
        assert r.attributes["blur"] == 1
        assert r.image.endswith(".jpg")
    # coordinates are taken unchanged from the file
    first = f.read_text().split("\n", 1)[0].split()
    np.testing.assert_array_equal(recs[0].points[0], [float(first[0]), float(first[1])])
    assert recs[0].image == first[-1]


def test_read_wflw_full_layout_with_box_and_flags(tmp_path) -> None:
    coords = np.arange(196, dtype=float) / 2
    line = " ".join([*map(str, coords), "10", "20", "110", "130", "1", "0", "0", "1", "0", "1",
                     "0--Parade/x.jpg"])
    f = tmp_path / "list_98pt_rect_attr_test.txt"
    f.write_text(line + "\n\n" + line + "\n")
    recs = read_wflw_list(f)
    assert len(recs) == 2
    np.testing.assert_array_equal(recs[0].points, coords.reshape(98, 2))
    np.testing.assert_array_equal(recs[0].box, [10, 20, 110, 130])
    assert recs[0].attributes == {"pose": 1, "expression": 0, "illumination": 0, "makeup": 1,
                                  "occlusion": 0, "blur": 1}
    assert recs[0].image == "0--Parade/x.jpg"


def test_read_wflw_malformed_line_names_file_and_line(tmp_path) -> None:
    good = " ".join(["1.0"] * 196 + ["a.jpg"])
    f = tmp_path / "list.txt"
    f.write_text(good + "\n" + " ".join(["1.0"] * 100 + ["b.jpg"]) + "\n")
    with pytest.raises(FormatError, match=r"list\.txt:2"):
        read_wflw_list(f)
    f.write_text(" ".join(["1.0"] * 195 + ["x", "a.jpg"]) + "\n")
    with pytest.raises(FormatError, match="non-numeric"):
        read_wflw_list(f)


# ----------------------------------------------------------------------------- COCO / YTF


@pytest.mark.parametrize(("subset", "k"), [("wflw", 98), ("cofw", 29), ("aflw", 19),
                                           ("lapa", 106), ("300wlp", 68), ("300vw", 68)])
def test_read_coco_keypoints_fixtures(data_root, subset: str, k: int) -> None:
    (f,) = sorted((data_root / "fixtures" / "mmpose-coco" / subset).glob("*.json"))
    recs = read_coco_keypoints(f)
    assert len(recs) >= 2
    for r in recs:
        assert r["points"].shape == (k, 2)
        assert r["visible"].shape == (k,) and r["visible"].dtype == bool
        assert r["box"].shape == (4,)
        assert np.isfinite(r["points"]).all()
        assert (r["points"] >= -1).all()
        assert (r["points"][:, 0] <= r["width"]).all() and (r["points"][:, 1] <= r["height"]).all()
        assert (f.parent / r["image"]).exists()


def test_read_coco_keypoints_bbox_and_errors(tmp_path) -> None:
    f = tmp_path / "c.json"
    f.write_text('{"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 8}],'
                 ' "annotations": [{"image_id": 1, "keypoints": [1, 2, 2, 3, 4, 0],'
                 ' "bbox": [1, 2, 5, 6]}]}')
    (r,) = read_coco_keypoints(f)
    # v = 0 means "not labelled": NaN, never a point at (3, 4) or (0, 0)
    np.testing.assert_array_equal(r["points"], [[1, 2], [np.nan, np.nan]])
    np.testing.assert_array_equal(r["visible"], [True, False])
    # COCO boxes are in pixel-edge coordinates: -0.5 into faceland's pixel-centre frame
    np.testing.assert_array_equal(r["box"], [0.5, 1.5, 5.5, 7.5])
    f.write_text('{"images": []}')
    with pytest.raises(FormatError) as e:
        read_coco_keypoints(f)
    assert str(f) in str(e.value)


def test_read_ytf_csv(data_root) -> None:
    f = data_root / "ytf68" / "train" / "keypoints.csv"
    d = read_ytf_csv(f)
    assert len(d) == 3462
    name, pts = next(iter(d.items()))
    assert pts.shape == (68, 2) and all(v.shape == (68, 2) for v in d.values())
    row = f.read_text().splitlines()[1].split(",")
    assert row[0] == name
    np.testing.assert_array_equal(pts[:2], [[float(row[1]), float(row[2])],
                                            [float(row[3]), float(row[4])]])


def test_read_ytf_csv_bad_row(tmp_path) -> None:
    f = tmp_path / "k.csv"
    f.write_text("image," + ",".join(f"x{i},y{i}" for i in range(68)) + "\na.jpg,1,2\n")
    with pytest.raises(FormatError, match=":2:"):
        read_ytf_csv(f)


# ----------------------------------------------------------------------------- read_image


def _write(path: Path, img: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), img)
    return path


def test_read_image_returns_rgb(tmp_path) -> None:
    bgr = np.zeros((6, 8, 3), np.uint8)
    bgr[...] = (10, 20, 30)  # B, G, R as OpenCV stores it
    bgr[0, 0] = (255, 0, 0)  # pure blue pixel
    img = read_image(_write(tmp_path / "c.png", bgr))
    assert img.shape == (6, 8, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[1, 1], [30, 20, 10])
    np.testing.assert_array_equal(img[0, 0], [0, 0, 255])


def test_read_image_grayscale_and_rgba(tmp_path) -> None:
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    img = read_image(_write(tmp_path / "g.png", gray))
    assert img.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], gray)
    bgra = np.zeros((5, 7, 4), np.uint8)
    bgra[...] = (1, 2, 3, 0)  # fully transparent, colour still defined
    img = read_image(_write(tmp_path / "a.png", bgra))
    assert img.shape == (5, 7, 3)
    np.testing.assert_array_equal(img[2, 3], [3, 2, 1])


def test_read_image_16_bit_png_scaled_to_uint8(tmp_path) -> None:
    v = np.array([[0, 257, 257 * 100, 65535]], np.uint16)
    img = read_image(_write(tmp_path / "d.png", v))
    assert img.dtype == np.uint8 and img.shape == (1, 4, 3)
    np.testing.assert_array_equal(img[0, :, 0], [0, 1, 100, 255])
    bgr16 = np.zeros((2, 2, 3), np.uint16)
    bgr16[..., 0] = 65535  # blue
    img = read_image(_write(tmp_path / "e.png", bgr16))
    np.testing.assert_array_equal(img[0, 0], [0, 0, 255])


def _jpeg_bytes(img: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def _noise_image(h: int = 64, w: int = 96) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image_raises_with_path(tmp_path, suffix: str) -> None:
    ok, buf = cv2.imencode(suffix, _noise_image())
    data = buf.tobytes()
    full = tmp_path / f"full{suffix}"
    full.write_bytes(data)
    assert read_image(full).shape == (64, 96, 3)  # the complete file is fine
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError) as e:
        read_image(cut)
    assert str(cut) in str(e.value)


def test_text_file_named_jpg_raises(tmp_path) -> None:
    f = tmp_path / "x.jpg"
    f.write_text("this is not an image\n" * 5)
    with pytest.raises(FormatError) as e:
        read_image(f)
    assert str(f) in str(e.value)


def test_missing_empty_and_directory_paths_raise(tmp_path) -> None:
    with pytest.raises(FormatError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(FormatError, match="directory"):
        read_image(tmp_path)


@pytest.mark.parametrize("endian", ["MM", "II"])
def test_exif_orientation_6_is_applied(tmp_path, endian: str) -> None:
    # Stored image 40 x 60 with four distinctly coloured quadrants (BGR as written).
    h, w = 40, 60
    bgr = np.zeros((h, w, 3), np.uint8)
    bgr[: h // 2, : w // 2] = (0, 0, 255)  # top-left red
    bgr[: h // 2, w // 2:] = (0, 255, 0)  # top-right green
    bgr[h // 2:, : w // 2] = (255, 0, 0)  # bottom-left blue
    bgr[h // 2:, w // 2:] = (255, 255, 255)  # bottom-right white
    jpg = _jpeg_bytes(bgr, 100)
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(jpg)
    rotated = tmp_path / "rot6.jpg"
    rotated.write_bytes(jpg[:2] + exif_app1(6, endian) + jpg[2:])  # right after SOI

    stored = read_image(plain)
    assert stored.shape == (h, w, 3)
    shown = read_image(rotated)
    assert shown.shape == (w, h, 3)  # transposed
    # Orientation 6: the stored image is rotated 90 degrees clockwise for display.
    np.testing.assert_array_equal(shown, cv2.rotate(stored, cv2.ROTATE_90_CLOCKWISE))
    # As displayed: stored top-left (red) is now top-right, stored bottom-left (blue) top-left.
    assert shown[5, -5].astype(int).tolist() == pytest.approx([255, 0, 0], abs=8)
    assert shown[5, 5].astype(int).tolist() == pytest.approx([0, 0, 255], abs=8)
    assert shown[-5, 5].astype(int).tolist() == pytest.approx([255, 255, 255], abs=8)
    assert shown[-5, -5].astype(int).tolist() == pytest.approx([0, 255, 0], abs=8)


def test_exif_orientation_1_leaves_image_alone(tmp_path) -> None:
    jpg = _jpeg_bytes(_noise_image(), 90)
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(jpg)
    b.write_bytes(jpg[:2] + exif_app1(1, "MM") + jpg[2:])
    np.testing.assert_array_equal(read_image(a), read_image(b))


def test_read_image_real_300w_jpeg(data_root) -> None:
    f = _first_helen_pts(data_root).with_suffix(".jpg")
    img = read_image(f)
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    assert max(img.shape[:2]) <= 448
    ref = cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(img, ref)


#: EXIF orientation -> how the stored pixels are shown, in the words of the EXIF spec
#: (np.rot90 k=1 turns counter-clockwise, k=-1 clockwise).
_DISPLAY = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirror horizontal
    3: lambda a: np.rot90(a, 2),  # rotate 180
    4: lambda a: a[::-1],  # mirror vertical
    5: lambda a: np.rot90(a[:, ::-1], 1),  # mirror horizontal, rotate 270 CW
    6: lambda a: np.rot90(a, -1),  # rotate 90 CW
    7: lambda a: np.rot90(a[:, ::-1], -1),  # mirror horizontal, rotate 90 CW
    8: lambda a: np.rot90(a, 1),  # rotate 270 CW
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation(tmp_path, orientation: int) -> None:
    img = _noise_image(24, 40)
    jpg = _jpeg_bytes(img, 100)
    plain, rotated = tmp_path / "p.jpg", tmp_path / "r.jpg"
    plain.write_bytes(jpg)
    rotated.write_bytes(jpg[:2] + exif_app1(orientation, "MM") + jpg[2:])
    stored = read_image(plain)
    np.testing.assert_array_equal(read_image(rotated), _DISPLAY[orientation](stored))
