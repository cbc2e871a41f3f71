"""`fau:blendshapes`, the offline default facial action features: the 52 blendshape scores of MediaPipe's Face
Landmarker (ARKit-style coefficients such as browInnerUp, mouthSmileLeft, jawOpen: the action-unit detector of
Py-Feat 2), run in PyTorch on Face Mesh v2's landmarks, plus mini-Xception's 7 emotion probabilities (59 values
per frame). Both models were trained on many people, so the values mean the same on a face viper has never seen.
A frame is masked where there is no face, or the mesh finds none in the face's crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .base import Extractor, Features, register_default
from .fau_mesh import EMOTIONS

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo

SHAPES = 52  # len(viper.backbones.face_blendshapes.BLENDSHAPE_NAMES), without importing torch


@dataclass
class BlendshapeFauConfig:
    emotions: bool = True  # append mini-Xception's 7 emotion probabilities (Py-Feat's layout: actions, emotions)


@register_default
class BlendshapeFau(Extractor):
    """52 blendshapes per frame from Face Mesh v2 (+ mini-Xception emotions); masked without face or mesh."""

    modality = "fau"
    backend = "blendshapes"
    version = "1"
    Config = BlendshapeFauConfig

    @property
    def dim(self) -> int:
        return SHAPES + (len(EMOTIONS) if self.config.emotions else 0)

    @property
    def feature_names(self) -> list[str]:
        """The name of each value (labels for `viper inspect`)."""
        from ..backbones.face_blendshapes import BLENDSHAPE_NAMES  # imports torch: only when asked

        return list(BLENDSHAPE_NAMES) + (list(EMOTIONS) if self.config.emotions else [])

    def load(self) -> None:
        from ..backbones.face_mesh import load_face_mesh

        load_face_mesh(self.device)
        if self.config.emotions:
            from ..backbones.mini_xception import load_mini_xception

            load_mini_xception(self.device)

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
            values[:, :SHAPES] = found.blendshapes
            if self.config.emotions:
                values[:, SHAPES:] = expressions[index].probs
            out.append(Features(values, found.mask))
        return out
