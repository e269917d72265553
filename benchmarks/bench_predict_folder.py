"""Images per second and peak memory of ``faceland predict`` on a folder, against an earlier
revision of faceland in the same run.

    python benchmarks/bench_predict_folder.py --baseline-rev f577b32 \\
        --json benchmarks/results/predict_folder.json

* Throughput: the same 300 real photos (the first 300 of 300W ``helen/testset``, linked into a
  temporary folder; nothing is copied into the repository), ``faceland predict DIR --out OUT
  --no-overlay``, end to end as a user runs it (start-up, model load, decode, detection,
  landmarks, JSON writes), once with the baseline revision (checked out with ``git worktree``)
  and once with this checkout; wall time and peak resident memory (``/usr/bin/time``).
* Flat memory: this checkout on ``--flat`` MTFL photos (train and test images, wild faces) with
  ``--jsonl``, peak resident memory against the 300-photo run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faceland.outputs import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def link_folder(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        (folder / f"{i:06d}{f.suffix.lower()}").symlink_to(f.resolve())
    return folder


def run(src: Path, args: list[str]) -> dict:
    """``python -m faceland.cli predict ...`` with ``src`` first on the path: wall s, peak MB."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "faceland.cli",
                        "predict", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        raise RuntimeError(p.stderr[-2000:])
    peak_kb = int(p.stderr.strip().splitlines()[-1])
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(peak_kb / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-rev", default="f577b32")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--flat", type=int, default=10000, help="MTFL photos for the memory run")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from faceland.profiling import benchmark_metadata

    photos = sorted((DATA / "300w" / "helen" / "testset").glob("*.jpg"))[: args.n]
    out: dict = {**benchmark_metadata(shlex.join(["python", *sys.argv])),
                 "images": f"first {len(photos)} of 300W helen/testset",
                 "baseline_rev": args.baseline_rev}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = link_folder(photos, tmp / "photos")
        base = tmp / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline_rev],
                       cwd=REPO, check=True, capture_output=True)
        try:
            common = [str(folder), "--no-overlay"]
            b = run(base / "src", [*common, "--out", str(tmp / "out_base")])
            n = run(REPO / "src", [*common, "--out", str(tmp / "out_new"), "--quiet"])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=REPO,
                           check=True, capture_output=True)
        for r in (b, n):
            r["images_per_s"] = round(len(photos) / r["wall_s"], 2)
        out["baseline"], out["this"] = b, n
        out["speedup"] = round(b["wall_s"] / n["wall_s"], 2)
        print(f"{len(photos)} photos: baseline {b['wall_s']:.2f} s ({b['images_per_s']} img/s, "
              f"{b['peak_rss_mb']} MB), this {n['wall_s']:.2f} s ({n['images_per_s']} img/s, "
              f"{n['peak_rss_mb']} MB): x{out['speedup']}", flush=True)
        if args.flat:
            mtfl = sorted((DATA / "mtfl").rglob("*.jpg"))[: args.flat]
            big = link_folder(mtfl, tmp / "mtfl")
            f = run(REPO / "src", [str(big), "--no-overlay", "--quiet", "--out",
                                   str(tmp / "out_mtfl"), "--jsonl", str(tmp / "mtfl.jsonl")])
            f["images"] = len(mtfl)
            f["images_per_s"] = round(len(mtfl) / f["wall_s"], 2)
            out["flat_memory"] = f
            print(f"{len(mtfl)} MTFL photos: {f['wall_s']:.1f} s ({f['images_per_s']} img/s), "
                  f"peak {f['peak_rss_mb']} MB (300 photos: {n['peak_rss_mb']} MB)")
    if args.json:
        atomic_write_json(args.json, out)
        print("wrote", args.json)


if __name__ == "__main__":
    main()
