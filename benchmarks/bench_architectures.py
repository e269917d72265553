"""Sizing the default architecture: width, input size and head of the soft-argmax model.

    python benchmarks/bench_architectures.py [--repeats 200] [--json OUT]

For each candidate (``integral`` on MobileNetV2): parameters, GFLOPs per face (2 per
multiply-add, ``torch.utils.flop_counter``) and ms per face through ONNX Runtime (the uint8
graph of :func:`faceland.export.export_onnx`, batch 1, faceland's session settings), timed in
interleaved rounds with the PFLD re-creation of ``benchmarks/peers.py`` as the reference.
Random weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from faceland.export import export_onnx
from faceland.models import create_model
from faceland.outputs import atomic_write_json
from faceland.runtimes import OnnxLandmarkModel

REPO = Path(__file__).resolve().parents[1]
# peers.py: benchmark-only re-creations (PFLD, MobileNetV3) with random weights, not library code
sys.path.insert(0, str(REPO / "benchmarks"))
from peers import PFLDBackbone, peer_graph  # noqa: E402

from faceland.profiling import (  # noqa: E402
    benchmark_metadata,
    count_flops,
    interleaved_medians,
    parameter_count,
)

CANDIDATES = {
    "dense head, width 64, 128 px (previous default)": {"input_size": 128},
    "dw head, width 64, 128 px (new default)": {"input_size": 128, "refine": "dw"},
    "dw head, width 64, 112 px": {"input_size": 112, "refine": "dw"},
    "dw head, width 32, 112 px": {"input_size": 112, "refine": "dw", "width": 32},
    "dw head, width 64, 96 px": {"input_size": 96, "refine": "dw"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows, fns = {}, {}
    with tempfile.TemporaryDirectory() as d:
        for i, (name, kw) in enumerate(CANDIDATES.items()):
            m = create_model("integral", **kw).eval()
            n = m.input_size
            rows[name] = {"params_m": round(parameter_count(m) / 1e6, 2),
                          "gflops": round(count_flops(m) / 1e9, 3), "input": n}
            ort = OnnxLandmarkModel(export_onnx(m, Path(d) / f"c{i}.onnx"))
            crop = np.random.default_rng(0).integers(0, 256, (1, n, n, 3), dtype=np.uint8)
            fns[name] = lambda ort=ort, crop=crop: ort.predict_crops(crop)
        pfld = peer_graph(PFLDBackbone(), d, "pfld")
        x = np.random.default_rng(0).random((1, 3, 112, 112), dtype=np.float32)
        fns["PFLD 1x re-creation, 112 px (reference)"] = lambda: pfld.session.run(None,
                                                                                   {"input": x})
        ms = interleaved_medians(fns, args.repeats)
    ref = ms["PFLD 1x re-creation, 112 px (reference)"]
    for name, r in rows.items():
        r["ms_onnx"] = ms[name]
        r["ratio_vs_pfld"] = round(ms[name] / ref, 3)
    out = {**benchmark_metadata(shlex.join(["python", *sys.argv])), "pfld_ms": ref,
           "candidates": rows}
    print(json.dumps(out, indent=2))
    if args.json:
        atomic_write_json(args.json, out)


if __name__ == "__main__":
    main()
