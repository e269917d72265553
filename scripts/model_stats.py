"""Parameter counts and FLOPs per face of every registered model and every config in configs/.

    python scripts/model_stats.py [--configs configs] [--models NAME ...] [--smoke] [--time]
        [--threads 2]
    python scripts/model_stats.py --variants hourglass stacks=1,2,4 channels=64,128,256 [--time]

One row per (model, configuration): ``defaults`` is the factory's own defaults with 68 points
(the paper-scale setting where a model follows a paper), each ``configs/*.yaml`` naming the model
gives a row with its ``input_size``, ``model_args`` and its scheme's point count (built with
``pretrained=False``: nothing is downloaded),
``--smoke`` adds the test-suite's tiny setting. ``--variants MODEL KEY=V1,V2 ...`` instead gives
one row per combination of the listed constructor arguments (values parsed as YAML scalars) on
top of the factory defaults, e.g. seed 001's size table: stacks x channels of the hourglass.

FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` on a batch of one ``N x N`` face, two
FLOPs per multiply-add (halve them for the "MACs" many papers call FLOPs); convolutions, matrix
products and attention are counted, element-wise operations, normalisation and heatmap decoding
are not. torchvision's ``deform_conv2d`` is invisible to the counter, so each
``DeformConv2d`` adds the FLOPs of the ordinary convolution of the same shape (its bilinear
sampling is not counted). The forward runs in eval mode with autograd on, so that
``nn.MultiheadAttention`` takes its counted (non-fused) path.

``--time`` adds the median eager forward time of one face (batch 1, ``torch.no_grad``, random
weights: speed does not depend on them) with ``--threads`` torch threads, after 3 warm-up runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from faceland.models import SMOKE_KWARGS, create_model, list_models  # noqa: E402
from faceland.profiling import count_flops, median_ms, parameter_count  # noqa: E402
from faceland.schemes import get_scheme  # noqa: E402
from faceland.training import load_config  # noqa: E402


def stats(name: str, repeats: int = 0, **kwargs) -> tuple[float, float, float | None, int]:
    """``(params in millions, GFLOPs per face, eager ms per face or None, input size)`` of
    ``create_model(name, **kwargs)``; the time is measured when ``repeats`` > 0."""
    model = create_model(name, **kwargs).eval()
    params = parameter_count(model) / 1e6
    flops = count_flops(model)
    ms = None
    if repeats:
        x = torch.rand(1, 3, model.input_size, model.input_size)
        with torch.no_grad():
            ms = median_ms(lambda: model(x), repeats, warmup=3)
    return params, flops / 1e9, ms, model.input_size


def _row(name: str, label: str, repeats: int, **kwargs) -> tuple:
    """One table row ``(model, config, input, params M, fp32 MB, GFLOPs[, ms])``."""
    p, g, ms, n = stats(name, repeats, **{"num_points": 68, **kwargs})
    row = (name, label, n, f"{p:.2f}", f"{p * 4 / 1.048576:.1f}", f"{g:.2f}")
    return row + ((f"{ms:.1f}",) if repeats else ())


def rows(config_dir: Path, names: list[str], smoke: bool = False, verbose: bool = False,
         repeats: int = 0) -> list[tuple]:
    """Table rows ``(model, config, input, params M, fp32 MB, GFLOPs[, ms])``; errors are
    reported in the row."""
    configs: dict[str, list[tuple[str, dict]]] = {}
    for path in sorted(config_dir.glob("*.yaml")):
        cfg = load_config(path)
        kw = {**cfg.model_args, "input_size": cfg.input_size, "pretrained": False,
              "num_points": get_scheme(cfg.scheme).num_points}
        configs.setdefault(cfg.model, []).append((path.name, kw))
    out = []
    for name in names:
        settings = [("defaults", {"pretrained": False})]
        if smoke:
            settings.append(("smoke", {**SMOKE_KWARGS.get(name, {}), "pretrained": False}))
        settings += configs.get(name, [])
        for label, kw in settings:
            try:
                out.append(_row(name, label, repeats, **kw))
            except Exception as e:  # noqa: BLE001 - report and go on with the other models
                out.append((name, label, kw.get("input_size", 0), "error", "-",
                            f"{type(e).__name__}: {e}") + (("-",) if repeats else ()))
            if verbose:
                print(*out[-1], sep=" | ", flush=True)
    return out


def variant_rows(spec: list[str], repeats: int = 0, verbose: bool = False) -> list[tuple]:
    """Rows for ``--variants MODEL KEY=V1,V2 ...``: every combination of the listed arguments."""
    import itertools

    import yaml

    name, *pairs = spec
    keys, values = [], []
    for pair in pairs:
        key, _, vals = pair.partition("=")
        if not vals:
            raise SystemExit(f"--variants: expected KEY=V1,V2,..., got {pair!r}")
        keys.append(key)
        values.append([yaml.safe_load(v) for v in vals.split(",")])
    out = []
    for combo in itertools.product(*values):
        kw = dict(zip(keys, combo, strict=True))
        label = ", ".join(f"{k}={v}" for k, v in kw.items())
        out.append(_row(name, label, repeats, pretrained=False, **kw))
        if verbose:
            print(*out[-1], sep=" | ", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=str(Path(__file__).resolve().parents[1] / "configs"))
    ap.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    ap.add_argument("--smoke", action="store_true", help="also the tiny test settings")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--time", action="store_true", help="also time one face (eager, batch 1)")
    ap.add_argument("--repeats", type=int, default=10, help="timed runs with --time")
    ap.add_argument("--variants", nargs="+", metavar="MODEL KEY=V1,V2",
                    help="one row per combination of these constructor arguments")
    ap.add_argument("-v", "--verbose", action="store_true", help="print rows as they come")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats if args.time else 0
    if args.variants:
        table = variant_rows(args.variants, repeats, args.verbose)
    else:
        table = rows(Path(args.configs), args.models or list_models(), args.smoke, args.verbose,
                     repeats)
    head = ("model", "config", "input", "params (M)", "fp32 size (MB)", "GFLOPs / face")
    if args.time:
        head += (f"ms / face ({args.threads} threads)",)
    widths = [max(len(str(r[i])) for r in [head, *table]) for i in range(len(head))]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
