"""``faceland train``: train from a YAML config; the same command resumes."""

from __future__ import annotations

import argparse
import shlex
import sys

from faceland.cli.common import UserError


def apply_sets(cfg, items: list[str], config: str) -> None:
    """Apply ``--set KEY=VALUE`` items (each VALUE read as YAML) to ``cfg`` and check the result
    as a YAML file is checked (:func:`faceland.training.check_config`).

    Raises:
        UserError: a malformed item or value, an unknown key, or a value that fails the checks;
            one line naming the ``--set`` item.
    """
    import dataclasses

    import yaml

    from faceland.models.base import unknown_key_message
    from faceland.training import ConfigError, check_config

    known = [f.name for f in dataclasses.fields(cfg)]
    for kv in items:
        key, eq, text = kv.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UserError(f"--set {kv}: expected KEY=VALUE (e.g. --set epochs=10)")
        if key not in known:
            raise UserError(f"--set {kv}: " + unknown_key_message("the config", key, known)
                            + " (a nested key is set as a whole: KEY='{sub: value, ...}')")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise UserError(f"--set {kv}: {text!r} is not a valid YAML value ({problem})") \
                from None
        setattr(cfg, key, value)
    if not items:
        return
    try:
        check_config(cfg, f"{config} with " + " ".join(f"--set {kv}" for kv in items))
    except ConfigError as e:
        mine = [kv for kv in items if kv.partition("=")[0].strip() == e.key]
        if mine:
            raise UserError(f"--set {mine[-1]}: {e.problem}") from None
        raise


def cmd_train(args: argparse.Namespace) -> int:
    from faceland.training import check_out_dir, finished_run_message, load_config, train

    try:
        cfg = load_config(args.config)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    apply_sets(cfg, args.set or [], str(args.config))
    check_out_dir(cfg)
    message = finished_run_message(cfg)
    if message is not None:
        print(f"faceland: {message}")
        return 0
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
