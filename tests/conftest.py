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
