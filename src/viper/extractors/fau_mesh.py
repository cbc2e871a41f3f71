"""Offline facial action features: 16 action units measured on the MediaPipe face mesh, plus mini-Xception's
7 emotion probabilities (23 values per frame), standing in for the paper's Py-Feat AUs + emotions.

Geometry. The mesh's 478 landmarks (iris included; see backbones/face_mesh.py) are put in a face frame: origin
at the mean of the four eye corners (33, 133, 362, 263); x along the outer eye corners 33 -> 263; y down the
nose (168 -> 2, made orthogonal to x); z = x cross y. Distances are 3D. Horizontal lengths are in units of
D = |p263 - p33| (outer eye corners), vertical ones in units of N = y(2), the nose length from the eye line to
the nose base: both rigid, so the measures do not change with face size, in-plane rotation, head pitch
(foreshortening shrinks N too) or a stretched image (RAVDESS clips/ are ~1.35x too wide; with N they measure
as the full frames do). Below, Y(i) is landmark i's y / N (down is positive), dist(i, j) a distance / D; paired
points (subject's right, left) are averaged.

Each AU = clip((m - neutral) / (strong - neutral), 0, 1): 0 at or beyond the neutral value, 1 at a strong action
(the mean over components where an AU has two). neutral/strong were set from RAVDESS actor 05 (neutral takes;
marked expressions) and the four posed py-feat images: a rough calibration on few faces, so read the values as
monotone proxies of AU intensity, not FACS-calibrated scores. Faces differ in shape, so a face's neutral values
differ too; what a fusion model can use is mostly change over a clip's frames.

| AU | name | measure m | neutral | strong |
|---|---|---|---|---|
| AU01 | inner brow raiser | inner brow height -Y(55, 107, 285, 336) | 0.35 | 0.43 |
| AU02 | outer brow raiser | outer brow height -Y(46, 70, 276, 300) | 0.29 | 0.36 |
| AU04 | brow lowerer | the AU01 measure going down; brows drawn together dist(55, 285) | 0.35; 0.278 | 0.24; 0.258 |
| AU05 | upper lid raiser | upper lid above the iris centre Y(468) - Y(159), Y(473) - Y(386) | 0.07 | 0.11 |
| AU06 | cheek raiser | mid-cheek height -Y(50, 280) | -0.71 | -0.61 |
| AU07 | lid tightener | lower lid below the iris centre Y(145) - Y(468), Y(374) - Y(473) | 0.108 | 0.07 |
| AU09 | nose wrinkler | inner brow to nasal ala Y(98) - Y(55), Y(327) - Y(285) (ala up, brows down) | 1.225 | 1.10 |
| AU10 | upper lip raiser | upper lip to nose base Y(0) - Y(2) | 0.345 | 0.26 |
| AU12 | lip corner puller | corner height over the mouth centre (Y(13) + Y(14)) / 2 - Y(61, 291) | 0.045 | 0.19 |
| AU15 | lip corner depressor | the AU12 measure going down | 0.045 | 0.0 |
| AU20 | lip stretcher | mouth width dist(61, 291) | 0.56 | 0.70 |
| AU23 | lip tightener | red-lip height (Y(13) - Y(0)) + (Y(17) - Y(14)) | 0.37 | 0.22 |
| AU24 | lip pressor | min(AU23, 1 - AU25): thin lips that are closed | | |
| AU25 | lips part | inner-lip gap Y(14) - Y(13) | 0.02 | 0.25 |
| AU26 | jaw drop | nose base to chin Y(152) - Y(2) | 1.30 | 1.50 |
| AU43 | eyes closed | eye opening Y(145) - Y(159), Y(374) - Y(386) | 0.15 | 0.04 |

Not measured: AU11 (nasolabial deepener) and AU14 (dimpler) are skin folds the mesh does not model; AU28 (lip
suck) is not separable from AU23/AU24 by lip geometry; AU17 (chin raiser): lip-to-chin length followed mouth
opening, not the chin, on the posed faces. AU12/AU20, AU04/AU09 and AU23/AU24 share landmarks and correlate.
Speech parts the lips, so AU25/AU26 also rise while someone talks.
The last 7 values are mini-Xception's probabilities (angry, disgust, fear, happy, sad, surprise, neutral).
A frame is masked where there is no face, or the mesh finds none in the face crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .base import Extractor, Features, register_default

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# AU -> components (measure, neutral, strong); measures are computed by `measures` below.
AU_TABLE: dict[str, list[tuple[str, float, float]]] = {
    "AU01": [("inner_brow", 0.35, 0.43)],
    "AU02": [("outer_brow", 0.29, 0.36)],
    "AU04": [("inner_brow", 0.35, 0.24), ("brow_gap", 0.278, 0.258)],
    "AU05": [("upper_lid", 0.07, 0.11)],
    "AU06": [("cheek", -0.71, -0.61)],
    "AU07": [("lower_lid", 0.108, 0.07)],
    "AU09": [("brow_to_nose", 1.225, 1.10)],
    "AU10": [("lip_to_nose", 0.345, 0.26)],
    "AU12": [("corner_height", 0.045, 0.19)],
    "AU15": [("corner_height", 0.045, 0.0)],
    "AU20": [("mouth_width", 0.56, 0.70)],
    "AU23": [("red_lips", 0.37, 0.22)],
    "AU24": [],  # min(AU23, 1 - AU25)
    "AU25": [("lip_gap", 0.02, 0.25)],
    "AU26": [("jaw", 1.30, 1.50)],
    "AU43": [("eye_opening", 0.15, 0.04)],
}
AU_NAMES = tuple(AU_TABLE)


def face_frame(points: np.ndarray) -> np.ndarray:
    """Landmarks (478, 3) in the face frame described above, in units of the outer-eye-corner distance."""
    origin = points[[33, 133, 362, 263]].mean(axis=0)
    x = points[263] - points[33]
    scale = np.linalg.norm(x)
    x = x / scale
    y = points[2] - points[168]
    y = y - x * (y @ x)
    y = y / np.linalg.norm(y)
    rotation = np.stack([x, y, np.cross(x, y)], axis=1)
    return (points - origin) @ rotation / scale


def measures(points: np.ndarray) -> dict[str, float]:
    """The geometric measures of the AU table, from (478, 3) landmarks."""
    q = face_frame(points)
    y = q[:, 1] / q[2, 1]  # vertical measures in units of the nose length (eye line to nose base)

    def pair(a: int, b: int, c: int, d: int) -> float:  # mean of y(a) - y(b) and y(c) - y(d)
        return float((y[a] - y[b] + y[c] - y[d]) / 2)

    return {
        "inner_brow": float(-y[[55, 107, 285, 336]].mean()),
        "outer_brow": float(-y[[46, 70, 276, 300]].mean()),
        "brow_gap": float(np.linalg.norm(q[55] - q[285])),
        "upper_lid": pair(468, 159, 473, 386),
        "cheek": float(-y[[50, 280]].mean()),
        "lower_lid": pair(145, 468, 374, 473),
        "brow_to_nose": pair(98, 55, 327, 285),
        "lip_to_nose": float(y[0] - y[2]),
        "corner_height": float((y[13] + y[14]) / 2 - y[[61, 291]].mean()),
        "mouth_width": float(np.linalg.norm(q[61] - q[291])),
        "red_lips": float((y[13] - y[0]) + (y[17] - y[14])),
        "lip_gap": float(y[14] - y[13]),
        "jaw": float(y[152] - y[2]),
        "eye_opening": pair(145, 159, 374, 386),
    }


def action_units(points: np.ndarray) -> np.ndarray:
    """The 16 AU estimates in [0, 1], in AU_NAMES order, from one face's (478, 3) landmarks."""
    m = measures(points)
    values = {}
    for name, components in AU_TABLE.items():
        if components:
            scores = [np.clip((m[key] - neutral) / (strong - neutral), 0.0, 1.0) for key, neutral, strong in components]
            values[name] = float(np.mean(scores))
    values["AU24"] = min(values["AU23"], 1.0 - values["AU25"])
    return np.array([values[name] for name in AU_NAMES], dtype=np.float32)


@dataclass
class MeshFauConfig:
    emotions: bool = True  # append mini-Xception's 7 emotion probabilities (Py-Feat's layout: AUs then emotions)


@register_default
class MeshFau(Extractor):
    """Action units from face-mesh geometry (+ mini-Xception emotions) per frame; masked without face or mesh."""

    modality = "fau"
    backend = "mesh"
    version = "1"
    Config = MeshFauConfig

    @property
    def dim(self) -> int:
        return len(AU_NAMES) + (len(EMOTIONS) if self.config.emotions else 0)

    @property
    def feature_names(self) -> list[str]:
        """The name of each value: the AUs, then the emotion probabilities (labels for `viper inspect`)."""
        return list(AU_NAMES) + (list(EMOTIONS) if self.config.emotions else [])

    def load(self) -> None:
        from ..backbones.face_mesh import load_face_mesh

        load_face_mesh()
        if self.config.emotions:
            from ..backbones.mini_xception import load_mini_xception

            load_mini_xception(self.device)

    def extract(self, clip: SampledVideo) -> Features:
        return self.extract_batch([clip])[0]

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        from ..backbones.face_mesh import clip_landmarks

        self.ensure_loaded()
        meshes = clip_landmarks(clips)
        if self.config.emotions:
            from ..backbones.mini_xception import clip_expressions

            expressions = clip_expressions(clips, self.device)
        out = []
        for index, points in enumerate(meshes):
            values = np.zeros((len(points), self.dim), np.float32)
            mask = np.array([p is not None for p in points], dtype=bool)
            for i in np.flatnonzero(mask):
                values[i, : len(AU_NAMES)] = action_units(points[i])
            if self.config.emotions:
                values[:, len(AU_NAMES) :] = expressions[index].probs
            out.append(Features(values, mask))
        return out
