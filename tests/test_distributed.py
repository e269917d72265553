"""Distributed inference with Ray Data on a local 2-CPU Ray instance (skipped without Ray)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

ASTRO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"


@pytest.mark.slow
def test_ray_data_maps_the_landmarker_over_paths(tmp_path) -> None:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from faceland.data.formats import read_image
    from faceland.distributed import predict_dataset
    from faceland.inference import FaceLandmarker

    paths = []
    for k in range(5):
        p = tmp_path / f"a{k}.jpg"
        shutil.copy(ASTRO, p)
        paths.append(p)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    paths.append(bad)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = list(predict_dataset(paths, batch_size=2, concurrency=2).iter_rows())
    finally:
        ray.shutdown()
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == {str(p) for p in paths}
    assert by_path[str(bad)]["result"] is None and "broken.jpg" in by_path[str(bad)]["error"]
    want = FaceLandmarker().predict(read_image(ASTRO))[0].landmarks
    for p in paths[:-1]:
        doc = json.loads(by_path[str(p)]["result"])
        assert by_path[str(p)]["error"] is None and len(doc["faces"]) == 1
        np.testing.assert_allclose(np.array(doc["faces"][0]["landmarks"]), want, atol=1e-2)
