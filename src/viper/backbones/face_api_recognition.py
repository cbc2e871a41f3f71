"""face-api.js's face recognition network (FaceRecognitionNet: a 128-d face descriptor).

Lets viper tell people apart across frames: descriptors of one person's faces lie close in euclidean distance
(dlib's threshold: 0.6), others' farther. The network and its weights are Davis King's for dlib (a ResNet-34-like
net, 99.38 % on LFW by dlib's figure), as face-api.js (Vincent Mühler, via @vladmandic/face-api 1.7.15) ported them
to TensorFlow.js; `scripts/convert_face_api_js.py` dequantised them once into `assets/face_api_recognition.npz`
(MIT, see assets/FACE_API_JS_LICENSE.txt). TensorFlow.js is not needed.

The network, in PyTorch, is in face_api_recognition_net.py; this module prepares faces in numpy, so it runs
without torch where the runtime is onnx. Inputs are face-api.js's NetInput.toBatchTensor(150) (`prepare`),
normalised as for the expression net.
"""

from __future__ import annotations

import numpy as np

from ..runtime import OnnxNetwork, TorchNetwork, network
from .face_api_expression import prepare

ONNX = "face_api_recognition.onnx"  # the same net exported by scripts/export_onnx.py, run by viper.runtime
INPUT_SIZE = 150
DIM = 128
SAME_PERSON = 0.6  # dlib's euclidean threshold between two descriptors of one person


def load(device: str = "cpu") -> OnnxNetwork | TorchNetwork:
    """The net's forward pass on `device`, numpy in and out (viper.runtime's choice of runtime); the torch module
    is built, once per process, only where that runtime is torch."""

    def module():
        from .face_api_recognition_net import load_face_api_recognition

        return load_face_api_recognition(device)

    return network(ONNX, device, module, channels_last=True)


def describe(faces: list[np.ndarray], device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Face descriptors (B, 128) float32 for RGB uint8 face crops of any size (face-api.js's preprocessing)."""
    if not faces:
        return np.zeros((0, DIM), np.float32)
    net = load(device)
    return np.concatenate([net(prepare(faces[start : start + batch_size], INPUT_SIZE))[0]
                           for start in range(0, len(faces), batch_size)])
