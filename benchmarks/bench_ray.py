"""Images per second of Ray Data inference (faceland.distributed) by number of workers.

    python benchmarks/bench_ray.py --json benchmarks/results/ray_scaling.json

The first 300 photos of 300W helen/testset, a local Ray instance with all CPUs, one
landmarker actor per worker (1 CPU and 1 ONNX Runtime thread each), batches of 16 images.
Ray's own start-up is excluded (a warm-up pass over 16 images first); each timed pass starts
its own actors, so their model loading is included.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from faceland.outputs import atomic_write_json

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import ray

    from faceland.distributed import predict_dataset
    from faceland.profiling import benchmark_metadata

    photos = sorted((REPO.parent / "shared/data/300w/helen/testset").glob("*.jpg"))[: args.n]
    ray.init(include_dashboard=False, log_to_driver=False)
    out = {**benchmark_metadata(shlex.join(["python", *sys.argv])), "images": len(photos),
           "ray": ray.__version__, "results": {}}
    try:
        for w in (int(x) for x in args.workers.split(",")):
            list(predict_dataset(photos[:16], batch_size=16, concurrency=w).iter_rows())
            t0 = time.perf_counter()
            rows = list(predict_dataset(photos, batch_size=16, concurrency=w).iter_rows())
            secs = time.perf_counter() - t0
            assert len(rows) == len(photos) and all(r["error"] is None for r in rows)
            out["results"][str(w)] = {"seconds": round(secs, 2),
                                      "images_per_s": round(len(photos) / secs, 1)}
            print(f"{w} worker(s): {secs:.2f} s, {len(photos) / secs:.1f} images/s", flush=True)
    finally:
        ray.shutdown()
    if args.json:
        atomic_write_json(args.json, out)
        print("wrote", args.json)


if __name__ == "__main__":
    main()
