"""Inference speed and memory of landmark systems and face detectors on this machine.

    python benchmarks/bench_inference.py [--model default] [--threads 2] [--repeats 30]
        [--compile] [--dlib] [--json benchmarks/results/inference.json]

Reports, for the landmark model: median milliseconds per face (crops already cut) with eager
PyTorch and ONNX Runtime at batch 1 and 32 (and ``torch.compile`` with ``--compile``), peak
resident memory of the process, parameters and FLOPs per face; for the detectors: milliseconds per
image on the 512 x 512 astronaut photo; end to end ``FaceLandmarker.predict`` per image (decode
excluded); with ``--dlib``, dlib's 68-point predictor per face and its HOG detector per image.
Numbers depend on the machine and its load: run on an idle machine and report the command with
the numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from faceland.checkpoint import load_model
from faceland.data.formats import read_image
from faceland.detectors import create_detector
from faceland.export import export_onnx
from faceland.inference import FaceLandmarker
from faceland.outputs import atomic_write_json
from faceland.profiling import benchmark_metadata, count_flops, median_ms, parameter_count
from faceland.runtimes import OnnxLandmarkModel

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--dlib", action="store_true", help="also time dlib (faceland[dlib])")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, card = load_model(args.model)
    n = model.input_size
    res: dict = {**benchmark_metadata(shlex.join(["python", *sys.argv])),
                 "model": card.get("name"), "input_size": n, "threads": args.threads,
                 "params_M": parameter_count(model) / 1e6,
                 "gflops_per_face": count_flops(model, n) / 1e9,
                 "torch": torch.__version__}
    compiled = torch.compile(model.predict) if args.compile else None
    with tempfile.TemporaryDirectory() as d:
        onnx = OnnxLandmarkModel(export_onnx(model, Path(d) / "m.onnx"), threads=args.threads)
        for batch in (1, 32):
            x = torch.rand(batch, 3, n, n)
            reps = args.repeats if batch == 1 else max(3, args.repeats // 5)
            res[f"eager_ms_per_face_b{batch}"] = median_ms(
                lambda x=x: model.predict(x), reps) / batch
            res[f"onnx_ms_per_face_b{batch}"] = median_ms(
                lambda x=x: onnx.predict(x), reps) / batch
            if compiled is not None:
                res[f"compile_ms_per_face_b{batch}"] = median_ms(
                    lambda x=x: compiled(x), reps) / batch
    img = read_image(REPO / "assets" / "astronaut.jpg")
    det = create_detector()
    res["res10_detector_ms_per_image_512px"] = median_ms(lambda: det.detect(img), args.repeats)
    lm = FaceLandmarker(model, detector=det)
    res["predict_ms_per_image_512px_1face"] = median_ms(lambda: lm.predict(img), args.repeats)
    if args.dlib:
        from faceland.external import create_external

        dl = create_external("dlib")
        box = [dl.detect(img)[0].box]
        res["dlib_ms_per_face"] = median_ms(
            lambda: dl.landmarks_from_boxes(img, box, "detector"), args.repeats)
        res["dlib_hog_detector_ms_per_image_512px"] = median_ms(lambda: dl.detect(img),
                                                                  args.repeats)
    res["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {k: round(v, 3) if isinstance(v, float | np.floating) else v for k, v in res.items()}
    print(json.dumps(out, indent=2))
    if args.json:
        atomic_write_json(args.json, out)


if __name__ == "__main__":
    main()
