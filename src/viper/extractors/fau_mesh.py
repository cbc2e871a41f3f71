"""`fau:mesh`, offline facial action features: 16 action units measured on the Face Mesh v2 landmarks, plus
mini-Xception's 7 emotion probabilities (23 values per frame), standing in for the paper's Py-Feat AUs + emotions.

The mesh's landmarks are put in a face frame (`face_frame`) whose units are rigid face lengths (the outer eye
corners' distance across, the nose length down), so the measures (`measures`) do not change with face size,
in-plane rotation, head pitch or a stretched image. Each AU maps its measure linearly from a neutral value (0) to
a strong action (1), clipped (`AU_TABLE`). neutral/strong were set from RAVDESS actor 05 and four posed py-feat
images: a rough calibration on few faces, so the values are monotone proxies of AU intensity, not FACS-calibrated
scores, and what a fusion model can use is mostly change over a clip's frames. Not measured: AU11 and AU14 (skin
folds the mesh does not model), AU28 (not separable from AU23/AU24 by lip geometry), AU17 (lip-to-chin length
followed mouth opening on the posed faces). Speech parts the lips, so AU25/AU26 also rise while someone talks.
A frame is masked where there is no face, or the mesh finds none in the face crop.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .base import Extractor, Features, register_extractor

if TYPE_CHECKING:
    from ..backbones.face_mesh import ClipMeshes
    from ..sampled_video import SampledVideo

# mini-Xception's probabilities, in its class order, named as the general model and the scores name them (its own
# names are "fear" and "surprise"), so a per-frame table speaks one vocabulary
EMOTIONS = ("angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral")

# AU -> components (measure, neutral, strong); measures are computed by `measures` below.
AU_TABLE: dict[str, list[tuple[str, float, float]]] = {
    "AU01": [("inner_brow", 0.35, 0.43)],  # inner brow raiser
    "AU02": [("outer_brow", 0.29, 0.36)],  # outer brow raiser
    "AU04": [("inner_brow", 0.35, 0.24), ("brow_gap", 0.278, 0.258)],  # brow lowerer
    "AU05": [("upper_lid", 0.07, 0.11)],  # upper lid raiser
    "AU06": [("cheek", -0.71, -0.61)],  # cheek raiser
    "AU07": [("lower_lid", 0.108, 0.07)],  # lid tightener
    "AU09": [("brow_to_nose", 1.225, 1.10)],  # nose wrinkler
    "AU10": [("lip_to_nose", 0.345, 0.26)],  # upper lip raiser
    "AU12": [("corner_height", 0.045, 0.19)],  # lip corner puller
    "AU15": [("corner_height", 0.045, 0.0)],  # lip corner depressor
    "AU20": [("mouth_width", 0.56, 0.70)],  # lip stretcher
    "AU23": [("red_lips", 0.37, 0.22)],  # lip tightener
    "AU24": [],  # lip pressor: min(AU23, 1 - AU25), thin lips that are closed
    "AU25": [("lip_gap", 0.02, 0.25)],  # lips part
    "AU26": [("jaw", 1.30, 1.50)],  # jaw drop
    "AU43": [("eye_opening", 0.15, 0.04)],  # eyes closed
}
AU_NAMES = tuple(AU_TABLE)


def face_frame(points: np.ndarray) -> np.ndarray:
    """Landmarks (478, 3) in the face frame: origin at the mean of the four eye corners, x along the outer corners
    33 -> 263, y down the nose (168 -> 2, orthogonal to x), z = x cross y; in units of the outer-corner distance."""
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
    emotions: bool = True  # append mini-Xception's 7 emotion probabilities (Py-Feat's layout: actions, emotions)


class FaceMeshFau(Extractor):
    """What the fau backends on Face Mesh v2 share: per frame, `width` values read from the clip's meshes
    (`face_values`), then mini-Xception's emotions; masked without face or mesh."""

    modality = "fau"
    width: ClassVar[int]
    Config = MeshFauConfig

    @abstractmethod
    def face_values(self, found: ClipMeshes) -> np.ndarray:
        """(N, width) values of one clip's frames, zero where `found.mask` is False."""

    @property
    def dim(self) -> int:
        return self.width + (len(EMOTIONS) if self.config.emotions else 0)

    def load(self) -> None:
        from ..backbones.face_mesh import load_face_mesh

        load_face_mesh(self.device)
        if self.config.emotions:
            from ..backbones import mini_xception

            mini_xception.load(self.device)

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        from ..backbones.face_mesh import clip_meshes

        self.ensure_loaded()
        meshes = clip_meshes(clips, self.device)
        if self.config.emotions:
            from ..backbones.mini_xception import clip_expressions

            expressions = clip_expressions(clips, self.device)
        out = []
        for index, found in enumerate(meshes):
            values = np.zeros((len(found.mask), self.dim), np.float32)
            values[:, : self.width] = self.face_values(found)
            if self.config.emotions:
                values[:, self.width :] = expressions[index].probs
            out.append(Features(values, found.mask))
        return out


@register_extractor
class MeshFau(FaceMeshFau):
    """Action units from face-mesh geometry (+ mini-Xception emotions) per frame; masked without face or mesh."""

    backend = "mesh"
    version = "2"  # 2: Face Mesh v2 in PyTorch on the FaceLandmarker's crop (1: mediapipe's legacy mesh)
    width = len(AU_NAMES)

    @property
    def feature_names(self) -> list[str]:
        """The name of each value: the AUs, then the emotion probabilities (labels for `viper inspect`)."""
        return list(AU_NAMES) + (list(EMOTIONS) if self.config.emotions else [])

    def face_values(self, found: ClipMeshes) -> np.ndarray:
        values = np.zeros((len(found.mask), self.width), np.float32)
        for i in np.flatnonzero(found.mask):
            values[i] = action_units(found.landmarks[i].astype(np.float64))
        return values
