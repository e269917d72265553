"""The GPU paper-schedule configs and the device script (issue 29), checked on the CPU.

configs/gpu/*.yaml parse and build their models at their own sizes; scripts/pack_gpu_data.py
makes a compact 300W copy that reads like the original; scripts/gpu_paper_runs.sh runs its smoke
mode (the device path: one training process and one evaluation per run, the bundle a device
machine returns) on a few real 300W faces, and ``unpack`` restores loadable fp32 weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
GPU_CONFIGS = sorted((REPO / "configs" / "gpu").glob("*.yaml"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_gpu_configs_parse_build_and_follow_their_papers() -> None:
    from faceland.training import load_config

    runs = _load("gpu_paper_runs")
    assert {Path(r.config).name for r in runs.RUNS.values()} == {p.name for p in GPU_CONFIGS}
    assert set(runs.DEVICE_RUNS) <= set(runs.RUNS)
    assert sum(runs.RUNS[n].minutes for n in runs.DEVICE_RUNS) \
        + runs.RUN_OVERHEAD_MIN * len(runs.DEVICE_RUNS) + runs.FINAL_EVAL_MIN <= 9.0
    for p in GPU_CONFIGS:
        cfg = load_config(p)
        assert cfg.precision == "bf16-mixed" and cfg.devices == 1, p
        assert cfg.input_size == 256 and not cfg.max_time_minutes, p
        head = p.read_text().split("\nmodel:")[0]
        assert "Estimated GPU wall time" in head and "Departures" in head, p
        model = runs.build_model(cfg)
        assert model.input_size == 256 and model.num_points == 68, p
    paper = {p.stem: load_config(p) for p in GPU_CONFIGS}
    rep = paper["repformer_r18_256"]  # RePFormer sec. 4.1
    assert (rep.epochs, rep.batch_size, rep.lr, rep.weight_decay, rep.optimizer) == \
        (360, 16, 1e-4, 0.0, "adam")
    assert round(rep.milestones[0] * rep.epochs) == 200 and rep.gamma == 0.1
    assert rep.model_args["backbone"] == "resnet18" and rep.model_args["tau"] == 1000.0
    assert paper["repformer_mnv2_256"].model_args["backbone"] == "mobilenet_v2"
    iact = paper["iact_256"]  # IACT sec. 3.3
    assert (iact.epochs, iact.lr, iact.optimizer, iact.gamma) == (120, 5e-4, "adam", 0.2)
    assert [round(m * iact.epochs) for m in iact.milestones] == [40, 80]
    assert iact.model_args["loss"] == "smooth_wing"
    hg = paper["hourglass_seed001_256"]  # seed 001 sec. 2.3, Table 1
    steps = hg.epochs * (1811 // hg.batch_size)
    assert [round(m * steps, -3) for m in hg.milestones] == [80000, 120000]
    assert (hg.model_args["stacks"], hg.model_args["depth"], hg.model_args["channels"]) == \
        (2, 4, 128)
    teacher = paper["default_dw_256_teacher"]
    assert teacher.model_args["refine"] == "dw" and teacher.model_args["backbone"] == "mobilenet_v2"


def test_budget_shares_shrink_when_earlier_runs_overrun() -> None:
    runs = _load("gpu_paper_runs")
    planned = [runs.RUNS[n] for n in runs.DEVICE_RUNS]
    assert runs.plan_minutes(planned[0], planned, 9 * 60) == planned[0].minutes
    late = runs.plan_minutes(planned[2], planned[2:], 2.5 * 60)  # 2.5 min left for two runs
    assert 0 < late < planned[2].minutes
    assert runs.plan_minutes(planned[3], planned[3:], 60) < 0.25  # skipped


def test_device_overrides_budget_workers_and_imagenet_fallback(tmp_path, monkeypatch) -> None:
    runs = _load("gpu_paper_runs")
    cfg = runs.load_run_config(runs.RUNS["repformer_mnv2_256"], {})
    monkeypatch.setattr(runs, "imagenet_source", lambda cfg, download: None)  # offline, no wheel
    over, notes = runs.run_overrides(runs.RUNS["repformer_mnv2_256"], cfg, tmp_path / "d",
                                     tmp_path / "w", 2.5, False, "cuda", False, None)
    assert over["max_time_minutes"] == 2.5 and over["root"] == str(tmp_path / "d")
    assert over["model_args"]["pretrained"] is False and "from scratch" in notes["pretrained"]
    assert 0 <= over["num_workers"] <= max(0, (os.cpu_count() or 2) - 2)
    assert "precision" not in over  # bf16 autocast stays on a GPU
    runs.load_run_config(runs.RUNS["repformer_mnv2_256"], over)  # what faceland train accepts
    monkeypatch.setattr(runs, "imagenet_source", lambda cfg, download: "the wheel")
    over, notes = runs.run_overrides(runs.RUNS["repformer_mnv2_256"], cfg, tmp_path / "d",
                                     tmp_path / "w", 2.5, False, "cuda", False, 3)
    assert "model_args" not in over and notes["pretrained"] == "the wheel"
    assert over["num_workers"] == min(3, max(0, (os.cpu_count() or 2) - 2))
    assert runs._set_args({"precision": "32", "epochs": 2}) == \
        ["--set", 'precision="32"', "--set", "epochs=2"]


@pytest.mark.slow
def test_pack_and_smoke_run_leave_the_expected_files(tmp_path, data_root) -> None:
    pack = _load("pack_gpu_data")
    data = tmp_path / "gpu_data" / "300w"
    assert pack.main(["--src", str(data_root / "300w"), "--out", str(data),
                      "--max-per-folder", "2"]) == 0
    from faceland.data.datasets import load_300w

    orig = {r.key.rsplit(".", 1)[0]: r for r in load_300w(data_root / "300w", "common")}
    copy = load_300w(data, "common")
    assert len(copy) == 4 and all(r.image.suffix == ".webp" for r in copy)
    for r in copy:  # the same face, scaled: the IOD-normalised shape is unchanged
        o = orig[r.key.rsplit(".", 1)[0]].points
        norm = lambda p: (p - p.mean(0)) / np.linalg.norm(p[36] - p[45])  # noqa: E731
        assert np.abs(norm(r.points) - norm(o)).max() < 0.01

    out, work = tmp_path / "out", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_paper_runs.sh"), str(data),
                           "--smoke", "--out", str(out), "--work", str(work), "--bundle"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    runs = _load("gpu_paper_runs")
    assert [r["name"] for r in summary["runs"]] == list(runs.DEVICE_RUNS)
    for r in summary["runs"]:
        assert r["status"] == "ok", r
        assert r["epochs_done"] == 1 and r["n_common"] == 4 and r["nme_iod_common"] > 0, r
        assert r["bundled_weights"] in ("fp16", "fp32")
        assert "--set" in r["command"] and "--boxes gt" in r["eval_command"]
    # what a device machine returns: at most 8 files of at most 16 MiB, 64 MiB together
    files = sorted(p for p in out.iterdir())
    assert {p.name for p in files} >= {"summary.json", "summary.md", "bundle.tar.00"}
    assert len(files) <= 8 and all(p.is_file() and p.stat().st_size <= 16 * 2**20 for p in files)
    assert sum(p.stat().st_size for p in files) <= 64 * 2**20
    assert "| iact_256 | ok |" in (out / "summary.md").read_text()

    restored = runs.unpack(out, tmp_path / "back")
    assert len(restored) == len(runs.DEVICE_RUNS)
    from faceland.checkpoint import load_model

    for w in restored:
        d = w.parent
        for name in ("model.json", "train.log", "eval.log", runs.EVAL_JSON):
            assert (d / name).is_file(), d / name
        assert list(d.glob("logs/*/metrics.csv")), d
        model, card = load_model(w)
        assert card.training["epochs_done"] == 1
        assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in model.parameters())
