"""What users do with 68 landmarks: head pose, five points and alignment, eye and mouth openness,
blinks (torch-free: numpy and OpenCV only).

>>> from faceland.face_analysis import head_pose, align_face, openness
>>> head_pose(face.landmarks, (width, height))     # {"yaw": ..., "pitch": ..., "roll": ...} deg
>>> chip, m = align_face(image, face.landmarks)     # 112 x 112 ArcFace chip, (2, 3) image -> chip
>>> openness(face.landmarks)                         # {"ear_left": ..., "ear_right": ..., "mar": ...}

Every 2D coordinate here is in **image pixels, 0-based pixel centres** (the centre of the top-left
pixel is ``(0, 0)``), as everywhere in faceland; landmarks are the iBUG 300-W 68-point markup
(0-based indices: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, outer lips 48-59, inner lips
60-67). "Left" and "right" are **image** left and right (the subject's right eye is the image-left
eye), as in MTFL's and ArcFace's five points.

Head pose (:func:`head_pose`)
-----------------------------
The 68 points' 3D positions on a mean face (:data:`FACE_MODEL_68`: 68 vertices of MediaPipe's
canonical face model, picked with faceland's MediaPipe-468 -> iBUG-68 map,
``faceland.schemes._MP468_TO_68``) are fitted to the image points with ``cv2.solvePnP``
(iterative Levenberg-Marquardt minimisation of the reprojection error) under a pinhole camera
whose intrinsics come from the image size alone (:func:`camera_matrix`: focal length = the
longer image side in pixels, principal point = image centre, no distortion). The fit uses
:data:`POSE_POINTS`: nose 27-35 and eyes 36-47, the rigid part of the face; the jaw contour
(0-16: the visible silhouette, which slides over the face as the head turns), the brows and the
mouth (which move with expression and speech) are left out. The mouth corners add a little to
yaw on MTFL train (balanced class accuracy 0.868 against 0.861 without them, docs/analysis.md)
but a smile raises them, which the fit reads as pitch (a smiling frontal portrait, the
astronaut: -24 deg with them, -16 deg without).

Angles are in degrees, relative to the **camera's axes** (not to the line of sight; a face at
the image edge that looks into the lens has a small yaw), with the rotation from the face to the
camera ``R = Rz(roll) Ry(-yaw) Rx(-pitch)`` in OpenCV's camera frame (x right, y down, z into the
scene; a rotation by ``a`` about an axis turns its other two axes by the right-hand rule):

* ``(0, 0, 0)``: frontal and upright;
* ``yaw > 0``: the nose turns toward larger image x;
* ``pitch > 0``: the face tilts up (the nose toward smaller image y);
* ``roll > 0``: the face turns clockwise as seen in the image (from +x toward +y). Roll is the
  last rotation, about the optical axis, so an in-plane rotation of the image about its centre
  by ``a`` (clockwise as displayed) adds exactly ``a`` to it.

Five points and alignment (:func:`landmarks5`, :func:`align_face`)
------------------------------------------------------------------
ArcFace's five points (Deng et al., CVPR 2019; order and definition of insightface's
``arcface_dst`` and of MTFL, Zhang et al., ECCV 2014): left eye centre (mean of 36-41), right eye
centre (mean of 42-47), nose tip (30), left mouth corner (48), right mouth corner (54). The
chip is the least-squares similarity (Umeyama, TPAMI 1991) from these five points to the template
(:data:`ARCFACE_TEMPLATE_112`), sampled with ``cv2.warpAffine`` (bilinear, black border): the
same chip insightface cuts for its recognition models.

Openness (:func:`openness`) and blinks (:class:`BlinkDetector`)
---------------------------------------------------------------
The eye aspect ratio of Soukupova and Cech ("Real-Time Eye Blink Detection using Facial
Landmarks", CVWW 2016, eq. 1), ``EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)`` with
``p1 .. p6`` = 36 .. 41 (image-left eye) and 42 .. 47 (image-right eye), and its mouth analogue
on the inner lips, ``MAR = (|p61 - p67| + |p62 - p66| + |p63 - p65|) / (3 |p60 - p64|)``
(0 for a closed mouth). Blinks: a threshold on the mean EAR with hysteresis.

Data: :data:`FACE_MODEL_68` holds 68 of the 468 vertices of ``canonical_face_model.obj`` from
google-ai-edge/mediapipe (``mediapipe/modules/face_geometry/data/``, git blob
``0e666d1c4e75949d1639c2bcf347a38da4834164``, SHA-256
``8bac80443397e113f41a8b565ea72c59390bc031d9defab289dba7bc0c54e618`` of the file;
Copyright Google LLC, Apache License 2.0, https://www.apache.org/licenses/LICENSE-2.0), written
out unchanged (centimetres, the OBJ's own frame) for the selected vertices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "FACE_MODEL_68",
    "POSE_POINTS",
    "ARCFACE_TEMPLATE_112",
    "TEMPLATES",
    "camera_matrix",
    "head_pose",
    "solve_head_pose",
    "rotation_from_angles",
    "angles_from_rotation",
    "project_face_model",
    "landmarks5",
    "template_points",
    "similarity_transform",
    "alignment_transform",
    "align_face",
    "eye_aspect_ratio",
    "mouth_aspect_ratio",
    "openness",
    "BlinkDetector",
    "detect_blinks",
]

# 68 vertices of MediaPipe's canonical face model (canonical_face_model.obj, google-ai-edge/
# mediapipe, Apache-2.0; see the module docstring), in iBUG-68 order: vertex
# faceland.schemes._MP468_TO_68[i] for point i. Centimetres, the OBJ's frame: x toward the
# image right of a frontal face, y up, z toward the viewer.
_MP_CANONICAL_68 = (
    (-7.743095, 2.364999, -2.005167), (-7.297331, 0.763172, -0.048769),  # 0, 1
    (-6.954154, -2.439843, -0.131163), (-6.583231, -3.941269, 0.070268),  # 2, 3
    (-5.940524, -6.223629, -0.631468), (-5.085276, -7.178590, 0.714711),  # 4, 5
    (-3.210651, -8.533278, 2.802001), (-1.292924, -9.295920, 4.094063),  # 6, 7
    (0.000000, -9.403378, 4.264492), (1.292924, -9.295920, 4.094063),  # 8, 9
    (3.210651, -8.533278, 2.802001), (5.085276, -7.178590, 0.714711),  # 10, 11
    (5.940524, -6.223629, -0.631468), (6.583231, -3.941269, 0.070268),  # 12, 13
    (6.954154, -2.439843, -0.131163), (7.297331, 0.763172, -0.048769),  # 14, 15
    (7.743095, 2.364999, -2.005167), (-5.720968, 4.254584, 2.830852),  # 16, 17
    (-4.985894, 4.802461, 3.751977), (-3.986562, 5.109487, 4.466315),  # 18, 19
    (-2.760292, 5.100971, 5.015990), (-1.395634, 5.011963, 5.316032),  # 20, 21
    (1.395634, 5.011963, 5.316032), (2.760292, 5.100971, 5.015990),  # 22, 23
    (3.986562, 5.109487, 4.466315), (4.985894, 4.802461, 3.751977),  # 24, 25
    (5.720968, 4.254584, 2.830852), (0.000000, 3.271027, 5.236015),  # 26, 27
    (0.000000, 1.728369, 6.316750), (0.000000, 0.365669, 7.242870),  # 28, 29
    (0.000000, -0.463170, 7.586580), (-1.236408, -1.585568, 5.480490),  # 30, 31
    (-0.597442, -2.013686, 5.866456), (0.000000, -2.089024, 6.058267),  # 32, 33
    (0.597442, -2.013686, 5.866456), (1.236408, -1.585568, 5.480490),  # 34, 35
    (-4.253081, 2.577646, 3.279702), (-3.670075, 2.927714, 3.724325),  # 36, 37
    (-2.724032, 2.961810, 3.871767), (-1.998311, 2.496547, 3.689148),  # 38, 39
    (-2.724032, 2.315802, 3.777151), (-3.670075, 2.360153, 3.635230),  # 40, 41
    (1.998311, 2.496547, 3.689148), (2.724032, 2.961810, 3.871767),  # 42, 43
    (3.670075, 2.927714, 3.724325), (4.253081, 2.577646, 3.279702),  # 44, 45
    (3.670075, 2.360153, 3.635230), (2.724032, 2.315802, 3.777151),  # 46, 47
    (-2.456206, -4.342621, 4.283884), (-1.431615, -3.500953, 5.496189),  # 48, 49
    (-0.711452, -3.329355, 5.877044), (0.000000, -3.706811, 5.864924),  # 50, 51
    (0.711452, -3.329355, 5.877044), (1.431615, -3.500953, 5.496189),  # 52, 53
    (2.456206, -4.342621, 4.283884), (1.325085, -5.106507, 5.205010),  # 54, 55
    (0.699606, -5.291850, 5.448304), (0.000000, -5.365123, 5.535441),  # 56, 57
    (-0.699606, -5.291850, 5.448304), (-1.325085, -5.106507, 5.205010),  # 58, 59
    (-2.204823, -4.304508, 4.162499), (-0.606033, -3.924562, 5.444923),  # 60, 61
    (0.000000, -3.994436, 5.219482), (0.606033, -3.924562, 5.444923),  # 62, 63
    (2.204823, -4.304508, 4.162499), (0.583218, -4.517982, 5.339869),  # 64, 65
    (0.000000, -4.542400, 5.404754), (-0.583218, -4.517982, 5.339869),  # 66, 67
)

#: ``(68, 3)`` float64: the 68 points on MediaPipe's canonical (mean) face, centimetres, in the
#: **face frame** used for head pose: x toward the image right, y down, z away from the camera
#: (into the head) when the face is frontal and upright, i.e. the OBJ's ``(x, -y, -z)``; then
#: the rotation from face to camera is the identity for pose ``(0, 0, 0)``. Read-only.
# x, y of the 68 points: the mean 300W training shape (2012 faces and their mirror images,
# generalised Procrustes alignment) in the canonical model's centimetres, from
# scripts/fit_pose_model.py. The canonical model's own frontal projection puts the iBUG points
# where its approximate 468 -> 68 vertex map lands (its nose tip 0.44 of the way from the eyes
# to the mouth, 300W's annotators at 0.65), which pitched a frontal portrait by -35 deg.
_XY_300W_TRAIN = (
    (-7.465598, -2.506749), (-7.404703, -0.544346),  # 0, 1
    (-7.184518, 1.412300), (-6.775378, 3.329992),  # 2, 3
    (-6.009918, 5.110258), (-4.833909, 6.661022),  # 4, 5
    (-3.398738, 7.959787), (-1.807932, 9.000797),  # 6, 7
    (0.000000, 9.299577), (1.807932, 9.000797),  # 8, 9
    (3.398738, 7.959787), (4.833909, 6.661022),  # 10, 11
    (6.009918, 5.110258), (6.775378, 3.329992),  # 12, 13
    (7.184518, 1.412300), (7.404703, -0.544346),  # 14, 15
    (7.465598, -2.506749), (-6.022802, -4.062747),  # 16, 17
    (-5.098518, -4.866550), (-3.820301, -5.105802),  # 18, 19
    (-2.496783, -4.924520), (-1.234051, -4.440111),  # 20, 21
    (1.234051, -4.440111), (2.496783, -4.924520),  # 22, 23
    (3.820301, -5.105802), (5.098518, -4.866550),  # 24, 25
    (6.022802, -4.062747), (0.000000, -2.861212),  # 26, 27
    (0.000000, -1.577622), (0.000000, -0.306710),  # 28, 29
    (0.000000, 0.998805), (-1.498342, 1.869055),  # 30, 31
    (-0.777153, 2.132325), (0.000000, 2.367446),  # 32, 33
    (0.777153, 2.132325), (1.498342, 1.869055),  # 34, 35
    (-4.529639, -2.668328), (-3.737870, -3.139751),  # 36, 37
    (-2.764766, -3.126769), (-1.948016, -2.497803),  # 38, 39
    (-2.841011, -2.308747), (-3.796471, -2.322673),  # 40, 41
    (1.948016, -2.497803), (2.764766, -3.126769),  # 42, 43
    (3.737870, -3.139751), (4.529639, -2.668328),  # 44, 45
    (3.796471, -2.322673), (2.841011, -2.308747),  # 46, 47
    (-2.864650, 4.293893), (-1.818283, 3.843233),  # 48, 49
    (-0.740000, 3.617384), (0.000000, 3.800112),  # 50, 51
    (0.740000, 3.617384), (1.818283, 3.843233),  # 52, 53
    (2.864650, 4.293893), (1.855670, 5.317636),  # 54, 55
    (0.804552, 5.759688), (0.000000, 5.840747),  # 56, 57
    (-0.804552, 5.759688), (-1.855670, 5.317636),  # 58, 59
    (-2.426172, 4.349978), (-0.750643, 4.259917),  # 60, 61
    (0.000000, 4.336112), (0.750643, 4.259917),  # 62, 63
    (2.426172, 4.349978), (0.763633, 4.791384),  # 64, 65
    (0.000000, 4.880143), (-0.763633, 4.791384),  # 66, 67
)

#: ``(68, 3)`` the 3D face the pose is fitted against, in centimetres, x toward the image right,
#: y toward the image bottom, z away from the camera: x, y the mean 300W training shape, z
#: MediaPipe's canonical face (see the module docstring).
FACE_MODEL_68 = np.column_stack([np.array(_XY_300W_TRAIN, dtype=np.float64),
                                 -np.array(_MP_CANONICAL_68, dtype=np.float64)[:, 2]])
FACE_MODEL_68.setflags(write=False)

#: 0-based indices of the 68 points the head-pose fit uses: nose 27-35, eyes 36-47, outer mouth
#: corners 48 and 54 (the jaw contour, the brows and the lips are left out).
POSE_POINTS: tuple[int, ...] = tuple(range(27, 48))

#: ``(5, 2)`` ArcFace's 112 x 112 template (insightface ``arcface_dst``): left eye centre, right
#: eye centre, nose tip, left mouth corner, right mouth corner (image left first), in chip
#: pixels as ``cv2.warpAffine`` indexes them (0-based pixel centres).
ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
ARCFACE_TEMPLATE_112.setflags(write=False)

#: Alignment templates by name: ``name -> (5, 2)`` points of a 112 x 112 chip.
TEMPLATES: dict[str, np.ndarray] = {"arcface": ARCFACE_TEMPLATE_112}

_EYES = (tuple(range(36, 42)), tuple(range(42, 48)))


def _points68(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected (68, 2) iBUG-68 landmarks, got shape {pts.shape}")
    return pts


# --------------------------------------------------------------------------------------------
# Head pose
# --------------------------------------------------------------------------------------------
def camera_matrix(image_size: tuple[int, int]) -> np.ndarray:
    """Pinhole intrinsics from the image size alone.

    Args:
        image_size: ``(width, height)`` of the image in pixels.

    Returns:
        ``(3, 3)`` float64 ``K`` with focal length ``f = max(width, height)`` pixels (a field of
        view of about 53 degrees across the longer side, typical of phone and web cameras) and
        principal point ``((width - 1) / 2, (height - 1) / 2)`` (the image centre in 0-based
        pixel centres).

    Raises:
        ValueError: a size that is not two positive numbers.
    """
    w, h = (float(v) for v in image_size)
    if not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
        raise ValueError(f"image_size must be (width, height) > 0 pixels, got {image_size!r}")
    f = max(w, h)
    return np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``(3, 3)`` rotation from the face frame to the camera frame for angles in degrees:
    ``Rz(roll) Ry(-yaw) Rx(-pitch)`` (conventions in the module docstring)."""
    y, p, r = (math.radians(v) for v in (-yaw, -pitch, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def angles_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees of a face-to-camera rotation: the inverse of
    :func:`rotation_from_angles` (yaw in ``[-90, 90]``, pitch and roll in ``(-180, 180]``)."""
    m = np.asarray(rotation, dtype=np.float64)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, float(m[2, 0])))))
    pitch = -math.degrees(math.atan2(float(m[2, 1]), float(m[2, 2])))
    roll = math.degrees(math.atan2(float(m[1, 0]), float(m[0, 0])))
    return yaw, pitch, roll


def project_face_model(rotation: np.ndarray, translation: Sequence[float],
                       image_size: tuple[int, int]) -> np.ndarray:
    """The 68 model points seen by the camera of :func:`camera_matrix`.

    Args:
        rotation: ``(3, 3)`` face-to-camera rotation (e.g. :func:`rotation_from_angles`).
        translation: ``(3,)`` position of the model's origin in the camera frame, centimetres
            (z > 0: in front of the camera).
        image_size: ``(width, height)`` pixels.

    Returns:
        ``(68, 2)`` float64 image points, pixels, 0-based pixel centres.
    """
    cam = FACE_MODEL_68 @ np.asarray(rotation, dtype=np.float64).T + np.asarray(translation,
                                                                                  dtype=np.float64)
    uv = cam @ camera_matrix(image_size).T
    return uv[:, :2] / uv[:, 2:3]


def solve_head_pose(landmarks: np.ndarray, image_size: tuple[int, int],
                    points: Sequence[int] = POSE_POINTS
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """Fit the 3D face model to 68 landmarks: ``cv2.solvePnP`` (iterative, Levenberg-Marquardt)
    from a start facing the camera, rolled as the line through the eye centres (so upside-down
    faces fit too), at the distance the points' spread implies.

    Args:
        landmarks: ``(68, 2)`` iBUG-68 points, image pixels, 0-based pixel centres.
        image_size: ``(width, height)`` of the image they lie in, pixels (sets the intrinsics,
            :func:`camera_matrix`).
        points: the 0-based indices fitted (default :data:`POSE_POINTS`; at least 6).

    Returns:
        ``(rotation, translation)``: the ``(3, 3)`` face-to-camera rotation and the ``(3,)``
        position of the model origin in the camera frame (centimetres: the model's scale is an
        average adult face, so distance is a rough estimate), or ``None`` when the points are
        not finite or the fit fails (or ends behind the camera).

    Raises:
        ValueError: not ``(68, 2)`` landmarks, a bad image size, or fewer than 6 points.
    """
    pts = _points68(landmarks)
    idx = list(points)
    if len(idx) < 6:
        raise ValueError(f"head pose needs at least 6 points, got {len(idx)}")
    img = pts[idx]
    if not np.isfinite(img).all():
        return None
    k = camera_matrix(image_size)
    obj = FACE_MODEL_68[idx]
    # start: frontal, at the distance where the model's spread matches the points' spread
    spread_img = float(np.sqrt(((img - img.mean(0)) ** 2).sum(1).mean()))
    spread_obj = float(np.sqrt(((obj[:, :2] - obj[:, :2].mean(0)) ** 2).sum(1).mean()))
    if not spread_img > 0:
        return None
    z = k[0, 0] * spread_obj / spread_img
    c = img.mean(0)
    t0 = np.array([(c[0] - k[0, 2]) * z / k[0, 0], (c[1] - k[1, 2]) * z / k[1, 1], z])
    eye_line = pts[42:48].mean(0) - pts[36:42].mean(0)
    roll0 = math.atan2(eye_line[1], eye_line[0]) if np.isfinite(eye_line).all() else 0.0
    rvec = np.array([[0.0], [0.0], [roll0]])  # Rodrigues vector of Rz(roll0)
    t0 -= rotation_from_angles(0.0, 0.0, math.degrees(roll0)) @ obj.mean(0)  # centroid on the ray
    tvec = t0.reshape(3, 1)
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, rvec, tvec, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or not np.isfinite(rvec).all() or not np.isfinite(tvec).all() or tvec[2, 0] <= 0:
        return None
    return cv2.Rodrigues(rvec)[0], tvec[:, 0]


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int],
              points: Sequence[int] = POSE_POINTS) -> dict[str, float] | None:
    """Head pose of a face from its 68 landmarks (:func:`solve_head_pose`; conventions in the
    module docstring).

    Args:
        landmarks: ``(68, 2)`` iBUG-68 points, image pixels, 0-based pixel centres.
        image_size: ``(width, height)`` of the image, pixels.
        points: 0-based indices fitted (default :data:`POSE_POINTS`).

    Returns:
        ``{"yaw": float, "pitch": float, "roll": float}`` in degrees (0, 0, 0: frontal and
        upright; yaw > 0: nose toward larger x; pitch > 0: face up; roll > 0: clockwise in the
        image), or ``None`` when the fit fails.

    Raises:
        ValueError: as :func:`solve_head_pose`.
    """
    fit = solve_head_pose(landmarks, image_size, points)
    if fit is None:
        return None
    yaw, pitch, roll = angles_from_rotation(fit[0])
    return {"yaw": yaw, "pitch": pitch, "roll": roll}


# --------------------------------------------------------------------------------------------
# Five points and alignment
# --------------------------------------------------------------------------------------------
def landmarks5(landmarks: np.ndarray) -> np.ndarray:
    """ArcFace's / MTFL's five points from 68: left eye centre (mean of 36-41), right eye centre
    (mean of 42-47), nose tip (30), left mouth corner (48), right mouth corner (54); left and
    right as seen in the image.

    Args:
        landmarks: ``(68, 2)`` iBUG-68 points (any frame; pixels in faceland).

    Returns:
        ``(5, 2)`` float64 in the same frame.

    Raises:
        ValueError: not ``(68, 2)``.
    """
    pts = _points68(landmarks)
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])


def template_points(size: int = 112, template: str = "arcface") -> np.ndarray:
    """The template's five points in a ``size x size`` chip, pixels, 0-based pixel centres.

    The 112 px template is scaled by ``size / 112``; a size that is a multiple of 128 and not of
    112 follows insightface's rule instead (the template scaled by ``size / 128`` and moved
    ``8 size / 128`` px right: the 112 px face centred in a 128 px chip).

    Raises:
        ValueError: unknown template or a size below 16 px.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown alignment template {template!r}; known: {sorted(TEMPLATES)}")
    if int(size) != size or size < 16:
        raise ValueError(f"chip size must be an integer >= 16 px, got {size!r}")
    base = TEMPLATES[template]
    if size % 112 != 0 and size % 128 == 0:
        r = size / 128.0
        return base * r + np.array([8.0 * r, 0.0])
    return base * (size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping
    ``src`` onto ``dst``: Umeyama, "Least-squares estimation of transformation parameters
    between two point patterns", TPAMI 1991, eqs. 40-42.

    Args:
        src, dst: ``(N, 2)`` corresponding points, N >= 2.

    Returns:
        ``(2, 3)`` float64 ``M`` with ``dst ~ M [x, y, 1]^T``.

    Raises:
        ValueError: shapes differ or are not ``(N, 2)`` with N >= 2, non-finite points, or all
            ``src`` points coincide.
    """
    a, b = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 2 or len(a) < 2:
        raise ValueError(f"need two (N, 2) point sets with N >= 2, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("similarity_transform: points must be finite")
    ma, mb = a.mean(0), b.mean(0)
    ac, bc = a - ma, b - mb
    var_a = (ac ** 2).sum() / len(a)
    if not var_a > 0:
        raise ValueError("similarity_transform: the source points all coincide")
    cov = bc.T @ ac / len(a)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[1, 1] = -1.0
    rot = u @ s @ vt
    scale = float((d * np.diag(s)).sum() / var_a)
    t = mb - scale * rot @ ma
    return np.hstack([scale * rot, t[:, None]])


def alignment_transform(landmarks: np.ndarray, size: int = 112, template: str = "arcface"
                        ) -> np.ndarray:
    """The ``(2, 3)`` similarity from image pixels to chip pixels that puts a face's five
    points onto the template (:func:`similarity_transform`, :func:`template_points`).

    Args:
        landmarks: ``(68, 2)`` iBUG-68 points (their :func:`landmarks5` are used) or ``(5, 2)``
            five points in ArcFace order; image pixels, 0-based pixel centres.
        size, template: the chip (see :func:`template_points`).

    Raises:
        ValueError: points of another shape, or as :func:`template_points`.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape == (68, 2):
        pts = landmarks5(pts)
    elif pts.shape != (5, 2):
        raise ValueError(f"expected (68, 2) or (5, 2) landmarks, got shape {pts.shape}")
    return similarity_transform(pts, template_points(size, template))


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112,
               template: str = "arcface") -> tuple[np.ndarray, np.ndarray]:
    """Cut the aligned face chip that face-recognition models (ArcFace / insightface) expect.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array, any channel order (kept).
        landmarks: ``(68, 2)`` iBUG-68 or ``(5, 2)`` ArcFace-order points, image pixels,
            0-based pixel centres.
        size: chip side in pixels (112 for ArcFace).
        template: ``"arcface"``.

    Returns:
        ``(chip, transform)``: the ``(size, size[, C])`` chip (``image``'s dtype, bilinear,
        black outside the image) and the ``(2, 3)`` float64 similarity mapping image pixels to
        chip pixels (``[u, v] = M [x, y, 1]``; map chip points back with
        :func:`faceland.geometry.invert_affine`).

    Raises:
        ValueError: an empty image, or as :func:`alignment_transform`.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"expected an (H, W[, C]) image, got shape {img.shape}")
    m = alignment_transform(landmarks, size, template)
    chip = cv2.warpAffine(np.ascontiguousarray(img), m, (int(size), int(size)),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return chip, m


# --------------------------------------------------------------------------------------------
# Openness and blinks
# --------------------------------------------------------------------------------------------
def eye_aspect_ratio(eye: np.ndarray) -> float:
    """Soukupova and Cech (CVWW 2016) eq. 1: ``(|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)``.

    Args:
        eye: ``(6, 2)`` points ``p1 .. p6`` (iBUG 36-41 or 42-47: corner, two upper lid
            points, corner, two lower lid points), any units.

    Returns:
        The ratio (unitless; about 0.3 open, below about 0.15 closed), ``nan`` when the corners
        coincide.
    """
    p = np.asarray(eye, dtype=np.float64)
    width = float(np.linalg.norm(p[0] - p[3]))
    height = float(np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4]))
    return height / (2.0 * width) if width > 0 else float("nan")


def mouth_aspect_ratio(landmarks: np.ndarray) -> float:
    """The inner-lip analogue of the eye aspect ratio:
    ``(|p61 - p67| + |p62 - p66| + |p63 - p65|) / (3 |p60 - p64|)`` (iBUG-68, 0-based).

    Args:
        landmarks: ``(68, 2)`` points, any units.

    Returns:
        The ratio (unitless; 0 closed, about 0.5 and above wide open), ``nan`` when the inner
        mouth corners coincide.

    Raises:
        ValueError: not ``(68, 2)``.
    """
    p = _points68(landmarks)
    width = float(np.linalg.norm(p[60] - p[64]))
    height = float(sum(np.linalg.norm(p[a] - p[b]) for a, b in ((61, 67), (62, 66), (63, 65))))
    return height / (3.0 * width) if width > 0 else float("nan")


def openness(landmarks: np.ndarray) -> dict[str, float]:
    """Eye and mouth openness of a face.

    Args:
        landmarks: ``(68, 2)`` iBUG-68 points (image pixels; the ratios are unitless).

    Returns:
        ``{"ear_left": float, "ear_right": float, "mar": float}``: the eye aspect ratio of the
        image-left eye (36-41) and the image-right eye (42-47) and the mouth aspect ratio
        (:func:`eye_aspect_ratio`, :func:`mouth_aspect_ratio`).

    Raises:
        ValueError: not ``(68, 2)``.
    """
    p = _points68(landmarks)
    return {"ear_left": eye_aspect_ratio(p[36:42]), "ear_right": eye_aspect_ratio(p[42:48]),
            "mar": mouth_aspect_ratio(p)}


class BlinkDetector:
    """Blinks of one face in a stream: a threshold with hysteresis on the mean EAR of both eyes
    (Soukupova and Cech, CVWW 2016, Sect. 2: a blink is the EAR falling below a threshold and
    returning; hysteresis and a minimum length keep landmark noise from counting as blinks).

    The eyes count as closed when the EAR falls below ``t_low`` and as open again when it rises
    above ``t_high``; a closure of at least ``min_frames`` frames (and at most ``max_frames``,
    when given: longer is not a blink) that reopens is one blink, reported on the frame the eyes
    reopen. A missing value (``nan``: no face) ends a closure without a blink.

    By default (``baseline_frames > 0``) the thresholds are **fractions of the face's own open-eye
    EAR**: the median of its last ``baseline_frames`` values while the eyes were open. Frames
    before the baseline has ``min(5, baseline_frames)`` values never close; a closure longer than
    ``baseline_frames`` ends without a blink and restarts the baseline. Relative thresholds,
    because open-eye EAR differs between people and landmark models do not close the lids
    fully: on the 82 faces of 300W train (the default model's own training images) whose
    annotated eyes are closed (annotated mean EAR < 0.15), the default model's EAR is 0.215
    (median), 0.64 of the open faces' 0.335, and only 32 % of them fall below Soukupova and
    Cech's absolute 0.2 (docs/analysis.md). With ``baseline_frames=0`` the thresholds are
    absolute EAR values (e.g. ``t_low=0.2, t_high=0.24``).

    Args:
        t_low, t_high: thresholds (fractions of the baseline, or EAR values), ``0 < t_low <=
            t_high``. Defaults 0.8 and 0.9: above the 90th percentile (0.77) of closed train eyes'
            EAR over the open median.
        min_frames: least frames below ``t_low`` before reopening, >= 1.
        max_frames: most closed frames of a blink, or ``None``.
        baseline_frames: frames in the running median (60: 2 s at 30 frames/s), or 0.

    Attributes:
        count: blinks so far.
        closed: the eyes are closed now.

    Raises:
        ValueError: thresholds or frame counts out of range.
    """

    def __init__(self, t_low: float = 0.8, t_high: float = 0.9, min_frames: int = 1,
                 max_frames: int | None = None, baseline_frames: int = 60) -> None:
        if not (0 < t_low <= t_high) or min_frames < 1 or baseline_frames < 0 or (
                max_frames is not None and max_frames < min_frames):
            raise ValueError(f"need 0 < t_low <= t_high, 1 <= min_frames <= max_frames and "
                             f"baseline_frames >= 0; got {t_low}, {t_high}, {min_frames}, "
                             f"{max_frames}, {baseline_frames}")
        self.t_low, self.t_high = float(t_low), float(t_high)
        self.min_frames, self.max_frames = int(min_frames), max_frames
        self.baseline_frames = int(baseline_frames)
        self.reset()

    def reset(self) -> None:
        """Forget the state, the baseline and the count."""
        from collections import deque

        self.count = 0
        self.closed = False
        self._run = 0
        self._history: deque[float] = deque(maxlen=max(1, self.baseline_frames))

    def level(self, ear: float) -> float:
        """``ear`` on the thresholds' scale: over the baseline (``nan`` until it has enough
        frames), or itself with ``baseline_frames=0``."""
        if self.baseline_frames == 0:
            return ear
        if len(self._history) < min(5, self.baseline_frames):
            return float("nan")
        base = float(np.median(self._history))
        return ear / base if base > 0 else float("nan")

    def update(self, ear: float) -> bool:
        """One frame's EAR (the mean of both eyes; unitless). Returns ``True`` on the frame a
        blink ends (the eyes reopen after a closure of ``min_frames`` .. ``max_frames``)."""
        if not math.isfinite(ear):
            self.closed, self._run = False, 0
            return False
        x = self.level(ear)
        if self.baseline_frames and not self.closed:
            self._history.append(float(ear))  # the baseline is the open eyes' level
        if not math.isfinite(x):
            return False
        if self.closed:
            if x > self.t_high:
                blink = self._run >= self.min_frames and (
                    self.max_frames is None or self._run <= self.max_frames)
                self.closed, self._run = False, 0
                self.count += int(blink)
                return blink
            self._run += 1
            if self.baseline_frames and self._run > self.baseline_frames:
                # closed longer than the baseline window: no blink, and the eyes' level may
                # have changed (a squint, another light): start the baseline anew
                self.closed, self._run = False, 0
                self._history.clear()
            return False
        if x < self.t_low:
            self.closed, self._run = True, 1
        return False


def detect_blinks(ears: Sequence[float] | np.ndarray, **params: float) -> list[tuple[int, int]]:
    """Blinks in a whole EAR sequence (:class:`BlinkDetector` with ``params``).

    Args:
        ears: per frame, the mean EAR of both eyes (unitless; ``nan``: no face).

    Returns:
        ``(first closed frame, reopening frame)`` per blink, 0-based frame indices.

    Raises:
        ValueError: as :class:`BlinkDetector`.
    """
    det = BlinkDetector(**params)
    out, start = [], 0
    for i, e in enumerate(np.asarray(ears, dtype=np.float64)):
        was_closed = det.closed
        if det.update(float(e)):
            out.append((start, i))
        if det.closed and not was_closed:
            start = i
    return out
