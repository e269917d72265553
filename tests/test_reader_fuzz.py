"""Property-based tests of every reader: arbitrary bytes and mutated real files give a
:class:`~faceland.errors.FormatError` naming the file (or a valid result), never another
exception."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faceland.data.formats import (
    FormatError,
    read_asf,
    read_coco_keypoints,
    read_image,
    read_mtfl_csv,
    read_pts,
    read_wflw_list,
    read_ytf_csv,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: reader, file suffix, a real sample (relative to the shared data folder; for the mutations).
READERS: dict[str, tuple[Callable, str, str]] = {
    "pts": (read_pts, ".pts", "300w/helen/testset/296814969_3.pts"),
    "asf": (read_asf, ".asf", "imm/04-1m.asf"),
    "wflw": (read_wflw_list, ".txt", "annotations-only/wflw-test/list_98pt_test_blur.txt"),
    "coco": (read_coco_keypoints, ".json", "fixtures/mmpose-coco/wflw/test_wflw.json"),
    "ytf": (read_ytf_csv, ".csv", "ytf68/train/keypoints.csv"),
    "mtfl": (read_mtfl_csv, ".csv", "mtfl/test/landmarks5.csv"),
    "image": (read_image, ".jpg", "300w/helen/testset/296814969_3.jpg"),
}

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _check(reader: Callable, suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"fuzzed{suffix}"
        p.write_bytes(data)
        try:
            reader(p)
        except FormatError as e:
            assert "fuzzed" in str(e), str(e)


def _sample(rel: str, limit: int = 60_000) -> bytes:
    p = DATA / rel
    if not p.exists():
        pytest.skip(f"real sample {p} not available")
    return p.read_bytes()[:limit] if p.suffix == ".csv" else p.read_bytes()


@pytest.mark.parametrize("name", sorted(READERS))
@SETTINGS
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes(name: str, data: bytes) -> None:
    reader, suffix, _ = READERS[name]
    _check(reader, suffix, data)


@pytest.mark.parametrize("name", sorted(READERS))
@SETTINGS
@given(data=st.data())
def test_mutated_real_files(name: str, data) -> None:
    reader, suffix, rel = READERS[name]
    raw = bytearray(_sample(rel))
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete_line", "text"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "insert":
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.binary(min_size=1, max_size=64))
    elif kind == "delete_line":
        lines = bytes(raw).split(b"\n")
        del lines[data.draw(st.integers(0, len(lines) - 1))]
        raw = bytearray(b"\n".join(lines))
    else:  # replace a number-like token with text, or vice versa
        tok = data.draw(st.sampled_from([b"nan", b"inf", b"-", b"1e999", b"{", b"}", b",", b"x"]))
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = tok
    _check(reader, suffix, bytes(raw))


def test_mtfl_non_finite_value_is_named(tmp_path) -> None:
    p = tmp_path / "landmarks5.csv"
    p.write_text("image,x0,x1,x2,x3,x4,y0,y1,y2,y3,y4,gender,smile,glasses,pose\n"
                 "a.jpg,1,2,3,4,nan,6,7,8,9,10,1,2,2,3\n")
    with pytest.raises(FormatError, match=r"landmarks5.csv:2: non-finite"):
        read_mtfl_csv(p)


def test_empty_and_directory_inputs(tmp_path) -> None:
    for reader, suffix, _ in READERS.values():
        empty = tmp_path / f"empty{suffix}"
        empty.write_bytes(b"")
        try:
            reader(empty)
        except FormatError as e:
            assert "empty" in str(e)
        with pytest.raises(FormatError, match="nothere"):
            reader(tmp_path / f"nothere{suffix}")
