"""Distributed inference over image collections with Ray Data (optional: ``pip install
faceland[ray]``).

>>> import ray
>>> from faceland.distributed import predict_dataset
>>> ray.init()                                        # local; on a cluster: ray.init("auto")
>>> ds = predict_dataset(paths, concurrency=4)        # a lazy ray.data.Dataset
>>> ds.write_json("out/")                             # or: for row in ds.iter_rows(): ...

Each Ray worker holds one :class:`faceland.FaceLandmarker` (an actor: the model and detector
load once per worker, not per batch) and maps batches of image paths to results with
:meth:`~faceland.FaceLandmarker.predict_batch`. Rows are ``{"path": str, "result": str | None,
"error": str | None}``: ``result`` is the JSON that ``faceland predict`` writes for the image
(landmarks in image pixels, 0-based pixel centres), ``error`` the reason an unreadable image was
skipped. The same code runs on a laptop and on a cluster; only ``ray.init`` changes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["predict_dataset", "LandmarkerActor"]


class LandmarkerActor:
    """Ray Data ``map_batches`` callable: loads a landmarker once, then maps
    ``{"path": array of str}`` batches to ``{"path", "result", "error"}``.

    Args:
        model, detector, threads: as :class:`faceland.FaceLandmarker` (``threads``: ONNX
            Runtime threads per worker; match it to ``num_cpus`` per worker).
    """

    def __init__(self, model: str | None = None, detector: str = "default",
                 threads: int | None = 1) -> None:
        from faceland.inference import FaceLandmarker

        self.landmarker = FaceLandmarker(model, detector=detector, threads=threads)

    def __call__(self, batch: dict) -> dict:
        from faceland.data.formats import FormatError, read_image
        from faceland.inference import result_json

        paths = [str(p) for p in batch["path"]]
        images, errors = [], []
        for p in paths:
            try:
                images.append(read_image(p))
                errors.append(None)
            except FormatError as e:  # reported in the row, never raised: the job goes on
                images.append(None)
                errors.append(str(e))
        ok = [i for i, im in enumerate(images) if im is not None]
        faces = self.landmarker.predict_batch([images[i] for i in ok]) if ok else []
        results: list[str | None] = [None] * len(paths)
        for i, f in zip(ok, faces, strict=True):
            results[i] = json.dumps(result_json(paths[i], images[i], f))
        return {"path": paths, "result": results, "error": errors}


def predict_dataset(paths: Sequence[str | Path], model: str | None = None,
                    detector: str = "default", batch_size: int = 16, concurrency: int = 2,
                    num_cpus: float = 1.0):
    """Landmarks for every image path, as a lazy Ray Dataset.

    Args:
        paths: image files (readable from every Ray worker: a shared file system or object
            store mount on a cluster).
        model: weights or model name (default: the shipped default).
        detector: face detector name.
        batch_size: images per ``map_batches`` call (their faces share one model call).
        concurrency: number of landmarker actors (workers).
        num_cpus: CPUs reserved per actor (its ONNX Runtime thread count).

    Returns:
        A ``ray.data.Dataset`` of rows ``{"path", "result", "error"}`` (see the module
        docstring); nothing runs until it is consumed.

    Raises:
        ImportError: Ray Data is not installed (``pip install faceland[ray]``).
    """
    try:
        import ray.data
    except ImportError:
        raise ImportError("faceland.distributed needs Ray Data: pip install 'faceland[ray]'") \
            from None
    ds = ray.data.from_items([{"path": str(p)} for p in paths])
    threads = max(1, int(num_cpus))
    return ds.map_batches(LandmarkerActor, batch_size=batch_size, concurrency=concurrency,
                          num_cpus=num_cpus,
                          fn_constructor_kwargs={"model": model, "detector": detector,
                                                 "threads": threads})
