"""Write docs/results.md from the saved evaluation JSON files (never typed by hand).

    python scripts/make_results.py [--results docs/results] [--out docs/results.md] [--rerun]

``--rerun`` first runs again every ``faceland evaluate`` command recorded in the JSON files (from
the repository root, with the data at ``../shared/data``), so that this one command reproduces the
whole table on a machine with the data; rows whose system is not installed (dlib:
``pip install -e ".[dlib]"``) are reported and keep their previous JSON. MediaPipe rows are
re-scored from their stored predictions (``scripts/mediapipe_predictions.py`` makes those, in an
environment of its own).

Every row comes from one `faceland evaluate` JSON (its protocol card gives the command, split,
box source, input size, flip TTA, weights hash, faceland version and hardware); the CED plots
saved beside the JSON files are linked.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _ced_link(result: Path, folder: str) -> str:
    """Markdown link to the CED plot saved beside a result JSON (``folder`` relative to docs/)."""
    ced = result.with_suffix(".png")
    return f"[plot]({folder}/{ced.name})" if ced.exists() else "-"


def rerun(results: Path) -> list[str]:
    """Run each result's recorded ``faceland evaluate`` command again; returns the failures."""
    failed = []
    for f in sorted(results.glob("*.json")):
        if f.name.endswith(".predictions.json"):
            continue
        cmd = json.loads(f.read_text()).get("protocol", {}).get("command")
        if not cmd:
            continue
        print(f"$ {cmd}", flush=True)
        if subprocess.run(shlex.split(cmd), cwd=REPO).returncode != 0:
            failed.append(cmd)
    return failed


def ablation_tables(folder: Path, study: str | None = None) -> list[str]:
    """Markdown tables of the ablation studies (or of one ``study``) from
    ``docs/results/ablations/*.json``.

    Each JSON is a ``faceland evaluate`` result with an ``ablation`` block added by
    ``scripts/ablations.py`` (study, row, overrides, training summary).
    """
    studies: dict[str, list[tuple[dict, Path]]] = {}
    for f in sorted(folder.glob("*.json")):
        r = json.loads(f.read_text())
        if "ablation" in r and study in (None, r["ablation"]["study"]):
            studies.setdefault(r["ablation"]["study"], []).append((r, f))
    if not studies:
        return []
    out = [
        "",
        "## Ablations",
        "",
        "Written by `python scripts/ablations.py STUDY`: each row trains the study's CPU config",
        "with the row's overrides for the same wall-time budget on the same 2 CPU cores (cosine",
        "schedule annealed over the budget, warm-up capped at 500 steps, model selection on the",
        "validation split carved from 300W train), then is evaluated once on 300W common with gt",
        "boxes. Equal budget, not equal epochs: a cheaper variant fits more epochs in the same",
        "minutes (listed). Reduced budgets rank design choices; they are not converged numbers.",
    ]
    for study, rows in studies.items():
        a0 = rows[0][0]["ablation"]
        t0 = a0["training"]
        out += [
            "",
            f"### `{study}`",
            "",
            f"Base config `{a0['base_config']}`, {t0['max_time_minutes']:g} min per row, "
            f"{t0['input_size']} px input, {t0['n_train']} train / {t0['n_val']} validation "
            f"faces (300W train), batch {t0['batch_size']}, {t0['optimizer']} lr {t0['lr']:g}; "
            f"{t0['hardware']}.",
            "",
            "| row | overrides | epochs | best val NME IOD | NME IOD | NME IPD | FR@0.1 | AUC@0.1 "
            "| weights | command | CED |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r, f in rows:
            a, t = r["ablation"], r["ablation"]["training"]
            over = f"`{json.dumps(a['overrides'])}`" if a["overrides"] else "`(base config)`"
            src = f  # a shared run's CED plot is its source run's
            if a.get("same_run_as"):
                over += f" (same run as `{a['same_run_as']}`)"
                src = f.with_name(a["same_run_as"].replace("/", "-") + ".json")
            out.append(
                f"| {a['row']} | {over} | {t['epochs_done']} | "
                f"{_fmt(t['best_val_nme_iod_percent'], '.2f')} | {_fmt(r.get('nme_iod'), '.2f')} | "
                f"{_fmt(r.get('nme_ipd'), '.2f')} | {_fmt(r.get('fr'), '.2f')} | "
                f"{_fmt(r.get('auc'), '.4f')} | `{r['protocol'].get('weights_sha256')}` | "
                f"`{a['command']}` | {_ced_link(src, 'results/ablations')} |")
    return out


def training_time_table(results: Path) -> list[str]:
    """Markdown table: 300W common (gt boxes, no TTA) accuracy against training wall time.

    One row per result whose JSON says how its weights were trained: the ``training`` block of
    the protocol card (copied from the model card by ``faceland evaluate``) for full runs, the
    ``ablation`` block for ablation rows (a row sharing another row's run is listed once).
    """
    rows = []
    for f in sorted(results.glob("*.json")) + sorted((results / "ablations").glob("*.json")):
        if f.name.endswith(".predictions.json"):
            continue
        r = json.loads(f.read_text())
        p = r.get("protocol", {})
        if (p.get("dataset"), p.get("split"), p.get("box_source"), p.get("flip_test")) != (
                "300w", "common", "gt", False):
            continue
        if "ablation" in r:
            a = r["ablation"]
            if a.get("same_run_as"):
                continue
            t, name = a["training"], f"{a['study']} / {a['row']}"
            base = yaml.safe_load((REPO / a["base_config"]).read_text())
            arch, cmd = base["model"], a["command"]
        elif p.get("training"):
            t, name = p["training"], p.get("model")
            arch, cmd = t.get("model"), t.get("command") or "-"
        else:
            continue
        minutes = t.get("train_wall_minutes_total")
        rows.append((r.get("nme_iod"), name, arch, r, t, minutes, cmd))
    if not rows:
        return []
    splits = sorted({f"{t.get('n_train')} train / {t.get('n_val')} validation"
                     for *_, t, _, _ in rows})
    out = [
        "",
        "## Accuracy per training time",
        "",
        "Every model trained here, full runs and ablation rows, on 300W common (554 images, gt",
        "boxes x1.25, no TTA), sorted by NME; trained on the 300W train subset",
        f"({'; '.join(splits)} faces, selection on validation) on the CPU machine named in each",
        "row. Training minutes are the run's wall time (all its resumes together).",
        "",
        "| model | architecture | NME IOD | FR@0.1 | AUC@0.1 | epochs | train min | best val NME "
        "| hardware | training command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for nme_iod, name, arch, r, t, minutes, cmd in sorted(rows, key=lambda x: x[0]):
        out.append(
            f"| {name} | `{arch}` | {_fmt(nme_iod, '.2f')} | {_fmt(r.get('fr'), '.2f')} | "
            f"{_fmt(r.get('auc'), '.4f')} | {t.get('epochs_done')} | {_fmt(minutes, '.0f')} | "
            f"{_fmt(t.get('best_val_nme_iod_percent'), '.2f')} | {t.get('hardware') or '-'} | "
            f"`{cmd}` |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "results")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    ap.add_argument("--rerun", action="store_true",
                    help="run every recorded evaluate command again before writing the table")
    args = ap.parse_args()
    if args.rerun:
        failed = rerun(args.results)
        if failed:
            print(f"{len(failed)} command(s) failed, their rows are the previous results:\n  "
                  + "\n  ".join(failed), file=sys.stderr)
    rows = []
    for f in sorted(args.results.glob("*.json")):
        if f.name.endswith(".predictions.json"):  # stored predictions, not results
            continue
        r = json.loads(f.read_text())
        if "protocol" not in r:
            continue
        p = r["protocol"]
        rows.append((p.get("dataset"), p.get("split"), p.get("box_source"), p.get("model"), r, p,
                     f))
    lines = [
        "# Results",
        "",
        "Generated by `python scripts/make_results.py` from the JSON files in `docs/results/`",
        "(written by `faceland evaluate --json ...`); do not edit by hand. NME in % (IOD: outer",
        "eye corners; IPD: eye-contour means), FR@0.1 in % of images, AUC@0.1 as the exact",
        "integral of the CED step function divided by 0.1. `gt` boxes: tight ground-truth",
        "landmark box; `detector` boxes: each system's own face detector, a missed face counts",
        "as a failure (NME = inf) and is listed under *missed*; NME means leave missed faces out.",
        "FR and AUC use IOD where the scheme has eye corners, else the box. `error px`: mean",
        "point error in image pixels. dlib's 68-point model (`dlib-ert-68`) was trained on iBUG",
        "300-W, very likely including these common-set images: its 300W rows are not a fair",
        "held-out comparison. `mediapipe-facemesh-*`: MediaPipe Face Mesh 0.10.21 (468",
        "points, trained on its own data) scored from stored predictions",
        "(`scripts/mediapipe_predictions.py`, `--predictions`): `gt` gives it a 2x crop around",
        "the gt box and its own detector runs inside; the mesh is mapped to 68 points with",
        "faceland's 468 -> 68 map, fitted on 300W train, which is approximate (the jaw most).",
        "`mean-shape-300w-train` looks at no pixel: the mean 300W-train shape placed in each",
        "face's gt box (`scripts/mean_shape_predictions.py`), the floor any model must beat.",
        "",
        "`ytf / train`: the YouTube-Faces 68-point frames (the folder is named train; no",
        "faceland model was trained on it), an out-of-domain video test with noisier labels.",
        "The MobileNetV2 default model's two 300W gt rows differ by flip TTA (see the column).",
        "",
        "Layouts: rows trained before the 2026-12 fidelity pass (every 300W training row but",
        "`iact_300w_cpu_fidelity` and `repformer_fidelity`) used the earlier layouts that",
        "[fidelity.md](fidelity.md) names; the shipped models' cards pin them. Weights under",
        "`runs/` are not in the repository: retrain with the row's training command.",
        "",
        "Reproduce every row: `python scripts/make_results.py --rerun`.",
        "",
        "| data | split | boxes | system | NME IOD | NME IPD | NME box | error px | FR@0.1 | AUC@0.1 "
        "| images | missed | input | flip TTA | weights | command | CED |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, split, boxes, model, r, p, f in sorted(rows, key=lambda t: tuple(map(str, t[:4]))):
        lines.append(
            f"| {dataset} | {split} | {boxes} | {model} | {_fmt(r.get('nme_iod'), '.2f')} | "
            f"{_fmt(r.get('nme_ipd'), '.2f')} | {_fmt(r.get('nme_box'), '.2f')} | "
            f"{_fmt(r.get('mean_error_px'), '.2f')} | {_fmt(r.get('fr'), '.2f')} | "
            f"{_fmt(r.get('auc'), '.4f')} | {r['n_images']} | {r.get('n_missed', 0)} | "
            f"{p.get('input_size') or '-'} | {'yes' if p.get('flip_test') else 'no'} | "
            f"`{p.get('weights_sha256') or '-'}` | `{p.get('command', '-')}` | {_ced_link(f, 'results')} |")
    hw = sorted({r[5].get("hardware", "?") for r in rows})
    lines += ["", f"Hardware: {', '.join(hw)}; faceland "
              f"{', '.join(sorted({str(r[5].get('faceland_version')) for r in rows}))}."]
    lines += training_time_table(args.results)
    lines += ablation_tables(args.results / "ablations") + [""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
