"""ONNX Runtime thread spinning on and off: each session alone, and the whole photo pipeline.

    python benchmarks/bench_threads.py [--repeats 200] [--json OUT]

Times, for ``session.intra_op.allow_spinning`` off (faceland's setting,
:data:`faceland.runtimes.ALLOW_SPINNING`) and on, on a 640 x 480 photo with one face (the
astronaut, decode excluded): the detector alone, the landmark path alone, and
:meth:`faceland.FaceLandmarker.predict` (detector, then landmarks). Each setting runs in a fresh
process so that the other setting's threads do not linger.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from faceland.outputs import atomic_write_json

REPO = Path(__file__).resolve().parents[1]


def measure(repeats: int) -> dict:
    """Median ms of detect / landmarks / predict in this process's spinning setting."""
    import cv2
    import numpy as np

    from faceland import FaceLandmarker, read_image
    from faceland.profiling import interleaved_medians

    photo = read_image(REPO / "assets" / "astronaut.jpg")
    canvas = np.zeros((480, 640, 3), np.uint8)
    canvas[:, 64:576] = cv2.resize(photo, (512, 480), interpolation=cv2.INTER_AREA)
    lm = FaceLandmarker()
    box = lm.predict(canvas)[0].box
    return interleaved_medians({
        "detect_ms": lambda: lm.detect(canvas),
        "landmarks_ms": lambda: lm.landmarks_from_boxes(canvas, [box], "detector"),
        "predict_ms": lambda: lm.predict(canvas)}, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import faceland.runtimes

        faceland.runtimes.ALLOW_SPINNING = args.child == "on"
        print(json.dumps(measure(args.repeats)))
        return
    res = {}
    for setting in ("off", "on", "off", "on"):  # two rounds each, alternating
        out = subprocess.run([sys.executable, __file__, "--child", setting, "--repeats",
                              str(args.repeats)], capture_output=True, text=True, check=True)
        res.setdefault(f"spinning_{setting}", []).append(json.loads(out.stdout.splitlines()[-1]))
    from faceland.profiling import benchmark_metadata

    doc = {**benchmark_metadata(shlex.join(["python", *sys.argv])), "runs": res}
    print(json.dumps(doc, indent=2))
    if args.json:
        atomic_write_json(args.json, doc)


if __name__ == "__main__":
    main()
