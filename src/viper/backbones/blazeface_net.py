"""BlazeFace short range (the face_detector.tflite of MediaPipe's Face Landmarker bundle) as a PyTorch module: the
torch runtime runs it, and scripts/export_onnx.py exports it to the .onnx the onnx runtime runs.

The network is the TFLite graph op for op: a 5x5 stride-2 stem, 16 BlazeBlocks (depthwise 3x3 + pointwise 1x1,
a max-pooled and zero-channel-padded shortcut, ReLU after the add), and 1x1 heads on the 16x16 (2 anchors per
cell) and 8x8 (6 anchors per cell) feature maps: 896 anchors, each with a score logit and 16 box/keypoint values.
Weights: assets/face_landmarker/face_detector.npz, written by scripts/convert_face_landmarker.py.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import face_landmarker_weights

# (in, out, stride) per BlazeBlock; the 11th block's output feeds the 16x16 heads, the last one's the 8x8 heads
BLOCKS = ((24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2), (48, 56, 1), (56, 64, 1),
          (64, 72, 1), (72, 80, 1), (80, 88, 1), (88, 96, 2), (96, 96, 1), (96, 96, 1), (96, 96, 1), (96, 96, 1))
FIRST_MAP_BLOCKS = 11

# TFLite's SAME padding where it is not symmetric: a stride-2 conv on an even size pads more at the bottom/right
STEM_PADDING = (1, 2, 1, 2)  # 5x5, stride 2, 128 -> 64
DOWNSAMPLE_PADDING = (0, 1, 0, 1)  # 3x3, stride 2


class BlazeBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra_channels = stride, channels_out - channels_in
        self.depthwise = nn.Conv2d(channels_in, channels_in, 3, stride, padding=2 - stride, groups=channels_in)
        self.pointwise = nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.pointwise(self.depthwise(F.pad(x, DOWNSAMPLE_PADDING) if self.stride == 2 else x))
        shortcut = F.max_pool2d(x, 2) if self.stride == 2 else x
        return add_shortcut(residual, shortcut).relu_()  # in place: these passes cost as much as the convs


def add_shortcut(residual: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """residual + the shortcut zero-padded to its channels. In place in PyTorch (the padded channels add nothing).
    An ONNX export pads by a 1x1 convolution with identity weights, of sizes fixed at export: ONNX Runtime runs an
    in-place slice (a scatter) several times slower, and a Pad takes its blocked (NCHWc) layout apart, whereas a
    convolution and the sum after it stay in that layout (Face Mesh v2: see its `prelu`)."""
    if torch.onnx.is_in_onnx_export():
        channels_in, channels_out = int(shortcut.shape[1]), int(residual.shape[1])
        if channels_out > channels_in:
            shortcut = F.conv2d(shortcut, torch.eye(channels_out, channels_in)[..., None, None])
        return residual + shortcut
    residual[:, :shortcut.shape[1]] += shortcut
    return residual


class BlazeFaceNet(nn.Module):
    """(N, 3, 128, 128) in [-1, 1] -> raw regressors (N, 896, 16) and score logits (N, 896), TFLite's outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 5, 2)
        self.blocks = nn.ModuleList(BlazeBlock(*spec) for spec in BLOCKS)
        self.classifier_16 = nn.Conv2d(88, 2, 1)
        self.regressor_16 = nn.Conv2d(88, 32, 1)
        self.classifier_8 = nn.Conv2d(96, 6, 1)
        self.regressor_8 = nn.Conv2d(96, 96, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(F.pad(x, STEM_PADDING)).relu_()
        for block in self.blocks[:FIRST_MAP_BLOCKS]:
            x = block(x)
        map_16 = x
        for block in self.blocks[FIRST_MAP_BLOCKS:]:
            x = block(x)
        # NHWC flattening, as TFLite's reshape: anchors run over rows, then columns, then the anchors of a cell
        flat = [head(feature).permute(0, 2, 3, 1).reshape(x.shape[0], -1, width) for head, feature, width in (
            (self.regressor_16, map_16, 16), (self.regressor_8, x, 16),
            (self.classifier_16, map_16, 1), (self.classifier_8, x, 1))]
        return torch.cat(flat[:2], 1), torch.cat(flat[2:], 1)[..., 0]

    def load_tflite_weights(self, weights: dict[str, np.ndarray]) -> None:
        """TFLite names and layouts (conv OHWI, depthwise 1HWC) into this module's parameters."""

        def conv(layer: nn.Conv2d, name: str, depthwise: bool = False) -> None:
            kernel = torch.from_numpy(weights[f"{name}/Kernel"])
            layer.weight.data.copy_(kernel.permute(3, 0, 1, 2) if depthwise else kernel.permute(0, 3, 1, 2))
            layer.bias.data.copy_(torch.from_numpy(weights[f"{name}/Bias"]))

        conv(self.stem, "conv2d")
        for index, block in enumerate(self.blocks):
            conv(block.depthwise, "depthwise_conv2d" + (f"_{index}" if index else ""), depthwise=True)
            conv(block.pointwise, f"conv2d_{index + 1}")
        for layer, name in ((self.classifier_16, "classificator_8"), (self.regressor_16, "regressor_8"),
                            (self.classifier_8, "classificator_16"), (self.regressor_8, "regressor_16")):
            conv(layer, name)  # TFLite names the heads by stride (8, 16), ours by feature-map size


@cache
def load_blazeface_net(device: str = "cpu") -> BlazeFaceNet:
    """The network with its converted weights, in eval mode, built once per process and device; channels-last, as
    it runs twice as fast as NCHW on CPU."""
    net = BlazeFaceNet()
    net.load_tflite_weights(face_landmarker_weights("face_detector"))
    return net.eval().to(device, memory_format=torch.channels_last)
