"""Write docs/results.md from the saved evaluation JSON files (never typed by hand).

    python scripts/make_results.py [--results docs/results] [--out docs/results.md] [--rerun]
    python scripts/make_results.py --check

``--rerun`` first runs again every ``faceland evaluate`` command recorded in the JSON files (from
the repository root, with the data at ``../shared/data``), so that this one command reproduces the
whole table on a machine with the data; rows whose system is not installed (dlib:
``pip install -e ".[dlib]"``) are reported and keep their previous JSON. MediaPipe rows are
re-scored from their stored predictions (``scripts/mediapipe_predictions.py`` makes those, in an
environment of its own).

Every row comes from one `faceland evaluate` JSON (its protocol card gives the command, split,
box source, input size, flip TTA, weights hash, faceland version and hardware); the CED plots
saved beside the JSON files are linked.

Historical rows: a result whose protocol card has a ``historical`` key (a one-line reason) was
made by code that no longer exists (a layout or loss with no option left, an overwritten weights
file). Its row goes to a separate table, "Historical results (not reproducible with today's
code)", with the reason; ``--rerun`` and ``--check`` skip it.

``--check`` runs no evaluation and trains nothing (:func:`check`): every command recorded in a
reproducible row parses with faceland's own parser, every weights file or model name it names
resolves (weights under ``runs/`` are not in git: absent ones are reported as needing their
training run), and every config a training command or an ablation row names builds its model.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import yaml

REPO = Path(__file__).resolve().parents[1]

HISTORICAL_TITLE = "Historical results (not reproducible with today's code)"
_HISTORICAL_ANCHOR = "#historical-results-not-reproducible-with-todays-code"


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _ced_link(result: Path, folder: str) -> str:
    """Markdown link to the CED plot saved beside a result JSON (``folder`` relative to docs/)."""
    ced = result.with_suffix(".png")
    return f"[plot]({folder}/{ced.name})" if ced.exists() else "-"


def result_files(folder: Path) -> list[Path]:
    """The evaluation result JSONs of ``folder`` (not the stored predictions beside them)."""
    return [f for f in sorted(folder.glob("*.json")) if not f.name.endswith(".predictions.json")]


def historical(r: dict) -> str | None:
    """Why a result no longer reproduces with today's code (its protocol card's ``historical``
    key), or ``None`` for a row its recorded command reproduces."""
    return (r.get("protocol") or {}).get("historical")


def rerun(results: Path) -> list[str]:
    """Run each result's recorded ``faceland evaluate`` command again (historical rows are
    skipped); returns the failures."""
    failed = []
    for f in result_files(results):
        r = json.loads(f.read_text())
        cmd = r.get("protocol", {}).get("command")
        if not cmd:
            continue
        if historical(r):
            print(f"skipped (historical): {f.name}", flush=True)
            continue
        print(f"$ {cmd}", flush=True)
        if subprocess.run(shlex.split(cmd), cwd=REPO).returncode != 0:
            failed.append(cmd)
    return failed


def ablation_tables(folder: Path, study: str | None = None,
                    historical_rows: bool | None = None) -> list[str]:
    """Markdown tables of the ablation studies (or of one ``study``) from
    ``docs/results/ablations/*.json``.

    Each JSON is a ``faceland evaluate`` result with an ``ablation`` block added by
    ``scripts/ablations.py`` (study, row, overrides, training summary).

    ``historical_rows``: ``None`` every row; ``False`` the rows that reproduce (under the
    "Ablations" heading); ``True`` only the historical rows, one table per study with the reason
    per row and no section heading (they go under :data:`HISTORICAL_TITLE`).
    """
    studies: dict[str, list[tuple[dict, Path]]] = {}
    for f in sorted(folder.glob("*.json")):
        r = json.loads(f.read_text())
        if "ablation" not in r or study not in (None, r["ablation"]["study"]):
            continue
        if historical_rows is None or bool(historical(r)) == historical_rows:
            studies.setdefault(r["ablation"]["study"], []).append((r, f))
    if not studies:
        return []
    out = [] if historical_rows else [
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
    for name, rows in studies.items():
        a0 = rows[0][0]["ablation"]
        t0 = a0["training"]
        head = ("| row | overrides | epochs | best val NME IOD | NME IOD | NME IPD | FR@0.1 "
                "| AUC@0.1 | weights | command | CED |")
        if historical_rows:
            head = head.replace("| command | CED |", "| command (then) | not reproducible: why "
                                "| CED |")
        out += [
            "",
            f"### Ablation rows of `{name}`" if historical_rows else f"### `{name}`",
            "",
            f"Base config `{a0['base_config']}`, {t0['max_time_minutes']:g} min per row, "
            f"{t0['input_size']} px input, {t0['n_train']} train / {t0['n_val']} validation "
            f"faces (300W train), batch {t0['batch_size']}, {t0['optimizer']} lr {t0['lr']:g}; "
            f"{t0['hardware']}.",
            "",
            head,
            "|---" * head.count(" | ") + "|---|",
        ]
        for r, f in rows:
            a, t = r["ablation"], r["ablation"]["training"]
            over = f"`{json.dumps(a['overrides'])}`" if a["overrides"] else "`(base config)`"
            src = f  # a shared run's CED plot is its source run's
            if a.get("same_run_as"):
                over += f" (same run as `{a['same_run_as']}`)"
                src = f.with_name(a["same_run_as"].replace("/", "-") + ".json")
            why = f" {historical(r)} |" if historical_rows else ""
            out.append(
                f"| {a['row']} | {over} | {t['epochs_done']} | "
                f"{_fmt(t['best_val_nme_iod_percent'], '.2f')} | {_fmt(r.get('nme_iod'), '.2f')} | "
                f"{_fmt(r.get('nme_ipd'), '.2f')} | {_fmt(r.get('fr'), '.2f')} | "
                f"{_fmt(r.get('auc'), '.4f')} | `{r['protocol'].get('weights_sha256')}` | "
                f"`{a['command']}` |{why} {_ced_link(src, 'results/ablations')} |")
    return out


def training_time_table(results: Path) -> list[str]:
    """Markdown table: 300W common (gt boxes, no TTA) accuracy against training wall time.

    One row per result whose JSON says how its weights were trained: the ``training`` block of
    the protocol card (copied from the model card by ``faceland evaluate``) for full runs, the
    ``ablation`` block for ablation rows (a row sharing another row's run is listed once).
    Historical rows are listed too, marked as such: their training command no longer makes them.
    """
    rows = []
    for f in result_files(results) + result_files(results / "ablations"):
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
        if historical(r):
            name = f"{name} (historical)"
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
    if any(str(row[1]).endswith(" (historical)") for row in rows):
        out += ["", "Rows marked *(historical)* were trained by code that no longer exists: their",
                f"training command does not make them today ([{HISTORICAL_TITLE}]"
                f"({_HISTORICAL_ANCHOR}))."]
    return out


_RESULT_HEAD = ("| data | split | boxes | system | NME IOD | NME IPD | NME box | error px | FR@0.1 "
                "| AUC@0.1 | images | missed | input | flip TTA | weights | command | CED |")


def _result_row(r: dict, f: Path, why: str | None = None) -> str:
    """One row of the results table (``why``: a historical row's reason, as an extra column)."""
    p = r["protocol"]
    reason = f" {why} |" if why is not None else ""
    return (f"| {p.get('dataset')} | {p.get('split')} | {p.get('box_source')} | {p.get('model')} | "
            f"{_fmt(r.get('nme_iod'), '.2f')} | "
            f"{_fmt(r.get('nme_ipd'), '.2f')} | {_fmt(r.get('nme_box'), '.2f')} | "
            f"{_fmt(r.get('mean_error_px'), '.2f')} | {_fmt(r.get('fr'), '.2f')} | "
            f"{_fmt(r.get('auc'), '.4f')} | {r['n_images']} | {r.get('n_missed', 0)} | "
            f"{p.get('input_size') or '-'} | {'yes' if p.get('flip_test') else 'no'} | "
            f"`{p.get('weights_sha256') or '-'}` | `{p.get('command', '-')}` |{reason} "
            f"{_ced_link(f, 'results')} |")


def _row_key(p: dict) -> tuple[str, ...]:
    """Sort key of a results row: data set, split, boxes, system."""
    return tuple(str(p.get(k)) for k in ("dataset", "split", "box_source", "model"))


def _hardware_line(cards: list[dict]) -> str:
    return (f"Hardware: {', '.join(sorted({p.get('hardware', '?') for p in cards}))}; faceland "
            f"{', '.join(sorted({str(p.get('faceland_version')) for p in cards}))}.")


def historical_tables(results: Path) -> list[str]:
    """The section of historical rows: results whose protocol card says why they no longer
    reproduce (:func:`historical`), the main folder's and the ablation studies', each with its
    reason. Empty when there are none."""
    rows = []
    for f in result_files(results):
        r = json.loads(f.read_text())
        if "protocol" in r and "ablation" not in r and historical(r):
            rows.append((r, f))
    ablations = ablation_tables(results / "ablations", historical_rows=True)
    if not rows and not ablations:
        return []
    out = [
        "",
        f"## {HISTORICAL_TITLE}",
        "",
        "These rows were measured with code or weights that no longer exist: a layout or a loss",
        "that no option re-creates, or a weights file overwritten since. Each row says why. The",
        "numbers are what was measured then and the commands are what ran then: they do not",
        "reproduce the rows today, and `make_results.py --rerun` and `--check` skip them. The",
        "reproducible row of the same architecture, where there is one, is in the tables above",
        "(`iact_300w_cpu_fidelity`, `repformer_fidelity`; [fidelity.md](fidelity.md)).",
    ]
    if rows:
        head = _RESULT_HEAD.replace("| command | CED |",
                                    "| command (then) | not reproducible: why | CED |")
        out += ["", head, "|---" * head.count(" | ") + "|---|"]
        rows.sort(key=lambda t: _row_key(t[0]["protocol"]))
        out += [_result_row(r, f, historical(r)) for r, f in rows]
        out += ["", _hardware_line([r["protocol"] for r, _ in rows])]
    return out + ablations


# --- check mode --------------------------------------------------------------------------------

def _parse(parser: argparse.ArgumentParser, cmd: str) -> tuple[argparse.Namespace | None, str]:
    """``(args, "")`` for a ``faceland ...`` command line that faceland's parser accepts, else
    ``(None, why)``."""
    argv = shlex.split(cmd)
    if not argv or argv[0] != "faceland":
        return None, "not a faceland command"
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parser.parse_args(argv[1:]), ""
    except SystemExit:
        lines = err.getvalue().strip().splitlines()
        return None, lines[-1] if lines else "does not parse"


def _under_runs(path: str | Path | None) -> bool:
    """A repository-relative path under ``runs/`` (training output, not in git)."""
    return path is not None and Path(path).parts[:1] == ("runs",)


class _Checker:
    """State of one :func:`check` pass: the parser, the errors and notes, and what was already
    checked (several rows share a training command or a config)."""

    def __init__(self) -> None:
        from faceland.cli import build_parser

        self.parser = build_parser()
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.commands: set[str] = set()  # training commands checked
        self.models: set[str] = set()  # model configs built
        self.counts = {"evaluate commands": 0, "training commands": 0, "ablation rows": 0,
                       "models built": 0}

    def weights(self, where: str, model: str | None, sha: str | None, run: str) -> None:
        """The evaluated weights: a shipped name (or the default) resolves and its card's hash is
        the row's; a ``runs/`` file is checked if present, else noted as needing ``run``."""
        from faceland.checkpoint import read_card, resolve_weights, weights_hash

        if _under_runs(model) and not (REPO / model).exists():
            self.notes.append(f"{where}: {model} needs its training run: {run}")
            return
        try:
            local = model is not None and (REPO / model).exists()
            path = resolve_weights(REPO / model if local else model)
            got = read_card(path)[1].weights_sha256 or weights_hash(path)
        except (FileNotFoundError, ValueError) as e:
            self.errors.append(f"{where}: --model {model}: {e}")
            return
        if sha and got != sha:
            self.errors.append(f"{where}: --model {model or '(default)'} holds weights {got}, "
                               f"the row's are {sha}")

    def evaluate(self, f: Path, r: dict) -> None:
        """The row's ``faceland evaluate`` command: parses, writes this JSON, matches the card,
        and names weights / predictions / a detector that exist."""
        from faceland.detectors import DETECTORS
        from faceland.errors import FormatError
        from faceland.evaluation import read_predictions

        p, where = r["protocol"], f.relative_to(REPO) if f.is_relative_to(REPO) else f
        self.counts["evaluate commands"] += 1
        args, why = _parse(self.parser, p["command"])
        if args is None or args.command != "evaluate":
            self.errors.append(f"{where}: `{p['command']}`: {why or 'not faceland evaluate'}")
            return
        a = r.get("ablation") or {}
        if not a.get("same_run_as") and (REPO / str(args.json)).resolve() != f.resolve():
            self.errors.append(f"{where}: the command writes {args.json}, not this file")
        for name, value, want in (("--dataset", args.dataset, p.get("dataset")),
                                  ("--boxes", args.boxes, p.get("box_source")),
                                  ("--flip-test", args.flip_test, bool(p.get("flip_test")))):
            if value != want:
                self.errors.append(f"{where}: the command's {name} is {value}, the row's {want}")
        if args.boxes == "detector" and args.detector not in ("default", *DETECTORS):
            self.errors.append(f"{where}: unknown --detector {args.detector}")
        if args.predictions:
            try:
                stored = read_predictions(REPO / args.predictions)["box_source"]
            except FormatError as e:
                self.errors.append(f"{where}: {e}")
                return
            if stored != args.boxes:
                self.errors.append(f"{where}: {args.predictions} holds {stored}-box predictions")
        elif args.model != "dlib":  # dlib: an external system (faceland[dlib]), no weights here
            run = a.get("command") or (p.get("training") or {}).get("command") or "(no command)"
            self.weights(str(where), args.model, p.get("weights_sha256"), f"`{run}`")

    def build(self, where: str, cfg) -> None:
        """Build ``cfg``'s model as training would, without ImageNet weights."""
        from faceland.models import create_model
        from faceland.schemes import get_scheme

        key = json.dumps([cfg.model, cfg.scheme, cfg.input_size, cfg.model_args], sort_keys=True,
                         default=str)
        if key in self.models:
            return
        self.models.add(key)
        self.counts["models built"] += 1
        kwargs = dict(cfg.model_args)
        if "pretrained" in kwargs:
            kwargs["pretrained"] = False
        try:
            create_model(cfg.model, num_points=get_scheme(cfg.scheme).num_points,
                         input_size=cfg.input_size, **kwargs)
        except Exception as e:  # noqa: BLE001  (whatever the architecture rejects, in one line)
            self.errors.append(f"{where}: model {cfg.model} with {cfg.model_args} does not build: "
                               f"{type(e).__name__}: {e}")

    def _needs_runs(self, where: str, cfg, what: str) -> None:
        """Note inputs of a training config that are training outputs absent here."""
        for path in (cfg.init_from, (cfg.mtfl or {}).get("pseudo")):
            if _under_runs(path) and not (REPO / path).exists():
                self.notes.append(f"{where}: {path}, an input of {what}, is the output of a run "
                                  "not in git")

    def train(self, where: str, cmd: str) -> None:
        """A recorded ``faceland train CONFIG [--set ...]``: parses, the config loads with the
        overrides applied as the CLI applies them, and its model builds."""
        from faceland.cli.common import UserError
        from faceland.cli.train import apply_sets
        from faceland.training import load_config

        if cmd in self.commands:
            return
        self.commands.add(cmd)
        self.counts["training commands"] += 1
        args, why = _parse(self.parser, cmd)
        if args is None or args.command != "train":
            self.errors.append(f"{where}: `{cmd}`: {why or 'not faceland train'}")
            return
        try:
            cfg = load_config(REPO / args.config)
            apply_sets(cfg, args.set or [], args.config)
        except (FileNotFoundError, ValueError, TypeError, UserError) as e:
            self.errors.append(f"{where}: `{cmd}`: {e}")
            return
        self._needs_runs(where, cfg, f"`{cmd}`")
        self.build(f"{where}: `{cmd}`", cfg)

    def ablation(self, where: str, a: dict) -> None:
        """An ablation row: its script exists and names its study and row, and the base config
        with the row's overrides (merged as ``scripts/ablations.py`` merges them) builds."""
        from faceland.training import check_config, load_config

        self.counts["ablation rows"] += 1
        argv = shlex.split(a["command"])
        study, row = (a.get("same_run_as") or f"{a['study']}/{a['row']}").split("/")
        if (argv[1:3] != ["scripts/ablations.py", study] or "--rows" not in argv
                or row not in argv[argv.index("--rows") + 1:] or not (REPO / argv[1]).exists()):
            self.errors.append(f"{where}: `{a['command']}` does not run row {study}/{row}")
        try:
            cfg = load_config(REPO / a["base_config"])
            for key, val in a["overrides"].items():
                cur = copy.deepcopy(getattr(cfg, key))
                setattr(cfg, key, {**cur, **val} if isinstance(cur, dict) else val)
            check_config(cfg, f"{a['base_config']} with {json.dumps(a['overrides'])}")
        except (FileNotFoundError, ValueError, TypeError, AttributeError) as e:
            self.errors.append(f"{where}: {a['base_config']} with {a['overrides']}: {e}")
            return
        self.build(f"{where}: {a['base_config']} with {json.dumps(a['overrides'])}", cfg)


class CheckReport(NamedTuple):
    """What :func:`check` found: ``errors`` and ``notes`` (one line each; notes are the training
    runs a rerun would need first) and ``counts`` of what was checked."""

    errors: list[str]
    notes: list[str]
    counts: dict[str, int]


def check(results: Path = REPO / "docs" / "results") -> CheckReport:
    """Check, without evaluating or training anything, that every reproducible row's recorded
    commands can run today.

    For each result JSON of ``results`` and ``results/ablations`` that is not historical:

    * its ``faceland evaluate`` command parses with :func:`faceland.cli.build_parser`, writes
      this very JSON, agrees with the card (data set, boxes, flip test), and names a detector,
      predictions file or weights that exist: a shipped model name (or the default) resolves
      (:func:`faceland.checkpoint.resolve_weights`) to the weights hash the row records; a
      ``runs/`` file absent here is a note (runs/ is not in git), present it must hold the
      row's weights;
    * its training command (``faceland train CONFIG --set ...``) parses, the config loads with the
      ``--set`` overrides as the CLI applies them, and builds its model
      (:func:`faceland.models.create_model`, ``pretrained=False``); ``init_from`` /
      MTFL pseudo-labels under ``runs/`` absent here are notes;
    * an ablation row's ``scripts/ablations.py`` command names its study and row, and its base
      config with the row's overrides builds its model.

    Returns:
        a :class:`CheckReport`.
    """
    c = _Checker()
    for f in result_files(results) + result_files(results / "ablations"):
        r = json.loads(f.read_text())
        if "protocol" not in r or historical(r):
            continue
        where = str(f.relative_to(REPO) if f.is_relative_to(REPO) else f)
        if r["protocol"].get("command"):
            c.evaluate(f, r)
        train_cmd = (r["protocol"].get("training") or {}).get("command")
        if train_cmd:
            c.train(where, train_cmd)
        if "ablation" in r:
            c.ablation(where, r["ablation"])
    return CheckReport(c.errors, sorted(set(c.notes)), c.counts)


def _print_check(results: Path) -> int:
    """Print :func:`check`'s notes and errors and a count line; returns the exit status."""
    report = check(results)
    for line in report.notes:
        print(f"note: {line}")
    for line in report.errors:
        print(f"error: {line}", file=sys.stderr)
    print("checked " + ", ".join(f"{n} {what}" for what, n in report.counts.items())
          + f": {len(report.errors)} error(s), {len(report.notes)} note(s)")
    return 1 if report.errors else 0


def _intro() -> list[str]:
    """The page's fixed opening prose (lines of Markdown), before the results table."""
    return [
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
        "Reproduce every row: `python scripts/make_results.py --rerun`. Without evaluating,",
        "`python scripts/make_results.py --check` checks that every command below parses, the",
        "weights it names resolve and the config its training command names builds its model.",
        f"Rows that no longer reproduce are in [{HISTORICAL_TITLE}]({_HISTORICAL_ANCHOR}).",
        "",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "results")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    ap.add_argument("--rerun", action="store_true",
                    help="run every recorded evaluate command again before writing the table")
    ap.add_argument("--check", action="store_true",
                    help="only check that every reproducible row's commands parse, its weights "
                         "resolve and its configs build (no evaluation); exit 1 on an error")
    ap.add_argument("--ablation", metavar="STUDY",
                    help="only print the table of this ablation study (scripts/ablations.py)")
    args = ap.parse_args()
    if args.ablation:
        print("\n".join(ablation_tables(args.results / "ablations", study=args.ablation)))
        return
    if args.check:
        sys.exit(_print_check(args.results))
    if args.rerun:
        failed = rerun(args.results)
        if failed:
            print(f"{len(failed)} command(s) failed, their rows are the previous results:\n  "
                  + "\n  ".join(failed), file=sys.stderr)
    rows = []
    for f in result_files(args.results):
        r = json.loads(f.read_text())
        if "protocol" in r and not historical(r):
            rows.append((r, f))
    rows.sort(key=lambda t: _row_key(t[0]["protocol"]))
    lines = [*_intro(), _RESULT_HEAD, "|---" * _RESULT_HEAD.count(" | ") + "|---|"]
    lines += [_result_row(r, f) for r, f in rows]
    lines += ["", _hardware_line([r["protocol"] for r, _ in rows])]
    lines += training_time_table(args.results)
    lines += ablation_tables(args.results / "ablations", historical_rows=False)
    lines += historical_tables(args.results) + [""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
