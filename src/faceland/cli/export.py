"""``faceland export``: a model to ONNX."""

from __future__ import annotations

import argparse


def cmd_export(args: argparse.Namespace) -> int:
    from faceland.checkpoint import load_model
    from faceland.export import export_onnx

    model, card = load_model(args.model)
    path = export_onnx(model, args.out, card)
    print(f"wrote {path} (+ {path.with_suffix('.json').name})")
    return 0


def register(sub) -> None:
    """Add the command's parser to ``sub``."""
    p = sub.add_parser("export", help="export a model to ONNX (use it with --model FILE.onnx)")
    p.add_argument("--model", default=None, help="weights (.safetensors) or name; default model")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.set_defaults(func=cmd_export)
