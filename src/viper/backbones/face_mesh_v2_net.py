"""Face Mesh v2 (the face_landmarks_detector.tflite of MediaPipe's Face Landmarker bundle) as a PyTorch module: the
torch runtime runs it, and scripts/export_onnx.py exports it to the .onnx the onnx runtime runs.

The network is the TFLite graph op for op: a 3x3 stride-2 stem, 34 residual blocks (1x1 or 2x2 stride-2
reduction, depthwise 3x3, 1x1 expansion, a max-pooled and zero-channel-padded shortcut on the stride-2 ones,
PReLU after the add) from 128x128 down to 2x2, then 2x2 heads: 1434 = 478 x (x, y, z) in crop pixels and the
face-presence logit. Input: (N, 3, 256, 256) RGB in [0, 1]. Weights: assets/face_landmarker/
face_landmarks_detector.npz, written by scripts/convert_face_landmarker.py.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import face_landmarker_weights
from .blazeface_net import add_shortcut

NUM_LANDMARKS = 478  # as viper.backbones.face_mesh_v2 (which imports this module, so not the other way)
# (in, mid, out, stride) per block: four at 128x128, then each stride-2 block halves the map and four follow
_STAGES = ((16, 8, 16), (16, 16, 32), (32, 32, 64), (64, 64, 128), (128, 64, 128), (128, 64, 128), (128, 64, 128))
BLOCKS = tuple((16, 8, 16, 1) for _ in range(4)) + tuple(
    block for (c_in, mid, c_out) in _STAGES[1:] for block in ((c_in, mid, c_out, 2), *[(c_out, mid, c_out, 1)] * 4))
STEM_PADDING = (0, 1, 0, 1)  # TFLite SAME for a 3x3 stride-2 conv on an even size: the extra row/column at the end
BODY = "model_5/model_4/model_3/"
HEADS = {"presence": "model_5/model_4/conv2d_151", "landmarks": BODY + "conv2d_150"}  # conv2d_152: an unused output


class ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_mid: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra_channels = stride, channels_out - channels_in
        self.reduce = nn.Conv2d(channels_in, channels_mid, stride, stride)  # 1x1, or 2x2 stride 2 (VALID)
        self.reduce_act = nn.PReLU(channels_mid)
        self.depthwise = nn.Conv2d(channels_mid, channels_mid, 3, padding=1, groups=channels_mid, bias=False)
        self.expand = nn.Conv2d(channels_mid, channels_out, 1)
        self.out_act = nn.PReLU(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = conv(self.expand, conv(self.depthwise, prelu(self.reduce_act, conv(self.reduce, x))))
        shortcut = F.max_pool2d(x, 2) if self.stride == 2 else x
        return prelu(self.out_act, add_shortcut(residual, shortcut))


def prelu(act: nn.PReLU, x: torch.Tensor) -> torch.Tensor:
    """act(x). An ONNX export spells it relu(x) - alpha relu(-x), both products as per-channel 1x1 convolutions:
    the same numbers (one term is zero), but ONNX Runtime's PRelu is about 19 times slower than its Relu and, like
    a Pad, takes its blocked (NCHWc) layout apart around each of the 69, while these ops stay in it and fuse
    (25 ms a face at 16 faces on one thread, against PyTorch's 10-14, down to 7)."""
    if not torch.onnx.is_in_onnx_export():
        return act(x)
    channels = act.weight.numel()
    negative = F.conv2d(x, -torch.ones(channels, 1, 1, 1), groups=channels).relu()
    return x.relu() + F.conv2d(negative, -act.weight.reshape(channels, 1, 1, 1), groups=channels)


def conv(layer: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """layer(x), on CPU straight through oneDNN. Under 16 faces on one thread PyTorch runs the 1x1 convolutions
    face by face on its im2col fallback: about 10 % faster for a single face, 15-25 % slower for 4-16 faces. One
    path for every batch size keeps a face's landmarks the same alone and in a batch (the tests hold them to it).
    An ONNX export takes the plain convolution, which it knows."""
    if (x.device.type != "cpu" or x.dtype != torch.float32 or not torch.backends.mkldnn.is_available()
            or torch.onnx.is_in_onnx_export()):
        return layer(x)
    return torch.ops.aten.mkldnn_convolution(x, layer.weight, layer.bias, list(layer.padding), list(layer.stride),
                                             list(layer.dilation), layer.groups)


class FaceMeshNet(nn.Module):
    """(N, 3, 256, 256) RGB in [0, 1] -> landmarks (N, 478, 3) in crop pixels and face-presence logits (N,)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2)
        self.stem_act = nn.PReLU(16)
        self.blocks = nn.Sequential(*(ResidualBlock(*spec) for spec in BLOCKS))
        self.presence = nn.Conv2d(128, 1, 2)
        self.landmarks = nn.Conv2d(128, NUM_LANDMARKS * 3, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.blocks(prelu(self.stem_act, conv(self.stem, F.pad(x, STEM_PADDING))))
        return conv(self.landmarks, x).reshape(x.shape[0], NUM_LANDMARKS, 3), self.presence(x).reshape(x.shape[0])

    def load_tflite_weights(self, weights: dict[str, np.ndarray]) -> None:
        """TFLite names and layouts (conv OHWI, depthwise 1HWC, PReLU 11C) into this module's parameters.

        The body's tensors carry Keras layer numbers that count up in graph order (conv2d_81.., the biases as
        batch_normalization_132.., p_re_lu_126.., depthwise_conv2d_60..), so sorting each family by number lines
        it up with this module's layers; the depthwise biases are TFLite's shared zero constants and are left out.
        """

        def family(pattern: str, ndim: int = 1) -> list[np.ndarray]:
            found = {int(match[1]): array for name, array in weights.items()
                     if (match := re.fullmatch(pattern, name)) and array.ndim == ndim and name not in heads}
            return [found[number] for number in sorted(found)]

        heads = {f"{name}/Conv2D" for name in HEADS.values()}
        kernels = iter(family(re.escape(BODY) + r"conv2d_(\d+)/Conv2D", 4))
        biases = iter(family(re.escape(BODY) + r"batch_normalization_(\d+)/FusedBatchNormV3(?:;.*)?"))
        alphas = iter(family(re.escape(BODY) + r"p_re_lu_(\d+)/add;.*", 3))
        depthwise = iter(family(re.escape(BODY) + r"depthwise_conv2d_(\d+)/depthwise1?", 4))

        def copy(target: torch.Tensor, array: np.ndarray) -> None:
            target.data.copy_(torch.from_numpy(array).reshape(target.shape))

        convs = [self.stem] + [conv for block in self.blocks for conv in (block.reduce, block.expand)]
        prelus = [self.stem_act] + [act for block in self.blocks for act in (block.reduce_act, block.out_act)]
        for conv in convs:
            copy(conv.weight, next(kernels).transpose(0, 3, 1, 2))
            copy(conv.bias, next(biases))
        for prelu in prelus:
            copy(prelu.weight, next(alphas))
        for block in self.blocks:
            copy(block.depthwise.weight, next(depthwise).transpose(3, 0, 1, 2))
        for layer, name in ((self.presence, HEADS["presence"]), (self.landmarks, HEADS["landmarks"])):
            copy(layer.weight, weights[f"{name}/Conv2D"].transpose(0, 3, 1, 2))
            copy(layer.bias, weights[f"{name}/BiasAdd/ReadVariableOp/resource"])
        leftover = [name for name, rest in (("kernels", kernels), ("biases", biases), ("alphas", alphas),
                                            ("depthwise", depthwise)) if next(rest, None) is not None]
        if leftover:
            raise ValueError(f"face_landmarks_detector weights do not fit the graph: unused {leftover}")


@cache
def load_face_mesh_v2_net(device: str = "cpu") -> FaceMeshNet:
    """The network with its converted weights, in eval mode and channels-last, built once per process and device."""
    net = FaceMeshNet()
    net.load_tflite_weights(face_landmarker_weights("face_landmarks_detector"))
    return net.eval().to(device, memory_format=torch.channels_last)
