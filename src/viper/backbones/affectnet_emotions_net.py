"""Intel's AffectNet expression net (see affectnet_emotions.py) in PyTorch: the network and its weights, for
viper.runtime's torch runtime and scripts/export_onnx.py.

The net ("0003_EmoNet_ResNet10") is a small pre-activation ResNet: the input's fused BatchNorm (per-channel
x * a + b on BGR pixels in 0-255; no other normalisation), a 7x7/2 conv, ReLU, 3x3/2 max pool (ceil mode), four
residual blocks (64, 128, 256, 256 channels; the last three stride 2 with a 1x1/2 conv shortcut; BatchNorm + ReLU
after each sum), then a 2x2 conv as the linear head. Activations run in float32, each of the IR's 21 activation
FakeQuantize nodes reduced to its clamp (saturation at the INT8 calibration range; the rounding to 256 levels is
dropped). Against OpenVINO running the IR on 1,386 actor-05 face crops: plain float activations differ by up to
0.097 in probability and pick another class on 22 crops; with the clamps, up to 0.030 and 11 crops, all where
OpenVINO's top two lie within 0.02; emulating the whole FakeQuantize gets no closer (0.025, 12 crops): the rest is
OpenVINO's integer arithmetic.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import load_weights

WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "affectnet_emotions.npz"
CLASS_COUNT = 5  # affectnet_emotions.CLASSES: the runner names them, without torch


class Affine(nn.Module):
    """A folded inference-mode BatchNorm: x * weight + bias per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias[:, None, None], x, self.weight[:, None, None])


class Clamp(nn.Module):
    """Saturation at an activation's INT8 calibration range (the clamping half of an IR FakeQuantize node)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("range", torch.tensor([-torch.inf, torch.inf]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.range[0], self.range[1])


class Block(nn.Module):
    """Residual block: two 3x3 convs (the first's BatchNorm folded into it) plus the input or a 1x1 conv of it;
    BatchNorm and ReLU after the sum; each tensor the IR quantises is clamped to its range."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.clamp1 = nn.Conv2d(cin, cout, 3, stride, 1), Clamp()
        self.conv2, self.clamp2 = nn.Conv2d(cout, cout, 3, 1, 1), Clamp()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        self.clamp_shortcut = Clamp() if self.shortcut is not None else None
        self.clamp_sum, self.norm, self.clamp_out = Clamp(), Affine(cout), Clamp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.clamp2(self.conv2(self.clamp1(F.relu(self.conv1(x)))))
        shortcut = x if self.shortcut is None else self.clamp_shortcut(self.shortcut(x))
        return self.clamp_out(F.relu(self.norm(self.clamp_sum(y + shortcut))))


class AffectNetEmotions(nn.Module):
    """(B, 3, 64, 64) BGR faces, float pixel values 0-255 -> class logits (B, 5) in CLASSES order."""

    def __init__(self) -> None:
        super().__init__()
        self.input_norm, self.input_clamp = Affine(3), Clamp()
        self.stem, self.stem_clamp = nn.Conv2d(3, 64, 7, 2, 3), Clamp()
        self.blocks = nn.ModuleList([Block(64, 64, 1), Block(64, 128, 2), Block(128, 256, 2), Block(256, 256, 2)])
        self.head = nn.Conv2d(256, CLASS_COUNT, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_clamp(F.relu(self.stem(self.input_clamp(self.input_norm(x)))))
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        for block in self.blocks:
            x = block(x)
        return self.head(x).flatten(1)  # softmax applied by the caller


@cache
def load_affectnet_emotions(device: str = "cpu", weights: Path = WEIGHTS) -> AffectNetEmotions:
    """The net with the converted weights, in eval mode; built once per process and device."""
    return load_weights(AffectNetEmotions(), weights).to(device)
