"""Per-stage NME of a trained multi-stage model (RePFormer) on its own validation split.

    python scripts/stage_nme.py runs/ablations/repformer_components/pth_dlr/model.safetensors ...

RePFormer supervises every stage (stage 0: initial landmarks from the top memory; stages 1..S-1:
refinements). This prints, for each model, the IOD NME (%) of every stage's landmarks on the
validation faces carved from 300W train with the training run's own seed and fraction (read from
the model card), so that the refinement can be checked without touching the test images. The
NME is computed in the crop frame: the crop is a similarity of the image, so the IOD-normalised
error is the same as in the image frame.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader

from faceland.checkpoint import load_model
from faceland.data.crops import CropDataset
from faceland.metrics import nme
from faceland.schemes import get_scheme
from faceland.training import TrainConfig, train_val_records


def stage_nme(weights: str, data: str | None = None, batch_size: int = 32) -> list[float]:
    """IOD NME (%) of each stage of ``out["stages"]`` on the run's validation split.

    Raises:
        ValueError: the model has no ``"stages"`` output.
    """
    model, card = load_model(weights)
    tr = card["training"]
    cfg = TrainConfig(**{k: tr[k] for k in ("dataset", "split", "val_fraction", "seed",
                                             "max_images") if k in tr},
                      root=data or tr["root"])
    _, val = train_val_records(cfg)
    scheme = get_scheme(card["scheme"])
    ds = CropDataset(val, scheme, card["input_size"], card["enlarge"])
    preds: list[list[np.ndarray]] = []
    gts: list[np.ndarray] = []
    with torch.inference_mode():
        for batch in DataLoader(ds, batch_size=batch_size):
            out = model(batch["image"])
            if "stages" not in out:
                raise ValueError(f"{weights}: model {card['config']['name']!r} has no stages")
            preds.append([s.numpy() * card["input_size"] for s in out["stages"]])
            gts.append(batch["target"].numpy() * card["input_size"])
    gt = np.concatenate(gts)
    return [100 * float(nme(np.concatenate([p[s] for p in preds]), gt, scheme).mean())
            for s in range(len(preds[0]))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", nargs="+", help="model .safetensors files (card beside each)")
    ap.add_argument("--data", help="data root (default: the one in the model card)")
    args = ap.parse_args()
    rows = {w: stage_nme(w, args.data) for w in args.weights}
    n = max(len(v) for v in rows.values())
    print("| model | " + " | ".join(f"stage {s}" for s in range(n)) + " |")
    print("|---|" + "---|" * n)
    for w, v in rows.items():
        print(f"| `{w}` | " + " | ".join(f"{x:.2f}" for x in v) + " |")


if __name__ == "__main__":
    main()
