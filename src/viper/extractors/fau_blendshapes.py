"""`fau:blendshapes`, the offline default facial action features: the 52 blendshape scores of MediaPipe's Face
Landmarker (ARKit-style coefficients such as browInnerUp, mouthSmileLeft, jawOpen: the action-unit detector of
Py-Feat 2), run on Face Mesh v2's landmarks in ONNX Runtime or PyTorch, plus mini-Xception's 7 emotion
probabilities (59 values per frame). Both models were trained on many people, so the values mean the same on a
face viper has never seen. A frame is masked where there is no face, or the mesh finds none in the face's crop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backbones.face_blendshapes import BLENDSHAPE_NAMES
from .base import register_default
from .fau_mesh import EMOTIONS, FaceMeshFau

if TYPE_CHECKING:
    import numpy as np

    from ..backbones.face_mesh import ClipMeshes


@register_default
class BlendshapeFau(FaceMeshFau):
    """52 blendshapes per frame from Face Mesh v2 (+ mini-Xception emotions); masked without face or mesh."""

    backend = "blendshapes"
    version = "1"
    width = len(BLENDSHAPE_NAMES)

    @property
    def feature_names(self) -> list[str]:
        """The name of each value (labels for `viper inspect`)."""
        return list(BLENDSHAPE_NAMES) + (list(EMOTIONS) if self.config.emotions else [])

    def face_values(self, found: ClipMeshes) -> np.ndarray:
        return found.blendshapes
