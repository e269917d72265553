"""``faceland export``: a model to ONNX."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from faceland.cli.common import UserError


def check_export_model(model: str | None) -> None:
    """Refuse, in one line, a ``--model`` that is not saved weights or a model name: an ONNX
    graph (already exported) or a training checkpoint."""
    if model is None:
        return
    p = Path(model)
    if p.suffix.lower() == ".onnx":
        raise UserError(f"--model {model}: export takes saved weights (.safetensors) or a model "
                        f"name (see `faceland models`); {p.name} is already an ONNX graph (run it "
                        "with `faceland predict --model` as it is)")
    if p.suffix.lower() == ".ckpt":
        raise UserError(f"--model {model}: export takes saved weights (.safetensors) or a model "
                        f"name; {p.name} is a training checkpoint (a finished run exports its "
                        "best one as model.safetensors in its out_dir)")


def check_export_out(out: str) -> Path:
    """Check, before the model loads, that ``out`` can become the exported ``.onnx`` file (its
    card goes beside it as ``.json``); creates its folder.

    Raises:
        UserError: ``out`` is a directory or lies under a regular file, does not end in
            ``.onnx``, or its folder cannot be written; one line naming it.
    """
    p = Path(out)
    if p.is_dir():
        raise UserError(f"--out {out}: is a directory; give the .onnx file to write, e.g. "
                        f"--out {p / 'model.onnx'}")
    if p.suffix.lower() != ".onnx":
        raise UserError(f"--out {out}: the exported graph's name must end in .onnx (its card "
                        f"is written beside it as {p.with_suffix('.json').name})")
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"--out {out}: {parent} is a file, not a folder")
    if p.exists() and not p.is_file():
        raise UserError(f"--out {out}: exists and is not a regular file")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".check")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise UserError(f"--out {out}: cannot be written ({e.strerror or e})") from None
    return p


def cmd_export(args: argparse.Namespace) -> int:
    check_export_model(args.model)
    out = check_export_out(args.out)
    from faceland.checkpoint import load_model
    from faceland.export import export_onnx

    model, card = load_model(args.model)
    try:
        path = export_onnx(model, out, card)
    except RuntimeError as e:  # incl. torch.onnx.errors.OnnxExporterError (an unsupported op)
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--model {args.model or 'default'}: cannot be exported to ONNX ({text})") \
            from None
    print(f"wrote {path} (+ {path.with_suffix('.json').name})")
    return 0


def register(sub) -> None:
    """Add the command's parser to ``sub``."""
    p = sub.add_parser("export", help="export a model to ONNX (use it with --model FILE.onnx)")
    p.add_argument("--model", default=None, help="weights (.safetensors) or name; default model")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.set_defaults(func=cmd_export)
