"""Training: typed configs, a smoke run on real images, export, and resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_tiny_config

from faceland.checkpoint import load_model
from faceland.training import TrainConfig, load_config


def _write_cfg(tmp_path: Path, data_root: Path, **over) -> Path:
    return write_tiny_config(tmp_path, data_root, **over)


def test_unknown_config_key_fails_loudly(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_config(p)
    p.write_text("augment: {rotaton: 10}\n")
    with pytest.raises(ValueError, match="rotaton"):
        load_config(p)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_parse() -> None:
    for p in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")):
        assert isinstance(load_config(p), TrainConfig), p


def test_every_config_builds_its_model_and_augmentation() -> None:
    """Each config's model_args build its architecture (no unknown or mistyped argument) and its
    augment block is a valid AugmentConfig."""
    from faceland.models import create_model
    from faceland.schemes import get_scheme
    from faceland.transforms import AugmentConfig

    for p in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")):
        cfg = load_config(p)
        AugmentConfig(**cfg.augment)
        args = {**cfg.model_args, "pretrained": False}
        model = create_model(cfg.model, num_points=get_scheme(cfg.scheme).num_points,
                             input_size=cfg.input_size, **args)
        assert model.input_size == cfg.input_size, p


@pytest.mark.slow
def test_smoke_training_exports_a_loadable_model(tmp_path, data_root) -> None:
    from faceland.training import train

    path = train(load_config(_write_cfg(tmp_path, data_root)))
    model, card = load_model(path)
    assert card["training"]["n_train"] == 32 and card["training"]["n_val"] == 8
    assert card["training"]["best_val_nme_iod_percent"] is not None
    assert card["training"]["train_wall_minutes_total"] > 0  # recorded without a time budget
    assert model.num_points == 68
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    from faceland.inference import FaceLandmarker

    # Evaluation cards carry the training summary (for accuracy-per-training-time tables).
    info = FaceLandmarker(path, detector=None).protocol()
    assert info["training"]["n_train"] == 32 and info["training"]["epochs_done"] == 2
    assert info["training"]["command"] is None  # train() called directly, not from the CLI


@pytest.mark.slow
def test_killed_training_resumes(tmp_path, data_root) -> None:
    # Enough epochs that the kill lands mid-run however fast the machine (an idle 2-core machine
    # runs one of these tiny epochs in well under a second).
    epochs = 30
    cfg = _write_cfg(tmp_path, data_root, epochs=epochs)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cmd = [sys.executable, "-m", "faceland.cli", "train", str(cfg)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    t0 = time.time()
    while not ckpt.exists() and time.time() - t0 < 240 and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), "no checkpoint written before the kill"
    size = -1
    while ckpt.stat().st_size != size:  # let the checkpoint file be completely written
        size = ckpt.stat().st_size
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "model.safetensors").exists(), "killed too late"
    import torch

    first = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert first["epoch"] < epochs - 1
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Restoring states from the checkpoint" in out.stderr + out.stdout
    last = torch.load(ckpt, map_location="cpu", weights_only=True)
    # 32 training faces / batch 8 = 4 steps per epoch; all epochs, the first run's counted.
    assert last["epoch"] == epochs - 1
    assert last["global_step"] == 4 * epochs
    assert (tmp_path / "run" / "model.safetensors").exists()
    card = load_model(tmp_path / "run" / "model.safetensors")[1]
    assert card["training"]["command"] == f"faceland train {cfg}"


def test_config_number_forms_and_yaml_errors(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("lr: 1e-3\nweight_decay: 5e-5\nepochs: 3\n")  # YAML 1.1 strings for PyYAML
    cfg = load_config(p)
    assert cfg.lr == 1e-3 and cfg.weight_decay == 5e-5 and isinstance(cfg.lr, float)
    p.write_text("lr: fast\n")
    with pytest.raises(ValueError, match="lr must be float"):
        load_config(p)
    p.write_text("epochs: 3\naugment: {rotation: 10\n")
    with pytest.raises(ValueError, match=r"c.yaml:\d+:\d+: not valid YAML"):
        load_config(p)
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="c.yaml"):
        load_config(p)


def _weights(ckpt: Path) -> dict:
    import torch

    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_resumed_run_ends_with_the_same_weights(tmp_path, data_root, workers) -> None:
    """A run stopped after epoch 2 and resumed to 4 ends bitwise equal to an uninterrupted
    4-epoch run with the same seed: shuffling and augmentation draws depend on (seed, epoch)
    only, and optimizer / schedule state come from the checkpoint (constant learning rate here,
    because a cosine's length depends on the planned epochs)."""
    import torch

    from faceland.training import train

    def cfg(out: str, epochs: int) -> TrainConfig:
        c = load_config(_write_cfg(tmp_path, data_root, epochs=epochs, num_workers=workers,
                                   schedule="step", warmup_epochs=0, out_dir=str(tmp_path / out),
                                   augment={"rotation": 20, "flip": 0.5, "erase": 0.5}))
        return c

    train(cfg("full", 4))
    train(cfg("resumed", 2))
    train(cfg("resumed", 4))
    a = _weights(tmp_path / "full" / "checkpoints" / "last.ckpt")
    b = _weights(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    ck = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu",
                    weights_only=True)
    assert ck["epoch"] == 3 and ck["global_step"] == 16


@pytest.mark.slow
def test_kill_after_epochs_without_improvement_loses_no_finished_epoch(tmp_path, data_root) -> None:
    """last.ckpt follows every finished epoch, improved or not (lr 0: the validation NME only
    drifts with the BatchNorm statistics, so most epochs do not improve it), and the resume
    continues right after the last finished epoch."""
    import torch

    epochs = 30
    cfg = _write_cfg(tmp_path, data_root, epochs=epochs, lr=0.0, warmup_epochs=0)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cmd = [sys.executable, "-m", "faceland.cli", "train", str(cfg)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    t0 = time.time()
    seen = -1
    while time.time() - t0 < 300 and proc.poll() is None and seen < 3:
        time.sleep(0.3)
        if ckpt.exists():
            try:
                seen = torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]
            except Exception:  # being replaced right now
                continue
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert seen >= 3, "no checkpoint of epoch 3 before the kill"
    killed_at = torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]
    assert killed_at >= seen  # never behind the epochs already finished
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stderr + out.stdout
    assert "Restoring states from the checkpoint" in log
    assert f"Epoch {killed_at + 1}:" in log and f"Epoch {killed_at}:" not in log
    last = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert last["epoch"] == epochs - 1 and last["global_step"] == 4 * epochs


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_checkpoints_and_says_how_to_resume(tmp_path, data_root, sig) -> None:
    cfg = _write_cfg(tmp_path, data_root, epochs=200)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cmd = [sys.executable, "-m", "faceland.cli", "train", str(cfg)]
    # A job started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then keeps ignoring it; the user's Ctrl-C case is a default handler.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not ckpt.exists() and time.time() - t0 < 240 and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    line = [ln for ln in err.splitlines() if ln.startswith("faceland: interrupted")]
    assert line and line[-1].endswith(f"resume with: faceland train {cfg}"), err[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "interrupted.ckpt").exists()
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_sampler_shards_each_epoch_across_ranks() -> None:
    from faceland.training import EpochSampler

    full = list(EpochSampler(10, seed=3, first_epoch=2))
    parts = [list(EpochSampler(10, seed=3, first_epoch=2, rank=r, world_size=3)) for r in range(3)]
    assert all(len(p) == 3 for p in parts)  # equal step counts: 10 // 3 each
    assert sorted(sum(parts, [])) == sorted(full[:9])  # positions r, r + 3, r + 6 of one order
    assert not set(parts[0]) & set(parts[1])
    with pytest.raises(ValueError):
        EpochSampler(10, 0, rank=2, world_size=2)


@pytest.mark.slow
def test_two_process_ddp_on_cpu_agrees_and_resumes(tmp_path, data_root) -> None:
    # Lightning's DDP launcher starts rank 1 by re-running the command line, so run the CLI.
    cfg = _write_cfg(tmp_path, data_root, epochs=1, devices=2, strategy="ddp",
                     accelerator="cpu", max_images=24, batch_size=4)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "faceland.cli", "train", str(cfg)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    t = card["training"]
    assert t["world_size"] == 2
    a, b = t["ddp_weight_checksums"]
    assert a == b  # both ranks hold the same weights
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    # 24 faces, 20 % validation -> 19 or 20 training faces; 2 ranks x batch 4 -> 2 steps
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2
    p = subprocess.run([*cmd, "--set", "epochs=2"], capture_output=True, text=True, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    ck = torch.load(last, map_location="cpu", weights_only=True)
    assert ck["epoch"] == 1 and ck["global_step"] == 4  # resumed, not restarted
