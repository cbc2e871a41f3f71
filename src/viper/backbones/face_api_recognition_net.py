"""face-api.js's FaceRecognitionNet (see face_api_recognition.py) in PyTorch: the network and its weights, for
viper.runtime's torch runtime and scripts/export_onnx.py.

The net: a 7x7/2 conv and a 3x3/2 max pool ('valid'), then 14 residual blocks (32, 64, 128, 256 channels) of two
3x3 convs, each conv followed by dlib's affine "scale" layer (its folded BatchNorm). A down block's first conv is
3x3/2 'valid' and its shortcut a 2x2 average pool of the input, zero-padded in channels; where the pooled
shortcut is one pixel larger than the conv path (odd sizes), the conv path gets a row and a column of zeros at
the bottom and right, as face-api.js does. Global average pool, then a 256 -> 128 linear map (no bias).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import load_weights
from .face_api_expression_net import MEAN_RGB

WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "face_api_recognition.npz"
DIM = 128  # face_api_recognition.DIM: the descriptor's width

# residual blocks in order: (face-api.js's name, input channels, output channels, halves the image)
BLOCKS = (
    ("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False),
    ("conv64_down", 32, 64, True), ("conv64_1", 64, 64, False), ("conv64_2", 64, 64, False),
    ("conv64_3", 64, 64, False),
    ("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False), ("conv128_2", 128, 128, False),
    ("conv256_down", 128, 256, True), ("conv256_1", 256, 256, False), ("conv256_2", 256, 256, False),
    ("conv256_down_out", 256, 256, True),
)


class Scale(nn.Module):
    """dlib's affine layer: x * weight + bias per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ConvLayer(nn.Module):
    """Conv + bias, then the scale layer; 'same' at stride 1, 'valid' when strided (face-api.js's convDown)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2 if stride == 1 else 0)
        self.scale = Scale(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(self.conv(x))


class Residual(nn.Module):
    """ReLU(conv2(ReLU(conv1(x))) + shortcut); a down block halves the image and pools its shortcut."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = ConvLayer(cin, cout, stride=2 if down else 1)
        self.conv2 = ConvLayer(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if self.down:
            x = F.avg_pool2d(x, 2, 2)
            if out.shape[-1] != x.shape[-1]:
                out = F.pad(out, (0, 1, 0, 1))
            x = F.pad(x, (0, 0, 0, 0, 0, out.shape[1] - x.shape[1]))  # the new channels' shortcut is zero
        return F.relu(out + x)


class FaceRecognitionNet(nn.Module):
    """(B, 3, 150, 150) RGB faces, float pixel values 0-255 (`prepare`) -> (B, 128) descriptors."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.conv32_down = ConvLayer(3, 32, kernel=7, stride=2)
        self.blocks = nn.Sequential(OrderedDict(
            (name, Residual(cin, cout, down)) for name, cin, cout, down in BLOCKS))
        self.fc = nn.Linear(256, DIM, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv32_down((x - self.mean) / 255))
        x = self.blocks(F.max_pool2d(x, 3, 2))
        return self.fc(x.mean(dim=(2, 3)))


@cache
def load_face_api_recognition(device: str = "cpu", weights: Path = WEIGHTS) -> FaceRecognitionNet:
    """The net with the converted weights, in eval mode; built once per process and device."""
    # channels-last: 1.2x (recognition) to 1.5x (expression) faster on CPU, measured; outputs within 1e-5
    return load_weights(FaceRecognitionNet(), weights).to(device, memory_format=torch.channels_last)
