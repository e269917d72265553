"""Landmark schemes (markups) as data: point count, flip permutation and NME normalisation.

Every index in this module is 0-based. A scheme does not fix a coordinate frame; faceland's
internal convention for coordinates is documented in :mod:`faceland.geometry`.

Sources: iBUG 300-W 68-point markup (Sagonas et al., 300 Faces In-the-Wild Challenge, 2013);
WFLW 98 points (Wu et al., "Look at Boundary", CVPR 2018); COFW 29 points (Burgos-Artizzu et al.,
ICCV 2013); AFLW 19 points (Zhu et al., CVPR 2016 protocol); IMM 58 points (Nordstrom et al.,
"The IMM Face Database", 2004); MediaPipe Face Mesh 468 vertices (Kartynnik et al., CVPR
Workshops 2019). Flip pairs are those used by MMPose / HRNet for the public sets;
the IMM pairs were derived from the ``.asf`` contour paths, the MediaPipe pairs measured on
mirrored faces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faceland.errors import UnknownNameError

__all__ = ["LandmarkScheme", "SCHEMES", "get_scheme", "IMM_NOSE_TIP", "SCHEME_MAPS",
           "convert_points", "FIVE_FROM_68", "five_point_matrix"]


def _perm_from_pairs(n: int, pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    perm = list(range(n))
    for a, b in pairs:
        if perm[a] != a or perm[b] != b:
            raise ValueError(f"index used twice in flip pairs: ({a}, {b})")
        perm[a], perm[b] = b, a
    return tuple(perm)


@dataclass(frozen=True)
class LandmarkScheme:
    """A landmark markup.

    Attributes:
        name: short identifier (``"68"``, ``"98"``, ``"29"``, ``"19"``, ``"58"``).
        num_points: K, the number of landmarks.
        flip_pairs: pairs ``(i, j)`` of 0-based indices that swap under a horizontal flip.
        iod_pair: 0-based indices of the outer eye corners (inter-ocular normalisation), or
            ``None`` where the protocol uses the box size (AFLW).
        ipd_groups: two tuples of 0-based indices whose means are the pupil centres
            (inter-pupil normalisation), or ``None``.
        description: a human-readable name of the markup.
        parent: for a subset scheme, the name of the scheme the annotation files use (records
            then carry the parent's points, e.g. the crop box comes from all of them); ``None``
            for a full markup.
        indices: for a subset scheme, the parent's 0-based indices it keeps, in order.
    """

    name: str
    num_points: int
    flip_pairs: tuple[tuple[int, int], ...]
    iod_pair: tuple[int, int] | None
    ipd_groups: tuple[tuple[int, ...], tuple[int, ...]] | None
    description: str = ""
    parent: str | None = None
    indices: tuple[int, ...] | None = None
    flip_permutation: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        perm = _perm_from_pairs(self.num_points, list(self.flip_pairs))
        object.__setattr__(self, "flip_permutation", perm)
        if (self.parent is None) != (self.indices is None) or (
                self.indices is not None and len(self.indices) != self.num_points):
            raise ValueError(f"scheme {self.name}: parent and indices ({self.num_points}) go "
                             f"together")

    @property
    def default_norm(self) -> str:
        """The protocol's NME normalisation: ``"iod"`` where an inter-ocular pair exists, else
        ``"box"`` (AFLW, single-point schemes)."""
        return "iod" if self.iod_pair is not None else "box"

    def select(self, points: np.ndarray) -> np.ndarray:
        """Points of the parent markup ``(..., K_parent, 2)`` -> this scheme's ``(..., K, 2)``.

        A full markup (no parent) returns its input unchanged.
        """
        if self.indices is None:
            return points
        return points[..., list(self.indices), :]

    def flip(self, points: np.ndarray, width: float) -> np.ndarray:
        """Mirror landmarks horizontally and swap left/right indices.

        Args:
            points: ``(K, 2)`` or ``(N, K, 2)`` array, pixels, 0-based pixel-centre coordinates.
            width: image (or crop) width W in pixels; x becomes ``W - 1 - x``.

        Returns:
            Array of the same shape: the landmarks of the mirrored image.

        Raises:
            ValueError: if the point count is not K.
        """
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape[-2:] != (self.num_points, 2):
            raise ValueError(
                f"scheme {self.name} expects (..., {self.num_points}, 2) points, got {pts.shape}"
            )
        out = pts[..., list(self.flip_permutation), :].copy()
        out[..., 0] = width - 1 - out[..., 0]
        return out

    def flip_normalized(self, points: np.ndarray, x_offset: float = 0.0) -> np.ndarray:
        """:meth:`flip` in normalised crop coordinates: x becomes ``1 - x + 2 b``, left/right
        indices swapped.

        Args:
            points: ``(..., K, 2)`` normalised crop coordinates ``(u + 0.5) / N`` (0 and 1 are the
                crop's outer edges), any float dtype (kept).
            x_offset: the labels' left-right annotation bias ``b`` in the same units
                (:attr:`faceland.transforms.AugmentConfig.flip_x_offset`; 0: plain mirror).

        Returns:
            Array of the same shape and dtype: the landmarks of the mirrored crop.

        Raises:
            ValueError: if the point count is not K.
        """
        pts = np.asarray(points)
        if pts.shape[-2:] != (self.num_points, 2):
            raise ValueError(
                f"scheme {self.name} expects (..., {self.num_points}, 2) points, got {pts.shape}"
            )
        out = pts[..., list(self.flip_permutation), :].copy()
        out[..., 0] = 1.0 - out[..., 0] + 2.0 * x_offset
        return out


_P68 = [
    (0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9),
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),
    (31, 35), (32, 34),
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (58, 56), (59, 55), (60, 64), (61, 63), (67, 65),
]
_P98 = [(i, 32 - i) for i in range(16)] + [
    (33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
    (55, 59), (56, 58),
    (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
    (76, 82), (77, 81), (78, 80), (87, 83), (86, 84), (88, 92), (89, 91), (95, 93), (96, 97),
]
_P29 = [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19),
        (22, 23)]
_P19 = [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17)]
# IMM 58 (from the .asf paths): jaw 0-12, eye rings 13-20 / 21-28, brows 29-33 / 34-38,
# mouth 39-46, nose 47-57.
#: The IMM nose tip: point 52 (0-based), the middle of the 11-point nose path 47-57 (the lowest
#: point of that path in 30 of the 37 shared IMM faces, within 1 px in the others),
#: self-symmetric under the flip. It is the "nose tip keypoint" of the CS194-26 exercise
#: (index -6 of the 58 points).
IMM_NOSE_TIP = 52
_P58 = [(i, 12 - i) for i in range(6)] + [(13 + i, 21 + i) for i in range(8)] + [
    (29 + i, 34 + i) for i in range(5)
] + [(39, 43), (40, 42), (44, 46), (47, 57), (48, 56), (49, 55), (50, 54), (51, 53)]

# MediaPipe Face Mesh, 468 vertices (Kartynnik et al., "Real-time Facial Surface Geometry from
# Monocular Video on Mobile GPUs", CVPR Workshops 2019). Mirror pairs as runs
# (first vertex, its mirror, run length), measured by running MediaPipe 0.10.21 on 200 300W-train
# faces and on their mirror images (scripts/mediapipe_predictions.py --fit-map: a majority vote,
# made symmetric, that is an involution); the other 28 vertices lie on the midline.
_MP468_RUNS = ((3, 248, 1), (7, 249, 1), (20, 250, 74), (95, 324, 56), (153, 380, 11),
               (165, 391, 3), (169, 394, 6), (176, 400, 19), (196, 419, 1), (198, 420, 1),
               (201, 421, 47))
_P468 = [(a + i, b + i) for a, b, n in _MP468_RUNS for i in range(n)]

SCHEMES: dict[str, LandmarkScheme] = {
    s.name: s
    for s in [
        LandmarkScheme("68", 68, tuple(_P68), (36, 45),
                       (tuple(range(36, 42)), tuple(range(42, 48))), "iBUG 300-W 68 points"),
        LandmarkScheme("98", 98, tuple(_P98), (60, 72), ((96,), (97,)), "WFLW 98 points"),
        LandmarkScheme("29", 29, tuple(_P29), (8, 9), ((16,), (17,)), "COFW 29 points"),
        LandmarkScheme("19", 19, tuple(_P19), None, None, "AFLW 19 points (box normalisation)"),
        LandmarkScheme("58", 58, tuple(_P58), (21, 13),
                       (tuple(range(21, 29)), tuple(range(13, 21))), "IMM 58 points"),
        LandmarkScheme("1", 1, (), None, None, "IMM nose tip (point 52 of the IMM 58)",
                       parent="58", indices=(IMM_NOSE_TIP,)),
        LandmarkScheme("5", 5, ((0, 1), (3, 4)), None, ((0,), (1,)),
                       "MTFL 5 points: eye centres, nose tip, mouth corners (image left first)"),
        LandmarkScheme("468", 468, tuple(_P468), (33, 263), None,
                       "MediaPipe Face Mesh 468 vertices (outer eye corners 33 / 263)"),
    ]
}


def get_scheme(name: str | int) -> LandmarkScheme:
    """Return the scheme called ``name`` (``"68"``, ``98``, ...).

    Raises:
        KeyError: with the list of known schemes, if ``name`` is unknown.
    """
    key = str(name)
    if key not in SCHEMES:
        raise UnknownNameError(f"unknown landmark scheme {name!r}; known: {sorted(SCHEMES)}")
    return SCHEMES[key]


# WFLW 98 -> iBUG 68 (approximate: WFLW's eyelid points 61/63/69/71 sit at 1/4 and 3/4 of the
# lid rather than at 68's 1/3 and 2/3; contours are subsampled every second point).
_W98_TO_68 = (
    list(range(0, 33, 2))  # jaw 0-16 <- contour 0, 2, ..., 32
    + [33, 34, 35, 36, 37]  # right brow (image left) <- upper brow contour
    + [42, 43, 44, 45, 46]  # left brow
    + [51, 52, 53, 54]  # nose bridge
    + [55, 56, 57, 58, 59]  # nostrils
    + [60, 61, 63, 64, 65, 67]  # right eye: corner, upper lid x2, corner, lower lid x2
    + [68, 69, 71, 72, 73, 75]  # left eye
    + list(range(76, 96))  # mouth: outer 12 + inner 8, same order
)

# MediaPipe 468 -> iBUG 68 (approximate): for each flip pair of the 68 points, the mirror-symmetric
# pair of mesh vertices nearest on average (in inter-ocular units) to the 300W annotation, over
# MediaPipe 0.10.21's meshes of the 2012 300W-train faces here; midline points get the nearest
# midline vertex (scripts/mediapipe_predictions.py --fit-map). Mean distance of the chosen vertices
# on train: 5.2 % of the IOD. The mesh lies on the face surface, so the jaw (300W: the visible
# contour) is the least faithful part, above all for turned faces.
_MP468_TO_68 = (
    127, 227, 177, 215, 172, 136, 149, 148, 152, 377, 378, 365, 397, 435, 401, 447, 356,  # jaw
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # brows
    168, 197, 5, 4, 240, 97, 2, 326, 460,  # nose
    7, 160, 158, 155, 153, 144, 382, 385, 387, 249, 373, 380,  # eyes
    61, 39, 37, 11, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips
    62, 38, 13, 268, 292, 317, 14, 87,  # inner lips
)

#: ``(source, target) -> source indices``: ``target_points = source_points[indices]``.
SCHEME_MAPS: dict[tuple[str, str], tuple[int, ...]] = {("98", "68"): tuple(_W98_TO_68),
                                                        ("468", "68"): _MP468_TO_68}


#: MTFL's 5 points as functions of the iBUG 68 (0-based; each is the mean of its group): left eye
#: centre (image left) = mean of 36-41, right eye centre = mean of 42-47, nose tip = 30, mouth
#: corners = 48 / 54 (the correspondence suggested by MTFL's description, Zhang et al., ECCV 2014).
FIVE_FROM_68: tuple[tuple[int, ...], ...] = (tuple(range(36, 42)), tuple(range(42, 48)), (30,),
                                              (48,), (54,))


def five_point_matrix() -> np.ndarray:
    """``(5, 68)`` float32 matrix ``M`` with ``points5 = M @ points68`` (rows sum to 1), from
    :data:`FIVE_FROM_68`; used to supervise a 68-point model with 5-point labels."""
    m = np.zeros((5, 68), dtype=np.float32)
    for i, group in enumerate(FIVE_FROM_68):
        m[i, list(group)] = 1.0 / len(group)
    return m


def convert_points(points: np.ndarray, source: str, target: str) -> np.ndarray:
    """Convert ``(..., K_source, 2)`` landmarks to another scheme (approximate correspondences).

    Available: ``98 -> 68`` (WFLW to iBUG), ``468 -> 68`` (MediaPipe Face Mesh to iBUG) and
    ``68 -> 5`` (iBUG to MTFL's eye centres, nose tip and mouth corners, group means). The
    maps pick the nearest corresponding points; they are approximate (documented per map) and
    are not a substitute for a model trained on the target markup.

    Raises:
        UnknownNameError: no map between the two schemes.
        ValueError: wrong point count.
    """
    key = (str(source), str(target))
    if key == ("68", "5"):
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape[-2:] != (68, 2):
            raise ValueError(f"expected (..., 68, 2) points for scheme 68, got {pts.shape}")
        return np.einsum("fk,...kd->...fd", five_point_matrix().astype(np.float64), pts)
    if key not in SCHEME_MAPS:
        raise UnknownNameError(f"no landmark map {key[0]} -> {key[1]}; available: "
                               f"{sorted(SCHEME_MAPS)}")
    pts = np.asarray(points)
    k = get_scheme(key[0]).num_points
    if pts.shape[-2:] != (k, 2):
        raise ValueError(f"expected (..., {k}, 2) points for scheme {key[0]}, got {pts.shape}")
    return pts[..., list(SCHEME_MAPS[key]), :]
