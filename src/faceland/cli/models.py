"""``faceland models``: architectures, shipped weights and detectors."""

from __future__ import annotations

import argparse


def cmd_models(args: argparse.Namespace) -> int:
    import importlib.util

    from faceland.detectors import DEFAULT_DETECTOR, DETECTORS
    from faceland.pretrained import PRETRAINED, list_pretrained

    if importlib.util.find_spec("torch") is not None:
        from faceland.models import list_models

        print("architectures:", ", ".join(list_models()))
    else:  # the core install runs shipped models; building and training them needs torch
        print("architectures: listed, built and trained with the train extra "
              "(pip install 'faceland[train]')")
    print("shipped weights (research use only; --model NAME; each runs through its ONNX graph):")
    for name in list_pretrained():
        m = PRETRAINED[name]
        flags = " (default)" if m.default else ""
        print(f"  {name}{flags}: {m.architecture}, {m.scheme}-point scheme, {m.input_size} px; "
              f"{m.summary}")
    print("detectors:", ", ".join(f"{d} (default)" if d == DEFAULT_DETECTOR else d
                                  for d in DETECTORS))
    return 0


def register(sub) -> None:
    """Add the command's parser to ``sub``."""
    p = sub.add_parser("models", help="list architectures and shipped weights")
    p.set_defaults(func=cmd_models)
