"""MediaPipe's face blendshapes model (face_blendshapes.tflite of the Face Landmarker bundle): 52 ARKit-style
expression coefficients from 146 of Face Mesh v2's landmarks, as the Tasks FaceLandmarker gives them.

The model normalises the points itself, so all there is to do here is pick them: this module imports no torch,
and the network (its architecture: viper.backbones.face_blendshapes_net) runs in whichever runtime viper.runtime
chooses.
"""

from __future__ import annotations

import numpy as np

from ..runtime import network

# The landmarks MediaPipe's FaceBlendshapesGraph feeds the model (kLandmarksSubsetIdxs), in its order
LANDMARK_SUBSET = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78, 80,
    81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152, 153,
    154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249,
    251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314,
    317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382,
    384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472, 473,
    474, 475, 476, 477)
BLENDSHAPE_NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight")
ONNX = "face_landmarker/face_blendshapes.onnx"  # FaceBlendshapesNet exported by scripts/export_onnx.py


class FaceBlendshapes:
    """52 blendshape scores (BLENDSHAPE_NAMES order) from Face Mesh v2 landmarks, as the Tasks FaceLandmarker
    computes them: from the x, y of LANDMARK_SUBSET in frame pixels."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = str(device)

    def _torch_net(self):
        """The PyTorch network: only the torch runtime asks for it, so only it imports torch."""
        from .face_blendshapes_net import load_face_blendshapes_net

        return load_face_blendshapes_net(self.device)

    def __call__(self, landmarks: np.ndarray) -> np.ndarray:
        """(N, 478, 2 or 3) landmarks in frame pixels -> (N, 52) scores in [0, 1]."""
        points = np.asarray(landmarks, np.float32)[:, list(LANDMARK_SUBSET), :2]
        if not len(points):
            return np.zeros((0, len(BLENDSHAPE_NAMES)), np.float32)
        return network(ONNX, self.device, self._torch_net)(points)[0]
