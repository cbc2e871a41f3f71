"""MediaPipe's face blendshapes model (face_blendshapes.tflite of the Face Landmarker bundle) in PyTorch: 52
ARKit-style expression coefficients from 146 of Face Mesh v2's landmarks, as the Tasks FaceLandmarker gives them.

The network is the TFLite graph op for op, an MLP-Mixer: the (x, y) points are centred and divided by their mean
distance from the centre, halved, mixed across points into 96 tokens, embedded to 64 channels, prefixed by a
learnt token, passed through 4 mixer blocks (LayerNorm without bias, token MLP 97-384-97 and channel MLP
64-256-64, ReLU), and the learnt token's output gives 52 sigmoid scores. The 1x1 convs of the graph are Linear
layers here. Weights: assets/face_landmarker/face_blendshapes.npz, written by scripts/convert_face_landmarker.py.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from importlib.resources import files

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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
TOKENS, CHANNELS, BLOCKS = 96, 64, 4
ONNX = "face_landmarker/face_blendshapes.onnx"  # FaceBlendshapesNet exported by scripts/export_onnx.py
PREFIX = "model_1/GhumMarkerPoserMlpMixerGeneral/"


class Mlp(nn.Sequential):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))


class MixerBlock(nn.Module):
    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.norm1, self.norm2 = nn.Parameter(torch.ones(CHANNELS)), nn.Parameter(torch.ones(CHANNELS))
        self.token_mixing, self.channel_mixing = Mlp(TOKENS + 1, 384), Mlp(CHANNELS, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 97 tokens, 64 channels)
        x = x + self.token_mixing(self._norm(x, self.norm1).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mixing(self._norm(x, self.norm2))

    def _norm(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (CHANNELS,), scale, None, self.eps)


class FaceBlendshapesNet(nn.Module):
    """(N, 146, 2) landmark x, y in pixels (any scale and offset: the model normalises them) -> (N, 52) scores."""

    def __init__(self, eps: float = 1e-6, input_scale: float = 0.5) -> None:
        super().__init__()
        self.input_scale = input_scale
        self.point_mixing = nn.Linear(len(LANDMARK_SUBSET), TOKENS)
        self.embedding = nn.Linear(2, CHANNELS)
        self.extra_token = nn.Parameter(torch.zeros(1, 1, CHANNELS))
        self.blocks = nn.Sequential(*(MixerBlock(eps) for _ in range(BLOCKS)))
        self.head = nn.Linear(CHANNELS, len(BLENDSHAPE_NAMES))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        centred = points - points.mean(1, keepdim=True)
        scale = centred.norm(dim=-1).mean(1)[:, None, None]
        tokens = self.point_mixing((centred / scale * self.input_scale).transpose(1, 2)).transpose(1, 2)
        x = torch.cat([self.extra_token.expand(points.shape[0], -1, -1), self.embedding(tokens)], 1)
        return torch.sigmoid(self.head(self.blocks(x)[:, 0]))

    @classmethod
    def from_tflite_weights(cls, weights: dict[str, np.ndarray]) -> FaceBlendshapesNet:
        """TFLite names and layouts (1x1 conv kernels OHWI) into a new module; the two scalars of the graph (the
        input scale, the LayerNorm epsilon) set its constructor arguments."""
        truediv = PREFIX + "tf.math.truediv/truediv"
        net = cls(eps=float(weights[PREFIX + "MLPMixer/MixerBlock_0/layer_norm1/batchnorm/add/y"]),
                  input_scale=float(weights[f"{truediv};{truediv}/y"]))

        def dense(layer: nn.Linear, name: str) -> None:
            layer.weight.data.copy_(torch.from_numpy(weights[f"{PREFIX}{name}/Conv2D"]).flatten(1))
            layer.bias.data.copy_(torch.from_numpy(weights[f"{PREFIX}{name}/BiasAdd/ReadVariableOp"]))

        dense(net.point_mixing, "conv2d")
        dense(net.embedding, "MLPMixer/input_tokens_embedding")
        dense(net.head, "output_blendweights")
        net.extra_token.data.copy_(torch.from_numpy(weights[PREFIX + "MLPMixer/AddExtraTokens/strided_slice_1"])[0])
        for index, block in enumerate(net.blocks):
            name = f"MLPMixer/MixerBlock_{index}"
            for mlp, kind in ((block.token_mixing, "token"), (block.channel_mixing, "channel")):
                dense(mlp[0], f"{name}/mlp_{kind}_mixing/Mlp_1")
                dense(mlp[2], f"{name}/mlp_{kind}_mixing/Mlp_2")
            for scale, norm in ((block.norm1, "layer_norm1"), (block.norm2, "layer_norm2")):
                scale.data.copy_(torch.from_numpy(weights[f"{PREFIX}{name}/{norm}/batchnorm/mul/ReadVariableOp"]))
        return net


@lru_cache(maxsize=1)
def tflite_weights() -> dict[str, np.ndarray]:
    """The converted weights, read once per process."""
    with np.load(files("viper.assets") / "face_landmarker" / "face_blendshapes.npz") as npz:
        return {name: npz[name] for name in npz.files}


class FaceBlendshapes:
    """52 blendshape scores (BLENDSHAPE_NAMES order) from Face Mesh v2 landmarks, as the Tasks FaceLandmarker
    computes them: from the x, y of LANDMARK_SUBSET in frame pixels."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    @cached_property
    def net(self) -> FaceBlendshapesNet:
        """The PyTorch network, built on first use (the onnx runtime does not need it)."""
        return FaceBlendshapesNet.from_tflite_weights(tflite_weights()).eval().to(self.device)

    def __call__(self, landmarks: np.ndarray) -> np.ndarray:
        """(N, 478, 2 or 3) landmarks in frame pixels -> (N, 52) scores in [0, 1]."""
        points = np.asarray(landmarks, np.float32)[:, list(LANDMARK_SUBSET), :2]
        if not len(points):
            return np.zeros((0, len(BLENDSHAPE_NAMES)), np.float32)
        return network(ONNX, str(self.device), lambda: self.net)(points)[0]
