"""MediaPipe Face Mesh timing on faceland's benchmark photo and clip (run in MediaPipe's own venv).

MediaPipe 0.10.21 needs numpy < 2, so it runs in a separate environment; this script imports
only faceland's torch-free, numpy-1-compatible modules (``PYTHONPATH=src``)::

    python3 -m venv /tmp/mpenv && /tmp/mpenv/bin/pip install mediapipe==0.10.21 "numpy<2"
    PYTHONPATH=src /tmp/mpenv/bin/python benchmarks/mediapipe_timing.py --repeats 200

Prints one JSON line: median ms of static image mode on the 640 x 480 photo (MediaPipe's face
detector + mesh, 468 points, ``refine_landmarks`` off) and median ms per frame in video mode
(``static_image_mode=False``: the mesh tracks and its detector runs only when tracking is lost).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from faceland.profiling import median_ms, reference_clip, reference_photo


def main() -> None:
    import mediapipe as mp

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    photo = reference_photo()
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                         refine_landmarks=False) as mesh:
        assert mesh.process(photo).multi_face_landmarks, "MediaPipe found no face"
        static = median_ms(lambda: mesh.process(photo), args.repeats)
    frames = reference_clip(args.frames)
    times = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1,
                                         refine_landmarks=False) as mesh:
        for f in frames:
            t0 = time.perf_counter()
            mesh.process(f)
            times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"mediapipe": mp.__version__, "photo_ms": round(static, 3),
                      "video_ms_per_frame": round(float(np.median(times[30:])), 3)}))


if __name__ == "__main__":
    main()
