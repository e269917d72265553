"""``faceland models``: architectures, shipped weights and detectors."""

from __future__ import annotations

import argparse


def cmd_models(args: argparse.Namespace) -> int:
    from faceland.detectors import DEFAULT_DETECTOR, DETECTORS
    from faceland.models import list_models
    from faceland.pretrained import PRETRAINED, list_pretrained

    print("architectures:", ", ".join(list_models()))
    print("shipped weights (research use only; --model NAME):")
    for name in list_pretrained():
        m = PRETRAINED[name]
        flags = "".join([" (default)" if m.default else "", " [+ .onnx]" if m.onnx else ""])
        print(f"  {name}{flags}: {m.architecture}, {m.scheme}-point scheme, {m.input_size} px; "
              f"{m.summary}")
    print("detectors:", ", ".join(f"{d} (default)" if d == DEFAULT_DETECTOR else d
                                  for d in DETECTORS))
    return 0


def register(sub) -> None:
    """Add the command's parser to ``sub``."""
    p = sub.add_parser("models", help="list architectures and shipped weights")
    p.set_defaults(func=cmd_models)
