"""face-api.js's FaceExpressionNet (see face_api_expression.py) in PyTorch: the network and its weights, for
viper.runtime's torch runtime and scripts/export_onnx.py.

The net (FaceFeatureExtractor + a linear head): four dense blocks of four convolutions each (32, 64, 128, 256
channels), each block halving the image: its first conv is strided (a plain 3x3 conv in the first block,
depthwise separable after), and each conv reads the ReLU of the sum of all earlier outputs of its block. Then a
7x7 average pool, a 256 -> 7 linear layer and softmax. TensorFlow's 'same' padding is kept exactly: a stride-2
3x3 conv on an even size pads one pixel at the bottom and right only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import load_weights

WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "face_api_expression.npz"
CLASS_COUNT = 7  # face_api_expression.CLASSES: the runner names them, without torch
MEAN_RGB = (122.782, 117.001, 104.298)  # face-api.js's normalize(), then / 255


def same_padding(x: torch.Tensor, kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TensorFlow's 'same' padding of a square kernel as F.pad takes it: the odd pixel goes right and bottom."""
    pads = []
    for size in (int(x.shape[-1]), int(x.shape[-2])):  # F.pad order: last dim first; ints fix them in an export
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class SameConv2d(nn.Conv2d):
    """nn.Conv2d with TensorFlow's 'same' padding for odd square kernels: symmetric at stride 1; when strided,
    computed from the input size, the odd pixel right and bottom."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__(cin, cout, kernel, stride, kernel // 2 if stride == 1 else 0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] != 1:
            x = F.pad(x, same_padding(x, self.kernel_size[0], self.stride[0]))
        return super().forward(x)


class SeparableConv(nn.Module):
    """tf.separableConv2d(x, depthwise, pointwise, stride, 'same') + bias: depthwise 3x3, then pointwise 1x1."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = SameConv2d(cin, cin, 3, stride, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class DenseBlock(nn.Module):
    """face-api.js's denseBlock4: a strided conv, then three separable convs, each reading the ReLU of the sum
    of the outputs before it; the block returns the ReLU of all four summed (in TensorFlow.js's order)."""

    def __init__(self, cin: int, cout: int, first: bool = False) -> None:
        super().__init__()
        self.conv0 = SameConv2d(cin, cout, 3, 2) if first else SeparableConv(cin, cout, stride=2)
        self.conv1, self.conv2, self.conv3 = (SeparableConv(cout, cout) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = F.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        out4 = self.conv3(F.relu(out1 + (out2 + out3)))
        return F.relu(out1 + (out2 + (out3 + out4)))


class FaceExpressionNet(nn.Module):
    """(B, 3, 112, 112) RGB faces, float pixel values 0-255 (`prepare`) -> class logits (B, 7) in CLASSES order."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.dense0 = DenseBlock(3, 32, first=True)
        self.dense1, self.dense2, self.dense3 = DenseBlock(32, 64), DenseBlock(64, 128), DenseBlock(128, 256)
        self.fc = nn.Linear(256, CLASS_COUNT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / 255
        x = self.dense3(self.dense2(self.dense1(self.dense0(x))))
        return self.fc(F.avg_pool2d(x, 7, 2).flatten(1))  # softmax applied by the caller


@cache
def load_face_api_expression(device: str = "cpu", weights: Path = WEIGHTS) -> FaceExpressionNet:
    """The net with the converted weights, in eval mode; built once per process and device."""
    # channels-last: 1.2x (recognition) to 1.5x (expression) faster on CPU, measured; outputs within 1e-5
    return load_weights(FaceExpressionNet(), weights).to(device, memory_format=torch.channels_last)
