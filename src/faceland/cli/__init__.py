"""The ``faceland`` command: predict, align, evaluate, train, export, models (one module each).

Errors in the user's input (missing file, corrupt image, bad config) print one line
``faceland: error: <file>: <problem>`` and exit with status 2; in a directory run a bad image is
reported and skipped, and the exit status is 1 if any image failed.
"""

from __future__ import annotations

import argparse
import logging
import sys

from faceland.cli import align, evaluate, export, models, predict, train
from faceland.cli.common import UserError

__all__ = ["UserError", "build_parser", "main"]


def _require_extras(args: argparse.Namespace) -> None:
    """Commands of the ``train`` extra say so in one line on the core install."""
    from faceland.errors import require_extra

    if args.command in ("train", "export"):
        require_extra(f"faceland {args.command}")
        if args.command == "train":
            require_extra("faceland train", "pytorch_lightning")
    if getattr(args, "runtime", None) == "torch":
        require_extra("--runtime torch")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    ap = argparse.ArgumentParser(prog="faceland", description="2D facial landmark detection.")
    ap.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = ap.add_subparsers(dest="command", required=True)
    for command in (predict, align, evaluate, train, export, models):
        command.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    import warnings

    # a library warning (e.g. a video whose frame size changes) is one line, like the errors
    warnings.formatwarning = lambda msg, *a, **k: f"faceland: warning: {msg}\n"
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="faceland: %(levelname)s: %(message)s")
    from faceland.errors import FormatError, UnknownNameError

    for opt in ("every", "detect_every", "batch"):
        if getattr(args, opt, 1) < 1:
            print(f"faceland: error: --{opt.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if getattr(args, "camera", None) is not None and args.smoothing == "savgol":
        print("faceland: error: --smoothing savgol needs whole tracks: files only, not --camera",
              file=sys.stderr)
        return 2
    try:
        _require_extras(args)
        return args.func(args)
    except (UserError, FormatError, FileNotFoundError, ImportError, ValueError,
            UnknownNameError) as e:
        print(f"faceland: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("faceland: interrupted", file=sys.stderr)
        return 130

