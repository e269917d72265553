"""Golden outputs: the shipped models' landmarks on the astronaut photo, to 1e-3 px.

The reference (``tests/data/golden_astronaut.json``) is written only by
``python scripts/make_golden.py``; a change that moves any point by more than 1e-3 px (weights,
model code, crop geometry, the exported ONNX graph) fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceland.data.formats import read_image
from faceland.inference import FaceLandmarker

REPO = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((REPO / "tests" / "data" / "golden_astronaut.json").read_text())
IMAGE = read_image(REPO / GOLDEN["image"])


def test_golden_file_covers_the_default_model() -> None:
    from faceland.checkpoint import DEFAULT_MODEL

    assert DEFAULT_MODEL in GOLDEN["models"]
    assert len(GOLDEN["models"]) >= 4


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
@pytest.mark.parametrize("name", sorted(GOLDEN["models"]))
def test_shipped_model_matches_its_golden_output(name: str, runtime: str) -> None:
    want = GOLDEN["models"][name]
    lm = FaceLandmarker(name, detector=None, runtime=runtime)
    pts, scores = lm.landmarks_from_boxes(IMAGE, [GOLDEN["box"]], return_scores=True)
    np.testing.assert_allclose(pts[0], np.array(want["landmarks"]), atol=1e-3, rtol=0)
    if want["point_scores"] is None:
        assert scores is None
    else:
        np.testing.assert_allclose(scores[0], np.array(want["point_scores"]), atol=1e-4, rtol=0)
