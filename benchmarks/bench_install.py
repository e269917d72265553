"""Install size and time of faceland's core (issue 30, goal 1), measured in fresh venvs.

For each install kind it makes a new venv, times ``pip install`` from the package mirror, sums
the venv's size on disk, checks whether torch is importable, and runs the README's photo command
(``faceland predict assets/astronaut.jpg``) inside it.

    python benchmarks/bench_install.py                 # core only
    python benchmarks/bench_install.py --full          # also `.[train]` with the pinned torch

Writes benchmarks/results/install.json (with the command, CPU model and date).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faceland.outputs import atomic_write_json
from faceland.profiling import benchmark_metadata

REPO = Path(__file__).resolve().parents[1]

KINDS = {
    "core": [str(REPO)],
    "train": ["torch==2.14.1", "torchvision==0.29.1", f"{REPO}[train]"],
}


def _size_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total / 2**20


def measure(kind: str, workdir: Path) -> dict:
    venv = workdir / kind
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    base_mb = _size_mb(venv)  # pip + setuptools of an empty venv
    t0 = time.perf_counter()
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *KINDS[kind]], check=True, capture_output=True)
    secs = time.perf_counter() - t0
    has_torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0
    out = workdir / f"out-{kind}"
    t1 = time.perf_counter()
    r = subprocess.run([str(venv / "bin" / "faceland"), "predict", str(REPO / "assets" /
                        "astronaut.jpg"), "--out", str(out)], capture_output=True, text=True,
                       cwd=workdir)
    first_s = time.perf_counter() - t1
    faces = len(json.loads((out / "astronaut.json").read_text())["faces"]) if r.returncode == 0 \
        else None
    return {"install_s": round(secs, 1), "venv_mb": round(_size_mb(venv), 1),
            "empty_venv_mb": round(base_mb, 1), "torch_importable": has_torch,
            "readme_photo_rc": r.returncode, "readme_photo_faces": faces,
            "readme_photo_wall_s": round(first_s, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also measure the train extra")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "install.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="faceland-install-"))
    try:
        res = {k: measure(k, work) for k in (["core", "train"] if args.full else ["core"])}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {**benchmark_metadata(shlex.join(["python", *sys.argv])), "installs": res}
    atomic_write_json(args.out, doc)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
