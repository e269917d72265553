"""Shared test configuration: offline model hub, one torch thread, the real-data root."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # timm must never wait for the model hub here

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

try:  # the core install (CI's second venv) has no torch: its tests are marked `core`
    import torch
except ImportError:
    torch = None
else:
    torch.set_num_threads(1)

#: Real, read-only research data (../shared/data from the repository root); absent on a user's
#: fresh checkout, where every test that needs it is skipped.
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real-data folder; skips the test when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data not available at {DATA}")
    return DATA


def write_tiny_config(tmp_path: Path, data_root: Path | None = None, name: str = "cfg.yaml",
                      **over) -> Path:
    """A tiny training config (integral, MobileNetV2 width 16, 64 px, 40 images, 2 epochs)
    written as YAML in ``tmp_path``; ``data_root`` None: a data folder that does not exist (for
    checks that must fire before any data is read)."""
    import yaml

    cfg = {
        "model": "integral",
        "model_args": {"backbone": "mobilenet_v2", "pretrained": False, "width": 16},
        "root": str(data_root / "300w") if data_root else str(tmp_path / "no-data"),
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
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p
