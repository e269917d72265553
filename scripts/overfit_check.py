"""Can a model fit a fixed batch? A quick diagnosis for a model whose training stalls.

    python scripts/overfit_check.py configs/iact_300w_cpu.yaml --faces 8 --steps 76 \\
        --set loss_weight=0
    python scripts/overfit_check.py configs/iact_300w_cpu.yaml --faces 8 --steps 76 \\
        --set loss_weight=10

Takes the first ``--faces`` faces of the config's training split (unaugmented gt crops at the
config's input size), builds the config's model with ``--set KEY=VALUE`` overrides of its
``model_args`` (``pretrained`` dropped: backbones start from random weights, so the check runs
offline and tests the head and loss alone), and trains it on that one batch with Adam at the
config's ``lr`` (1 torch thread, seed 0). Every 25 steps it prints the training loss, the mean
point error on the batch in crop pixels (eval mode) and, for heatmap models, the mean heatmap
peak. A healthy model drives the error toward 0 within a few hundred steps; one whose error
stays near the mean-shape level (or whose heatmap peaks fall) has a loss or wiring problem. This
is a diagnosis, not a benchmark: it uses training faces only.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import yaml

from faceland.data.crops import CropDataset
from faceland.models import create_model
from faceland.schemes import get_scheme
from faceland.training import load_config, train_val_records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--faces", type=int, default=8)
    ap.add_argument("--steps", type=int, default=76)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one of the config's model_args")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = load_config(args.config)
    model_args = dict(cfg.model_args)
    for kv in args.set:
        key, _, val = kv.partition("=")
        model_args[key] = yaml.safe_load(val)
    train, _ = train_val_records(cfg)
    n = cfg.input_size
    ds = CropDataset(train[: args.faces], get_scheme(cfg.scheme), n, cfg.enlarge)
    batch = [ds[i] for i in range(len(ds))]
    x = torch.stack([b["image"] for b in batch])
    y = torch.stack([b["target"] for b in batch])
    model = create_model(cfg.model, num_points=y.shape[1], input_size=n,
                         **{k: v for k, v in model_args.items() if k != "pretrained"})
    opt = torch.optim.Adam(model.parameters(), cfg.lr)
    t0 = time.time()
    for step in range(args.steps):
        model.train()
        loss = model.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == args.steps - 1:
            model.eval()
            with torch.no_grad():
                out = model(x)
            err = float((out["coords"] - y).norm(dim=-1).mean()) * n
            peak = (f" heatmap peak {float(out['heatmaps'].amax((2, 3)).mean()):.3f}"
                    if "heatmaps" in out else "")
            print(f"step {step:4d} loss {loss.item():.4f} error {err:6.2f} px (of {n}){peak} "
                  f"[{time.time() - t0:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
