"""Inference speed of a landmark model and the face detector on this machine.

    python benchmarks/bench_inference.py [--model default] [--threads 2] [--repeats 30]

Reports the median milliseconds per face of the landmark model (eager PyTorch and ONNX Runtime,
batch 1 and 32, crops already cut), the detector's milliseconds per image on the astronaut photo,
and the full `FaceLandmarker.predict` time per image (decode excluded). Numbers depend on the
machine and its load: run it on an idle machine and report the command with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from faceland.checkpoint import load_model
from faceland.data.formats import read_image
from faceland.detectors import create_detector
from faceland.export import OnnxLandmarkModel, export_onnx
from faceland.inference import FaceLandmarker

REPO = Path(__file__).resolve().parents[1]


def _median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, card = load_model(args.model)
    n = model.input_size
    res: dict = {"model": card.get("name"), "input_size": n, "threads": args.threads,
                 "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
                 "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores",
                 "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as d:
        onnx = OnnxLandmarkModel(export_onnx(model, Path(d) / "m.onnx"), threads=args.threads)
        for batch in (1, 32):
            x = torch.rand(batch, 3, n, n)
            reps = args.repeats if batch == 1 else max(3, args.repeats // 5)
            res[f"eager_ms_per_face_b{batch}"] = _median_ms(lambda x=x: model.predict(x), reps) / batch
            res[f"onnx_ms_per_face_b{batch}"] = _median_ms(lambda x=x: onnx.predict(x), reps) / batch
    img = read_image(REPO / "assets" / "astronaut.jpg")
    det = create_detector()
    res["detector_ms_per_image_512px"] = _median_ms(lambda: det.detect(img), args.repeats)
    lm = FaceLandmarker(model, detector=det)
    res["predict_ms_per_image_512px_1face"] = _median_ms(lambda: lm.predict(img), args.repeats)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()},
                     indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
