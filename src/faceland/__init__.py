"""faceland: 2D facial landmark detection (face alignment).

Quick start::

    import faceland
    image = faceland.read_image("photo.jpg")            # (H, W, 3) uint8 RGB, EXIF applied
    faces = faceland.FaceLandmarker().predict(image)    # default detector + default model
    faces[0].landmarks                                  # (68, 2) image pixels, 0-based centres

Options as dataclasses (MediaPipe Tasks style), for photos and for video streams::

    lm = faceland.FaceLandmarker(options=faceland.FaceLandmarkerOptions(flip_test=True))
    video = faceland.VideoLandmarker(lm, options=faceland.VideoLandmarkerOptions(detect_every=5))
    faces = video.process(frame, timestamp_ms=t)        # tracked, smoothed TrackedFace list
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "FaceLandmarker": "faceland.inference",
    "FaceLandmarkerOptions": "faceland.inference",
    "Face": "faceland.inference",
    "VideoLandmarker": "faceland.tracking",
    "VideoLandmarkerOptions": "faceland.tracking",
    "read_image": "faceland.data.formats",
    "load_model": "faceland.checkpoint",
    "create_model": "faceland.models",
    "list_models": "faceland.models",
    "get_scheme": "faceland.schemes",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    # Lazy imports keep `faceland --help` and `import faceland` fast (torch loads on first use).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'faceland' has no attribute {name!r}")
