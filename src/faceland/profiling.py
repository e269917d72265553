"""Model cost and timing, measured in one place (scripts/model_stats.py and benchmarks/ use it).

* :func:`count_flops`: floating-point operations of one forward pass on a batch of one face,
  counted by :class:`torch.utils.flop_counter.FlopCounterMode` (2 per multiply-add), plus the
  torchvision ``DeformConv2d`` layers it does not see (counted as plain convolutions of the same
  shape; IACT's deformable Q/K/V projections).
* :func:`parameter_count`: trainable and frozen parameters.
* :func:`median_ms`, :func:`interleaved_medians`: wall-clock milliseconds per call (median over
  repeats after a warm-up; interleaved rounds when several systems are compared in one run, so
  that a slower moment of the machine hits all of them alike). Torch-free (usable from an
  environment without PyTorch, e.g. scripts/mediapipe_predictions.py).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the FLOP counter only: timing is torch-free
    import torch

__all__ = ["benchmark_metadata", "count_flops", "cpu_model", "interleaved_medians", "median_ms",
           "parameter_count", "reference_clip", "reference_photo"]


def _deform_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    import torch

    try:
        from torchvision.ops import DeformConv2d
    except ImportError:  # pragma: no cover
        return 0
    total = 0

    def hook(mod: torch.nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = mod.weight.shape[-2:]
        total += 2 * out.numel() * (mod.weight.shape[1] * kh * kw)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, DeformConv2d)]
    if handles:
        with torch.no_grad():
            model(x)
    for h in handles:
        h.remove()
    return total


def count_flops(model: torch.nn.Module, input_size: int | None = None) -> int:
    """FLOPs of one forward pass of ``model`` on a ``(1, 3, N, N)`` input.

    Args:
        model: a landmark model (or any module taking ``(B, 3, N, N)``).
        input_size: N; default ``model.input_size``.

    Returns:
        Operations (2 per multiply-add), deformable convolutions included.

    The forward runs with autograd on (no ``torch.no_grad``), in the model's current mode:
    under ``no_grad`` an eval-mode ``nn.MultiheadAttention`` / ``TransformerEncoderLayer`` takes
    PyTorch's fused fast path, which the counter does not see, and the counter's module tracker
    fails on RePFormer ("Expected gradient function to be set"). PyTorch's CPU kernel of
    ``scaled_dot_product_attention`` (``_scaled_dot_product_flash_attention_for_cpu``) is not in
    the counter's table; its two matrix products (``Q K^T`` and ``A V``) are added here with
    the counter's own formula, as the GPU kernels' are.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_attention(query, key, value, *_args, out_shape=None, **_kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    n = int(input_size or model.input_size)
    x = torch.rand(1, 3, n, n)
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(x)
    return int(counter.get_total_flops()) + _deform_flops(model, x)


def parameter_count(model: torch.nn.Module) -> int:
    """Number of parameters (trainable and frozen)."""
    return sum(p.numel() for p in model.parameters())


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall-clock milliseconds of ``fn()`` over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int,
                        warmup: int = 10) -> dict[str, float]:
    """Median ms per call of each function, timed in ``repeats`` interleaved rounds (rounded
    to 1 us)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1000)
    return {k: round(statistics.median(v), 3) for k, v in times.items()}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s ``model name``, else the platform's), since the
    CPU of this project's machines changes between runs and every timing must name it."""
    import platform

    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def benchmark_metadata(command: str) -> dict:
    """What every benchmark JSON records beside its numbers: the command, date, CPU model, core
    count, 1-minute load average, ISA flags that change the kernels (AVX-512, AMX) and the
    versions of the runtimes involved (``None`` when not installed)."""
    import datetime
    import importlib.metadata
    import os
    import platform

    versions = {}
    for pkg in ("numpy", "onnxruntime", "opencv-python-headless", "torch", "mediapipe",
                "openvino"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        flags = next((ln for ln in open("/proc/cpuinfo", encoding="utf-8")
                      if ln.startswith("flags")), "").split()
    except OSError:
        flags = []
    return {"command": command, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
            "isa": sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f"))),
            "load_average_1min": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            "versions": versions}


def reference_photo():
    """The photo every speed benchmark times: the astronaut (``assets/astronaut.jpg``, one
    face) on a black 640 x 480 canvas, ``(480, 640, 3)`` uint8 RGB (numpy and OpenCV only, so a
    peer's own environment, e.g. MediaPipe's with numpy < 2, builds the same frames).

    Raises:
        FileNotFoundError: not run from a source checkout (the asset is not installed).
    """
    from pathlib import Path

    import cv2
    import numpy as np

    path = Path(__file__).resolve().parents[2] / "assets" / "astronaut.jpg"
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise FileNotFoundError(f"{path}: the benchmark photo (a source checkout is needed)")
    canvas = np.zeros((480, 640, 3), np.uint8)
    canvas[:, 64:576] = cv2.resize(bgr[..., ::-1], (512, 480), interpolation=cv2.INTER_AREA)
    return canvas


def reference_clip(n: int = 300) -> list:
    """``n`` 640 x 480 frames of :func:`reference_photo` with the face moving sideways by up to
    6 px (a person in front of a webcam), uint8 RGB."""
    import numpy as np

    canvas = reference_photo()
    return [np.ascontiguousarray(np.roll(canvas, int(round(6 * np.sin(k / 8))), axis=1))
            for k in range(n)]
