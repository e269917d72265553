"""The default network at smaller inputs, without retraining: accuracy per millisecond (issue 30).

    python benchmarks/bench_input_size.py --sizes 128,112,96 --json benchmarks/results/input_size.json

The default model's weights are fully convolutional, so the same network runs at 112 or 96 px;
this measures what that costs in accuracy on the **validation split of 300W train** (seed 0,
10 %: the split the default was selected on; the test images are not used) against the time of
its landmark path (crop + model + map back, ONNX Runtime, interleaved), to tell whether a faster
default needs retraining at the smaller size. Needs the train extra (the graphs are exported
from the weights).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

from faceland.outputs import atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    from faceland import FaceLandmarker
    from faceland.checkpoint import load_model
    from faceland.data.datasets import load_300w, split_train_val
    from faceland.evaluation import evaluate_records
    from faceland.export import export_onnx
    from faceland.models import create_model
    from faceland.profiling import benchmark_metadata, interleaved_medians, reference_photo
    from faceland.schemes import get_scheme

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,112,96")
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "300w"))
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    model, card = load_model("default")
    _, val = split_train_val(load_300w(args.root, "train"), 0.1, 0)
    photo = reference_photo()
    box = FaceLandmarker().predict(photo)[0].box
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        lms = {}
        for n in map(int, args.sizes.split(",")):
            cfg = {k: v for k, v in card.config.items() if k not in ("name", "pretrained")}
            cfg["input_size"] = n
            net = create_model(card.config["name"], pretrained=False, **cfg)
            net.load_state_dict(model.state_dict())
            path = Path(d) / f"default-{n}.onnx"
            export_onnx(net.eval(), path)
            atomic_write_text(path.with_suffix(".json"), json.dumps(
                {"config": {"name": card.config["name"], **cfg}, "enlarge": card.enlarge,
                 "scheme": card.scheme or "68"}))
            lms[n] = FaceLandmarker(path, detector=None)
        ms = interleaved_medians({n: (lambda lm=lm: lm.landmarks_from_boxes(photo, [box]))
                                  for n, lm in lms.items()}, args.repeats)
        for n, lm in lms.items():
            r = evaluate_records(lm, val, get_scheme("68"))
            rows[n] = {"val_nme_iod_percent": round(r.nme_iod, 3),
                       "landmark_path_ms": round(ms[n], 3)}
            print(n, rows[n], flush=True)
    doc = {**benchmark_metadata(shlex.join(["python", *sys.argv])), "validation_faces": len(val),
           "sizes": rows}
    if args.json:
        atomic_write_json(args.json, doc)


if __name__ == "__main__":
    main()
