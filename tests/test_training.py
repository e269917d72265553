"""Training: typed configs, a smoke run on real images, export, and resume after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from faceland.checkpoint import load_model
from faceland.training import TrainConfig, load_config


def _write_cfg(tmp_path: Path, data_root: Path, **over) -> Path:
    cfg = {
        "model": "integral",
        "model_args": {"backbone": "mobilenet_v2", "pretrained": False, "width": 16},
        "root": str(data_root / "300w"),
        "input_size": 64,
        "epochs": 2,
        "batch_size": 8,
        "max_images": 40,
        "val_fraction": 0.2,
        "num_workers": 0,
        "threads": 1,
        "out_dir": str(tmp_path / "run"),
        **over,
    }
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


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
