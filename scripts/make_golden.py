"""Write the golden outputs the test suite compares the shipped models against.

    python scripts/make_golden.py            # rewrites tests/data/golden_astronaut.json

For every shipped 68-point model: its landmarks and per-point scores on ``assets/astronaut.jpg``
from one fixed landmark box (no detector, so a detector change cannot move them), eager
PyTorch. ``tests/test_golden.py`` checks both runtimes against them with ``allclose`` (1e-3 px,
1e-4 in score), so a sub-pixel change to a model, its weights, the crop geometry or the exported
graph fails loudly. Run this only for an intended change, and say why in the commit.
"""

from __future__ import annotations

from pathlib import Path

from faceland.data.formats import read_image
from faceland.inference import FaceLandmarker
from faceland.outputs import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "golden_astronaut.json"
#: The landmark box used for every model: ``[x0, y0, x1, y1]``, image pixels, 0-based centres.
BOX = [179.0, 87.0, 272.0, 179.0]


def shipped_68() -> list[str]:
    """Names of the shipped weights with the 68-point scheme."""
    from faceland.pretrained import PRETRAINED

    return sorted(name for name, m in PRETRAINED.items() if m.scheme == "68")


def main() -> None:
    img = read_image(REPO / "assets" / "astronaut.jpg")
    doc = {"image": "assets/astronaut.jpg", "box": BOX,
           "frame": "image pixels, 0-based pixel centres", "runtime": "torch", "models": {}}
    for name in shipped_68():
        lm = FaceLandmarker(name, detector=None, runtime="torch")
        pts, scores = lm.landmarks_from_boxes(img, [BOX], return_scores=True)
        doc["models"][name] = {
            "landmarks": [[round(float(x), 4), round(float(y), 4)] for x, y in pts[0]],
            "point_scores": None if scores is None else [round(float(s), 6) for s in scores[0]]}
        print(name)
    atomic_write_json(OUT, doc, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
