"""``faceland train``: train from a YAML config; the same command resumes."""

from __future__ import annotations

import argparse
import shlex
import sys

from faceland.cli.common import UserError


def cmd_train(args: argparse.Namespace) -> int:
    from faceland.training import load_config, train

    try:
        cfg = load_config(args.config)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    import yaml

    from faceland.training import check_config

    for kv in args.set or []:
        key, _, val = kv.partition("=")
        if not hasattr(cfg, key):
            raise UserError(f"--set {kv}: unknown config key {key!r}")
        setattr(cfg, key, yaml.safe_load(val))
    check_config(cfg, "--set")
    command = shlex.join(["faceland", "train", str(args.config)]
                         + [a for kv in args.set or [] for a in ("--set", kv)])
    import signal

    from faceland.training import TrainingInterrupted

    # SIGTERM (kill, a scheduler's pre-emption) stops like Ctrl-C: checkpoint, message, 130.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        path = train(cfg, command=command)
    except (TrainingInterrupted, KeyboardInterrupt) as e:
        done = getattr(e, "epochs_done", None)
        where = f" after {done} finished epoch(s)" if done is not None else ""
        print(f"faceland: interrupted{where}; resume with: {command}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"wrote {path}")
    return 0


def register(sub) -> None:
    """Add the command's parser to ``sub``."""
    p = sub.add_parser("train", help="train from a YAML config (resumes from last.ckpt)")
    p.add_argument("config", help="YAML config, see configs/")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.set_defaults(func=cmd_train)
