"""BlazeFace short range (the face_detector.tflite of MediaPipe's Face Landmarker bundle) with the pre- and
post-processing of MediaPipe's Tasks FaceDetector, so it finds the same faces without mediapipe.

The processing is numpy, so the onnx runtime needs no torch: the letterboxed 128x128 input, then the 896 anchors'
boxes and keypoints decoded, scored, and merged by weighted non-max suppression. The network (its architecture:
viper.backbones.blazeface_net) runs in whichever runtime viper.runtime chooses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..resample import warp
from ..runtime import network

INPUT_SIZE = 128
NUM_KEYPOINTS = 6  # right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion
ONNX = "face_landmarker/face_detector.onnx"  # BlazeFaceNet exported by scripts/export_onnx.py


def ssd_anchors() -> np.ndarray:
    """Anchor centres (896, 2) in [0, 1], as MediaPipe's SsdAnchorsCalculator makes them for the short-range model
    (strides 8, 16, 16, 16; aspect ratio 1 plus the interpolated scale; fixed size 1, so only centres matter)."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = (np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float32) + 0.5) / grid
        centres.append(cells.repeat(per_cell, axis=0))
    return np.concatenate(centres)


@dataclass
class FaceDetections:
    """The faces of one frame, best first: boxes (K, 4) x0, y0, x1, y1 and keypoints (K, 6, 2) x, y in pixels."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray


class BlazeFace:
    """Faces in RGB frames as MediaPipe's Tasks FaceDetector finds them (defaults: its own 0.5 and 0.3)."""

    def __init__(self, device: str = "cpu", min_score: float = 0.5, min_suppression: float = 0.3) -> None:
        self.device = str(device)
        self.min_score, self.min_suppression = min_score, min_suppression
        self.anchors = ssd_anchors()  # decoding runs on the CPU, on the network's outputs from either runtime

    def _torch_net(self):
        """The PyTorch network: only the torch runtime asks for it, so only it imports torch."""
        from .blazeface_net import load_blazeface_net

        return load_blazeface_net(self.device)

    def __call__(self, frames: list[np.ndarray], pad: float = 1.0) -> list[FaceDetections]:
        """The faces of each frame, in frame pixels; `pad` > 1 looks at each frame inside a border (`letterbox`)."""
        if not frames:
            return []
        batch = np.stack([letterbox(frame, pad) for frame in frames])
        forward = network(ONNX, self.device, self._torch_net, channels_last=True)
        inputs = batch.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0  # an NCHW view of NHWC memory
        regressors, logits = forward(inputs)
        boxes, keypoints = self.decode(regressors)
        scores = sigmoid(np.clip(logits, -100.0, 100.0))
        per_frame = zip(boxes, keypoints, scores, frames, strict=True)
        return [self._frame_faces(box, points, score, frame.shape[:2], pad)
                for box, points, score, frame in per_frame]

    def decode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (N, 896, 16) -> boxes (N, 896, 4) x0, y0, x1, y1 and keypoints (N, 896, 6, 2), in [0, 1] of the
        letterboxed input (offsets are in input pixels from the anchor centre; widths in input pixels)."""
        values = raw / INPUT_SIZE
        centres = values[..., :2] + self.anchors
        half = values[..., 2:4] / 2
        keypoints = values[..., 4:].reshape(*values.shape[:-1], NUM_KEYPOINTS, 2) + self.anchors[:, None]
        return np.concatenate([centres - half, centres + half], -1), keypoints

    def _frame_faces(self, boxes, keypoints, scores, shape, pad: float) -> FaceDetections:
        keep = scores >= self.min_score
        boxes, keypoints, scores = weighted_nms(boxes[keep], keypoints[keep], scores[keep], self.min_suppression)
        height, width = shape
        side = max(height, width) * pad
        offset = np.array([(width - side) / 2, (height - side) / 2], np.float32)  # undo the letterbox, in pixels
        return FaceDetections(boxes=(boxes.reshape(-1, 2, 2) * side + offset).reshape(-1, 4), scores=scores,
                              keypoints=keypoints * side + offset)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) in the logits' float32, as torch.sigmoid computes it; a logit below -88 gives 0."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-logits))


def letterbox(frame: np.ndarray, pad: float = 1.0) -> np.ndarray:
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
        return warp(frame, input_to_frame, (INPUT_SIZE, INPUT_SIZE), "constant")
    image = warp(frame, input_to_frame, (INPUT_SIZE, INPUT_SIZE), "replicate")  # no dark seam at the frame's edge
    position = np.arange(INPUT_SIZE) * scale
    fill = frame.reshape(-1, frame.shape[-1]).mean(axis=0)
    image[(position + top < 0) | (position + top > height - 1)] = fill
    image[:, (position + left < 0) | (position + left > width - 1)] = fill
    return image


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, threshold: float):
    """MediaPipe's WEIGHTED non-max suppression: the best remaining box takes every box overlapping it by IoU >
    threshold (itself included) and becomes their score-weighted mean; it keeps its own score. Of equal scores the
    earlier anchor goes first (a stable sort), so the result does not hang on a sort's whims."""
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), bool)
    kept = []
    for best in range(len(scores)):
        if not remaining[best]:
            continue
        members = remaining & (iou(boxes[best], boxes) > threshold)
        members[best] = True  # even a degenerate (zero-area) box stands for itself
        weights = scores[members] / scores[members].sum()
        kept.append(((boxes[members] * weights[:, None]).sum(0), (keypoints[members] * weights[:, None, None]).sum(0),
                     scores[best]))
        remaining &= ~members
    if not kept:
        return boxes[:0], keypoints[:0], scores[:0]
    return tuple(np.stack(column) for column in zip(*kept, strict=True))


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x0, y0, x1, y1 box with many (0 where they do not intersect)."""
    low, high = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    intersection = (high - low).clip(min=0).prod(-1)
    union = area(box) + area(boxes) - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=intersection > 0)


def area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
