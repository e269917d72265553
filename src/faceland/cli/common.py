"""Pieces every ``faceland`` command shares: the one-line user error, help texts, progress."""

from __future__ import annotations

__all__ = ["DETECTOR_HELP", "RUNTIME_HELP", "UserError", "progress"]


class UserError(Exception):
    """An error caused by the command's input, reported in one line."""


RUNTIME_HELP = ("auto (default) or onnx: ONNX Runtime; openvino: OpenVINO (faceland[openvino]; bf16 "
                "on CPUs with bf16 units: faster, landmarks within a fraction of a pixel); torch: "
                "eager PyTorch (faceland[train])")
DETECTOR_HELP = "face detector name (see `faceland models`); default: the default detector"


def progress(total: int | None, desc: str, unit: str = "frame"):
    """A tqdm bar with items per second; hidden when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total or None, desc=desc, unit=unit, disable=None, leave=False)
