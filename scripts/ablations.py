"""Ablation studies at a reduced, equal CPU budget per row (background job; resumable).

    python scripts/ablations.py repformer_components [--minutes 25] [--data ../shared/data/300w]
    python scripts/ablations.py repformer_tau
    python scripts/ablations.py hourglass_seed001

Each row trains its base config with the row's overrides for ``--minutes`` of wall time (cosine
schedule annealed over that budget, model selection on the validation split carved from 300W
train), then is evaluated once on 300W common with ground-truth boxes. A killed study resumes:
finished rows are skipped, an interrupted row resumes from its ``last.ckpt``. Results go to
``docs/results/ablations/<study>-<row>.json`` and a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

from faceland.outputs import atomic_write_text
from faceland.training import load_config, train

REPO = Path(__file__).resolve().parents[1]

#: study -> (base config, {row: overrides}). ``model_args`` / ``augment`` overrides are merged.
STUDIES: dict[str, tuple[str, dict[str, dict]]] = {
    "repformer_components": ("configs/repformer_300w_cpu.yaml", {
        "baseline": {"model_args": {"pth": False, "dlr": False}},
        "pth": {"model_args": {"pth": True, "dlr": False}},
        "dlr": {"model_args": {"pth": False, "dlr": True}},
        "pth_dlr": {"model_args": {"pth": True, "dlr": True}},
    }),
    "repformer_tau": ("configs/repformer_300w_cpu.yaml", {
        f"tau{t}": {"model_args": {"tau": float(t)}} for t in (10, 100, 1000, 10000)
    }),
    "hourglass_seed001": ("configs/hourglass_cpu.yaml", {
        "full": {},
        "no_coordconv": {"model_args": {"coordconv": False}},
        "se_instead_of_ca": {"model_args": {"attention": "se"}},
        "no_attention": {"model_args": {"attention": "none"}},
        "plain_mse": {"model_args": {"loss": "mse"}},
        "plain_gaussian": {"model_args": {"codec": "gaussian", "decoder": "argmax_shift"}},
        "no_erasing": {"augment": {"erase": 0.0}},
    }),
}

#: rows whose resolved config equals another study's row: the run is shared, not repeated
#: (tau 1000 is the RePFormer default, so ``repformer_tau/tau1000`` is ``pth_dlr``).
SAME_RUN: dict[tuple[str, str], tuple[str, str]] = {
    ("repformer_tau", "tau1000"): ("repformer_components", "pth_dlr"),
}


def row_config(study: str, row: str, data: str, minutes: float):
    """The resolved training config of one row: base config + overrides + the equal budget."""
    base_path, rows = STUDIES[study]
    cfg = load_config(REPO / base_path)
    for key, val in rows[row].items():
        cur = copy.deepcopy(getattr(cfg, key))
        setattr(cfg, key, {**cur, **val} if isinstance(cur, dict) else val)
    cfg.root = data
    cfg.schedule, cfg.epochs, cfg.max_time_minutes = "cosine", 10_000, minutes
    cfg.warmup_steps = min(getattr(cfg, "warmup_steps", 0), 500)
    cfg.out_dir = str(REPO / "runs" / "ablations" / study / row)
    return cfg


def same_run(study: str, row: str, other_study: str, other_row: str) -> bool:
    """Whether two rows resolve to the same training config (apart from their run folders)."""
    a, b = (dict(vars(row_config(st, r, "data", 1.0)), out_dir=None)
            for st, r in ((study, row), (other_study, other_row)))
    return a == b


def run_row(study: str, row: str, data: str, minutes: float) -> dict:
    """Train and evaluate one row unless its result exists; return the annotated result."""
    out_dir = REPO / "docs" / "results" / "ablations"
    result = out_dir / f"{study}-{row}.json"
    over = STUDIES[study][1][row]
    if not result.exists() and (study, row) in SAME_RUN:
        src_study, src_row = SAME_RUN[(study, row)]
        if not same_run(study, row, src_study, src_row):
            raise SystemExit(f"{study}/{row} is not the same run as {src_study}/{src_row}")
        r = copy.deepcopy(run_row(src_study, src_row, data, minutes))
        r["ablation"].update(study=study, row=row, overrides=over,
                             same_run_as=f"{src_study}/{src_row}")
        atomic_write_text(result, json.dumps(r, indent=1))
    elif not result.exists():
        weights = train(row_config(study, row, data, minutes))
        subprocess.run(["faceland", "evaluate", "--dataset", "300w", "--root", data,
                        "--split", "common", "--boxes", "gt",
                        "--model", str(weights.relative_to(REPO)),
                        "--json", str(result.relative_to(REPO))], check=True, cwd=REPO)
    return annotate(result, study, row, STUDIES[study][0], over)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("study", choices=sorted(STUDIES))
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--data", default="../shared/data/300w")
    ap.add_argument("--rows", nargs="*", help="only these rows")
    args = ap.parse_args()
    for row in STUDIES[args.study][1]:
        if not args.rows or row in args.rows:
            run_row(args.study, row, args.data, args.minutes)
    # the study's table, as docs/results.md will show it (scripts run each other as commands)
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_results.py"), "--ablation",
                    args.study], check=True, cwd=REPO)


def annotate(result: Path, study: str, row: str, base_path: str, over: dict) -> dict:
    """Add an ``ablation`` block to a row's result JSON (idempotent) and return the result.

    The block records the study, row, base config, overrides and the training summary from the
    row's ``model.json`` (epochs done, best validation NME, wall minutes, hardware), so that
    ``scripts/make_results.py`` can write the ablation tables from the JSON alone.
    """
    r = json.loads(result.read_text())
    card_path = REPO / "runs" / "ablations" / study / row / "model.json"
    if "ablation" not in r and card_path.exists():
        tr = json.loads(card_path.read_text())["training"]
        r["ablation"] = {
            "study": study, "row": row, "base_config": base_path, "overrides": over,
            "command": f"python scripts/ablations.py {study} --rows {row} "
                       f"--minutes {tr['max_time_minutes']:g}",
            "training": {k: tr.get(k) for k in (
                "epochs_done", "best_val_nme_iod_percent", "train_wall_minutes_total",
                "max_time_minutes", "n_train", "n_val", "input_size", "batch_size", "lr",
                "optimizer", "schedule", "model_args", "augment", "hardware")},
        }
        # Commands are run from the repository root: store them with relative paths.
        r["protocol"]["command"] = r["protocol"]["command"].replace(f"{REPO}/", "")
        atomic_write_text(result, json.dumps(r, indent=1))
    return r


if __name__ == "__main__":
    main()
