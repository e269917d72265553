"""Training throughput on this CPU: fp32 against bf16 autocast (``precision: bf16-mixed``).

    python benchmarks/bench_training.py [--steps 12] [--json OUT]

One optimizer step (forward, weighted L1 loss, backward, AdamW) of the default architecture
(``integral``, MobileNetV2, depthwise-separable head, 128 px, channels-last), batch 32, random
input; the two precisions are timed in interleaved steps; images per second from the median
step. The data loader is not included (it runs in its own process during training).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from faceland.losses import l1_loss
from faceland.models import create_model
from faceland.outputs import atomic_write_json
from faceland.profiling import benchmark_metadata


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = create_model("integral", input_size=128, refine="dw").to(
        memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    x = torch.rand(args.batch, 3, 128, 128).to(memory_format=torch.channels_last)
    y = torch.rand(args.batch, 68, 2)
    times: dict[str, list[float]] = {"fp32": [], "bf16-mixed": []}
    for step in range(args.steps + 2):
        for mode in times:
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
                loss = l1_loss(model(x)["coords"], y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step >= 2:  # warm-up
                times[mode].append(time.perf_counter() - t0)
    ips = {k: round(args.batch / statistics.median(v), 1) for k, v in times.items()}
    out = {**benchmark_metadata(shlex.join(["python", *sys.argv])),
           "avx512_bf16": "avx512_bf16" in Path("/proc/cpuinfo").read_text()
           if Path("/proc/cpuinfo").exists() else None,
           "images_per_second": ips,
           "bf16_speedup": round(ips["bf16-mixed"] / ips["fp32"], 2)}
    print(json.dumps(out, indent=2))
    if args.json:
        atomic_write_json(args.json, out)


if __name__ == "__main__":
    main()
