"""300W / IMM loaders on the real data, and the train/validation split."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from faceland.data.datasets import FaceRecord, load_300w, load_imm, split_train_val


@pytest.fixture(scope="module")
def w300(data_root):
    return data_root / "300w"


def test_load_300w_common(w300) -> None:
    recs = load_300w(w300, "common")
    assert len(recs) == 554
    keys = [r.key for r in recs]
    assert keys == sorted(keys) and len(set(keys)) == 554
    assert sum(k.startswith("helen/testset/") for k in keys) == 330
    assert sum(k.startswith("lfpw/testset/") for k in keys) == 224
    for r in recs:
        assert r.points.shape == (68, 2)
        assert r.image.exists() and r.image.suffix == ".jpg"
        assert r.detector_box is not None and r.detector_box.shape == (4,)
        x0, y0, x1, y1 = r.detector_box
        assert x1 > x0 and y1 > y0


def test_load_300w_detector_boxes_are_shifted_to_pixel_centres(w300) -> None:
    import json

    boxes = json.loads((w300 / "detector_boxes.json").read_text())
    r = load_300w(w300, "common")[0]
    np.testing.assert_allclose(r.detector_box, np.asarray(boxes[r.key]) - 0.5)


def test_load_300w_train_warns_about_missing_images(w300, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="faceland.data.datasets"):
        recs = load_300w(w300, "train")
    assert len(recs) == 2012
    assert any("2012 of 3148" in m for m in caplog.messages)
    with pytest.raises(FileNotFoundError, match="2012 of 3148"):
        load_300w(w300, "train", strict=True)


def test_load_300w_common_is_complete_so_no_warning(w300, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="faceland.data.datasets"):
        load_300w(w300, "common", strict=True)
    assert not caplog.messages


def test_load_300w_challenge_missing_raises_with_counts(w300) -> None:
    with pytest.raises(FileNotFoundError) as e:
        load_300w(w300, "challenge")
    msg = str(e.value)
    assert "ibug: 0" in msg and "135" in msg


def test_load_300w_full_is_common_only_here(w300, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="faceland.data.datasets"):
        recs = load_300w(w300, "full")
    assert len(recs) == 554
    assert any("554 of 689" in m for m in caplog.messages)


def test_load_300w_unknown_split(tmp_path) -> None:
    with pytest.raises(KeyError, match="unknown 300W split"):
        load_300w(tmp_path, "validation")


def _fake_records(n: int, groups: int | None = None) -> list[FaceRecord]:
    return [FaceRecord(image=f"img{i}.jpg", points=np.zeros((68, 2)), key=f"k{i:03d}",
                       meta={"person": f"p{i % groups}"} if groups else {}) for i in range(n)]


def test_split_train_val_deterministic_disjoint_complete() -> None:
    recs = _fake_records(100)
    tr, va = split_train_val(recs, 0.1, seed=0)
    tr2, va2 = split_train_val(recs, 0.1, seed=0)
    assert [r.key for r in tr] == [r.key for r in tr2]
    assert [r.key for r in va] == [r.key for r in va2]
    assert len(va) == 10 and len(tr) == 90
    assert {r.key for r in tr}.isdisjoint({r.key for r in va})
    assert {r.key for r in tr} | {r.key for r in va} == {r.key for r in recs}
    # another seed gives another split; the input order does not matter
    _, va3 = split_train_val(recs, 0.1, seed=1)
    assert {r.key for r in va3} != {r.key for r in va}
    _, va4 = split_train_val(list(reversed(recs)), 0.1, seed=0)
    assert {r.key for r in va4} == {r.key for r in va}


def test_split_train_val_respects_groups() -> None:
    recs = _fake_records(120, groups=12)
    tr, va = split_train_val(recs, 0.25, seed=5, group=lambda r: r.meta["person"])
    tr_groups = {r.meta["person"] for r in tr}
    va_groups = {r.meta["person"] for r in va}
    assert tr_groups.isdisjoint(va_groups)
    assert len(va_groups) == 3 and len(va) == 30
    assert len(tr) + len(va) == 120


def test_load_imm(data_root) -> None:
    recs = load_imm(data_root / "imm")
    assert len(recs) == 37
    persons = [r.meta["person"] for r in recs]
    assert len(set(persons)) == 37
    for r in recs:
        assert r.points.shape == (58, 2)
        assert r.image.exists()
        assert r.key.startswith(r.meta["person"] + "-") and r.meta["person"].isdigit()


def test_load_imm_empty_folder(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="IMM"):
        load_imm(tmp_path)


def test_imm_split_by_person(data_root) -> None:
    from faceland.data.datasets import load_imm

    train = load_imm(data_root / "imm", "train")
    test = load_imm(data_root / "imm", "test")
    assert len(train) + len(test) == len(load_imm(data_root / "imm")) == 37
    assert {r.meta["person"] for r in test} == {str(p) for p in range(33, 41)}
    assert max(int(r.meta["person"]) for r in train) <= 32
    with pytest.raises(KeyError, match="IMM split"):
        load_imm(data_root / "imm", "val")


def test_dataset_table_loads_every_real_set(data_root) -> None:
    from faceland.data.datasets import DATASETS, load_dataset
    from faceland.errors import UnknownNameError

    recs, scheme = load_dataset("300w", data_root / "300w", "common")
    assert (len(recs), scheme) == (554, "68")
    imm, scheme = load_dataset("imm", data_root / "imm", "all")
    assert (len(imm), scheme) == (37, "58")  # the IMM files present here (test_load_imm)
    assert DATASETS["imm"].group(imm[0]) == imm[0].meta["person"]
    recs, scheme = load_dataset("ytf", data_root / "ytf68" / "train")
    assert scheme == "68" and len(recs) == 3462
    cofw = data_root / "fixtures" / "mmpose-coco" / "cofw"
    ann = next(cofw.glob("*.json"))
    recs, scheme = load_dataset("coco", cofw, annotations=ann)
    assert scheme == "29" and len(recs) >= 1
    with pytest.raises(ValueError, match="annotation"):
        load_dataset("coco", cofw)
    with pytest.raises(UnknownNameError, match="known: 300w"):
        load_dataset("celeba", data_root)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_dataset("300w", data_root / "nowhere")
