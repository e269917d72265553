"""``faceland evaluate``: NME / FR / AUC of a model or stored predictions on a benchmark split.

Bad input ends in one line ``faceland: error: <file or value>: <problem>`` (exit 2) before any
evaluation runs where it can be known then: output paths (``--json`` a folder, under a file, in a
folder that cannot be written, a symbolic link), a malformed ``--predictions`` file. Annotated faces
left out for a missing image are warned about on stderr and counted in ``n_skipped``.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from faceland.cli.common import DETECTOR_HELP, RUNTIME_HELP, UserError


def cmd_evaluate(args: argparse.Namespace) -> int:
    from faceland.data.datasets import DATASETS
    from faceland.evaluation import (
        check_outputs,
        have_plotting,
        read_predictions,
        run_evaluation,
        summary,
    )
    from faceland.inference import FaceLandmarker

    root = Path(args.root)
    if not root.exists():
        raise UserError(f"{root}: data set folder not found")
    # Output paths first: a bad --json / --ced must not cost a model load and an evaluation
    # (the default paths, named after the model, are checked by run_evaluation before it loads
    # the data set).
    if args.json or args.ced:
        ced = args.ced or (Path(args.json).with_suffix(".png") if have_plotting() else None)
        check_outputs(args.json, ced, ("--json", "--ced"))
    lm = None
    if args.predictions:  # another system's stored predictions, scored the same way
        if args.model or args.flip_test:
            raise UserError("--predictions scores a file: it takes no --model or --flip-test")
        stored = read_predictions(args.predictions)["box_source"]
        if stored != args.boxes:
            raise UserError(f"{args.predictions}: holds predictions from {stored} boxes; "
                            f"pass --boxes {stored}")
    elif args.model == "dlib":  # another system through the same harness (faceland[dlib])
        from faceland.external import create_external

        lm = create_external("dlib")
    else:
        lm = FaceLandmarker(args.model, flip_test=args.flip_test, runtime=args.runtime,
                            detector=args.detector if args.boxes == "detector" else None)
    split = args.split if DATASETS[args.dataset].splits else None
    res, json_path, ced = run_evaluation(
        args.dataset, root, lm, predictions=args.predictions or None, split=split,
        annotations=args.annotations, boxes=args.boxes,
        command=shlex.join(["faceland", *args.argv]), json_path=args.json, ced_path=args.ced,
        progress=True)
    print(summary(res))
    print(f"wrote {json_path} and {ced}" if ced else f"wrote {json_path}")
    return 0


def register(sub) -> None:
    """Add the command's parser to ``sub``."""
    p = sub.add_parser("evaluate", help="NME / FR / AUC on a benchmark split")
    from faceland.data.datasets import DATASETS

    p.add_argument("--dataset", choices=list(DATASETS), default="300w",
                   help="; ".join(f"{d.name}: {d.help}" for d in DATASETS.values()))
    p.add_argument("--root", required=True, help="data set folder (coco/wflw: the images folder)")
    p.add_argument("--annotations", default=None, help="coco: the JSON; wflw: the list file")
    p.add_argument("--split", default="common",
                   help="300w: train | common | challenge | full | private; imm: all | train | test")
    p.add_argument("--boxes", choices=["gt", "detector"], default="gt",
                   help="crop from the gt landmark box or from the face detector")
    p.add_argument("--model", default=None,
                   help="weights (.safetensors / .onnx) or name; 'dlib' evaluates dlib's 68-point "
                        "predictor (faceland[dlib]); default: the shipped model")
    p.add_argument("--flip-test", action="store_true", help="flip test-time augmentation")
    p.add_argument("--runtime", choices=["auto", "onnx", "openvino", "torch"], default="auto",
                   help=RUNTIME_HELP)
    p.add_argument("--detector", default="default", help="--boxes detector: " + DETECTOR_HELP)
    p.add_argument("--predictions", default=None, metavar="FILE",
                   help="score another system's stored predictions (JSON, see "
                        "faceland.evaluation.evaluate_predictions) instead of running a model")
    p.add_argument("--json", default=None, help="result JSON (default results/<set>.json)")
    p.add_argument("--ced", default=None, help="CED plot PNG (default: beside the JSON)")
    p.set_defaults(func=cmd_evaluate)
