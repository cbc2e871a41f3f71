"""MediaPipe's face blendshapes model (face_blendshapes.tflite of the Face Landmarker bundle) as a PyTorch module:
the torch runtime runs it, and scripts/export_onnx.py exports it to the .onnx the onnx runtime runs.

The network is the TFLite graph op for op, an MLP-Mixer: the (x, y) points are centred and divided by their mean
distance from the centre, halved, mixed across points into 96 tokens, embedded to 64 channels, prefixed by a
learnt token, passed through 4 mixer blocks (LayerNorm without bias, token MLP 97-384-97 and channel MLP
64-256-64, ReLU), and the learnt token's output gives 52 sigmoid scores. The 1x1 convs of the graph are Linear
layers here. Weights: assets/face_landmarker/face_blendshapes.npz, written by scripts/convert_face_landmarker.py.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import face_landmarker_weights

# len(LANDMARK_SUBSET), len(BLENDSHAPE_NAMES) of viper.backbones.face_blendshapes (which imports this module)
POINTS, SCORES = 146, 52
TOKENS, CHANNELS, BLOCKS = 96, 64, 4
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
        self.point_mixing = nn.Linear(POINTS, TOKENS)
        self.embedding = nn.Linear(2, CHANNELS)
        self.extra_token = nn.Parameter(torch.zeros(1, 1, CHANNELS))
        self.blocks = nn.Sequential(*(MixerBlock(eps) for _ in range(BLOCKS)))
        self.head = nn.Linear(CHANNELS, SCORES)

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


@cache
def load_face_blendshapes_net(device: str = "cpu") -> FaceBlendshapesNet:
    """The network with its converted weights, in eval mode, built once per process and device."""
    return FaceBlendshapesNet.from_tflite_weights(face_landmarker_weights("face_blendshapes")).eval().to(device)
