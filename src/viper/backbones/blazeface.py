"""BlazeFace short range (the face_detector.tflite of MediaPipe's Face Landmarker bundle) in PyTorch, with the
pre- and post-processing of MediaPipe's Tasks FaceDetector, so it finds the same faces without mediapipe.

The network is the TFLite graph op for op: a 5x5 stride-2 stem, 16 BlazeBlocks (depthwise 3x3 + pointwise 1x1,
a max-pooled and zero-channel-padded shortcut, ReLU after the add), and 1x1 heads on the 16x16 (2 anchors per
cell) and 8x8 (6 anchors per cell) feature maps: 896 anchors, each with a score logit and 16 box/keypoint values.
Weights: assets/face_landmarker/face_detector.npz, written by scripts/convert_face_landmarker.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib.resources import files

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..resample import warp
from ..runtime import network

INPUT_SIZE = 128
NUM_KEYPOINTS = 6  # right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion
# (in, out, stride) per BlazeBlock; the 11th block's output feeds the 16x16 heads, the last one's the 8x8 heads
BLOCKS = ((24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2), (48, 56, 1), (56, 64, 1),
          (64, 72, 1), (72, 80, 1), (80, 88, 1), (88, 96, 2), (96, 96, 1), (96, 96, 1), (96, 96, 1), (96, 96, 1))
FIRST_MAP_BLOCKS = 11
ONNX = "face_landmarker/face_detector.onnx"  # BlazeFaceNet exported by scripts/export_onnx.py


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


@lru_cache(maxsize=1)
def tflite_weights() -> dict[str, np.ndarray]:
    """The converted weights, read once per process."""
    with np.load(files("viper.assets") / "face_landmarker" / "face_detector.npz") as npz:
        return {name: npz[name] for name in npz.files}


def ssd_anchors() -> torch.Tensor:
    """Anchor centres (896, 2) in [0, 1], as MediaPipe's SsdAnchorsCalculator makes them for the short-range model
    (strides 8, 16, 16, 16; aspect ratio 1 plus the interpolated scale; fixed size 1, so only centres matter)."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        cells = torch.stack([xs, ys], -1).reshape(-1, 2).float().add(0.5).div(grid)
        centres.append(cells.repeat_interleave(per_cell, 0))
    return torch.cat(centres)


@dataclass
class FaceDetections:
    """The faces of one frame, best first: boxes (K, 4) x0, y0, x1, y1 and keypoints (K, 6, 2) x, y in pixels."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray


class BlazeFace:
    """Faces in RGB frames as MediaPipe's Tasks FaceDetector finds them (defaults: its own 0.5 and 0.3)."""

    def __init__(self, device: str | torch.device = "cpu", min_score: float = 0.5, min_suppression: float = 0.3):
        self.device = torch.device(device)
        self.min_score, self.min_suppression = min_score, min_suppression
        self.anchors = ssd_anchors()  # decoding runs on the CPU, on the network's outputs from either runtime

    @cached_property
    def net(self) -> BlazeFaceNet:
        """The PyTorch network, built on first use (the onnx runtime does not need it)."""
        net = BlazeFaceNet()
        net.load_tflite_weights(tflite_weights())
        return net.eval().to(self.device, memory_format=torch.channels_last)  # twice as fast as NCHW on CPU

    @torch.inference_mode()
    def __call__(self, frames: list[np.ndarray], pad: float = 1.0) -> list[FaceDetections]:
        """The faces of each frame, in frame pixels; `pad` > 1 looks at each frame inside a border (`letterbox`)."""
        if not frames:
            return []
        batch = torch.stack([letterbox(frame, pad) for frame in frames])
        forward = network(ONNX, str(self.device), lambda: self.net, channels_last=True)
        regressors, logits = (torch.from_numpy(out) for out in forward(
            batch.permute(0, 3, 1, 2).float().div(127.5).sub(1.0).numpy()))  # NHWC memory
        boxes, keypoints = self.decode(regressors)
        scores = torch.sigmoid(logits.clamp(-100.0, 100.0))
        per_frame = zip(boxes, keypoints, scores, frames, strict=True)
        return [self._frame_faces(box, points, score, frame.shape[:2], pad)
                for box, points, score, frame in per_frame]

    def decode(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (N, 896, 16) -> boxes (N, 896, 4) x0, y0, x1, y1 and keypoints (N, 896, 6, 2), in [0, 1] of the
        letterboxed input (offsets are in input pixels from the anchor centre; widths in input pixels)."""
        values = raw / INPUT_SIZE
        centres = values[..., :2] + self.anchors
        half = values[..., 2:4] / 2
        keypoints = values[..., 4:].unflatten(-1, (NUM_KEYPOINTS, 2)) + self.anchors[:, None]
        return torch.cat([centres - half, centres + half], -1), keypoints

    def _frame_faces(self, boxes, keypoints, scores, shape, pad: float) -> FaceDetections:
        keep = scores >= self.min_score
        boxes, keypoints, scores = weighted_nms(boxes[keep], keypoints[keep], scores[keep], self.min_suppression)
        height, width = shape
        side = max(height, width) * pad
        offset = torch.tensor([(width - side) / 2, (height - side) / 2])  # undo the letterbox, in pixels
        return FaceDetections(boxes=(boxes.unflatten(-1, (2, 2)) * side + offset).flatten(-2).numpy(),
                              scores=scores.numpy(), keypoints=(keypoints * side + offset).numpy())


def letterbox(frame: np.ndarray, pad: float = 1.0) -> torch.Tensor:
    """The frame centred in a black square, resampled to 128x128 uint8 as MediaPipe's OpenCV ImageToTensor does:
    output pixel (i, j) samples the source at (j, i) * side / 128 plus the pad offset (no half-pixel shift),
    bilinearly, black outside the frame, with OpenCV's rounding (viper.resample.warp).

    With `pad` > 1 the square is `pad` times the frame's longer side and filled with the frame's mean colour: a
    face that fills a tight crop then fills part of the input, as the faces the short-range model was trained on."""
    height, width = frame.shape[:2]
    side = max(height, width) * pad
    scale = side / INPUT_SIZE
    left, top = (width - side) / 2, (height - side) / 2
    input_to_frame = np.array([[scale, 0.0, left], [0.0, scale, top]])
    if pad == 1.0:
        return torch.from_numpy(warp(frame, input_to_frame, (INPUT_SIZE, INPUT_SIZE), "constant"))
    image = warp(frame, input_to_frame, (INPUT_SIZE, INPUT_SIZE), "replicate")  # no dark seam at the frame's edge
    position = np.arange(INPUT_SIZE) * scale
    fill = frame.reshape(-1, frame.shape[-1]).mean(axis=0)
    image[(position + top < 0) | (position + top > height - 1)] = fill
    image[:, (position + left < 0) | (position + left > width - 1)] = fill
    return torch.from_numpy(image)


def weighted_nms(boxes: torch.Tensor, keypoints: torch.Tensor, scores: torch.Tensor, threshold: float):
    """MediaPipe's WEIGHTED non-max suppression: the best remaining box takes every box overlapping it by IoU >
    threshold (itself included) and becomes their score-weighted mean; it keeps its own score."""
    order = scores.argsort(descending=True)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = torch.ones(len(scores), dtype=torch.bool)
    kept_boxes, kept_keypoints, kept_scores = [], [], []
    for best in range(len(scores)):
        if not remaining[best]:
            continue
        members = remaining & (iou(boxes[best], boxes) > threshold)
        members[best] = True  # even a degenerate (zero-area) box stands for itself
        weights = scores[members] / scores[members].sum()
        kept_boxes.append((boxes[members] * weights[:, None]).sum(0))
        kept_keypoints.append((keypoints[members] * weights[:, None, None]).sum(0))
        kept_scores.append(scores[best])
        remaining &= ~members
    if not kept_scores:
        return boxes[:0], keypoints[:0], scores[:0]
    return torch.stack(kept_boxes), torch.stack(kept_keypoints), torch.stack(kept_scores)


def iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one x0, y0, x1, y1 box with many (0 where they do not intersect)."""
    low, high = torch.maximum(box[:2], boxes[:, :2]), torch.minimum(box[2:], boxes[:, 2:])
    intersection = (high - low).clamp(min=0).prod(-1)
    union = area(box) + area(boxes) - intersection
    return torch.where(intersection > 0, intersection / union, torch.zeros_like(union))


def area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
