"""Face Mesh v2 (the face_landmarks_detector.tflite of MediaPipe's Face Landmarker bundle) in PyTorch, with the
pre- and post-processing of MediaPipe's Tasks FaceLandmarker, so it puts the 478 landmarks where mediapipe does.

The network is the TFLite graph op for op: a 3x3 stride-2 stem, 34 residual blocks (1x1 or 2x2 stride-2
reduction, depthwise 3x3, 1x1 expansion, a max-pooled and zero-channel-padded shortcut on the stride-2 ones,
PReLU after the add) from 128x128 down to 2x2, then 2x2 heads: 1434 = 478 x (x, y, z) in crop pixels and the
face-presence logit. Input: (N, 3, 256, 256) RGB in [0, 1]. Weights: assets/face_landmarker/
face_landmarks_detector.npz, written by scripts/convert_face_landmarker.py.

The crop is the FaceLandmarker's in image mode: the detector's box grown 1.5 times about its centre (not made
square), turned so the eye keypoints lie level, resampled to 256x256 with the frame's edge repeated outside it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib.resources import files

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..resample import warp
from ..runtime import network
from .blazeface import add_shortcut

INPUT_SIZE = 256
NUM_LANDMARKS = 478
ONNX = "face_landmarker/face_landmarks_detector.onnx"  # FaceMeshNet exported by scripts/export_onnx.py
ROI_SCALE = 1.5  # the FaceDetectorGraph's RectTransformation of the detection box
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


@lru_cache(maxsize=1)
def tflite_weights() -> dict[str, np.ndarray]:
    """The converted weights, read once per process."""
    with np.load(files("viper.assets") / "face_landmarker" / "face_landmarks_detector.npz") as npz:
        return {name: npz[name] for name in npz.files}


def face_roi(box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """A face's region (centre x, centre y, width, height, rotation in radians), in pixels, from a BlazeFace box
    (x0, y0, x1, y1) and keypoints (6, 2): the box grown 1.5 times about its centre and turned by the angle of
    the line from the right eye (keypoint 0) to the left eye (keypoint 1), as MediaPipe's DetectionsToRects and
    RectTransformation calculators make it."""
    (x0, y0, x1, y1), (right_eye, left_eye) = box, keypoints[:2]
    angle = -math.atan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0])
    angle = angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))  # into [-pi, pi)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * ROI_SCALE, (y1 - y0) * ROI_SCALE, angle])


def face_crop(frame: np.ndarray, roi: np.ndarray) -> torch.Tensor:
    """The region resampled to 256x256 uint8 as MediaPipe's OpenCV ImageToTensor does: output pixel (u, v) samples
    the frame at centre + R(rotation) ((u / 256 - 1/2) width, (v / 256 - 1/2) height), bilinearly, the frame's
    edge repeated outside it, with OpenCV's rounding (viper.resample.warp)."""
    centre_x, centre_y, roi_width, roi_height, angle = roi
    cos, sin = math.cos(angle), math.sin(angle)
    scale_x, scale_y = roi_width / INPUT_SIZE, roi_height / INPUT_SIZE
    crop_to_frame = np.array([  # (u, v, 1) -> frame (x, y, 1)
        [cos * scale_x, -sin * scale_y, centre_x - (cos * roi_width - sin * roi_height) / 2],
        [sin * scale_x, cos * scale_y, centre_y - (sin * roi_width + cos * roi_height) / 2]])
    return torch.from_numpy(warp(frame, crop_to_frame, (INPUT_SIZE, INPUT_SIZE), "replicate"))


def project_landmarks(landmarks: torch.Tensor, rois: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Landmarks (N, 478, 3) in crop pixels -> frame pixels, by the inverse of the crop's map, as MediaPipe's
    LandmarkProjectionCalculator given the image size. Its z stays on the x scale of the frame: the crop's z
    times the length, in frame-normalised units, of the crop's x axis (so z depends on the frame's aspect ratio
    when the face is turned), times the frame width. `sizes` (N, 2): each frame's width and height."""
    offsets = landmarks / INPUT_SIZE
    across = (offsets[..., 0] - 0.5) * rois[:, 2, None]
    down = (offsets[..., 1] - 0.5) * rois[:, 3, None]
    cos, sin = torch.cos(rois[:, 4, None]), torch.sin(rois[:, 4, None])
    width, height = sizes[:, 0, None], sizes[:, 1, None]
    z_scale = rois[:, 2, None] * torch.sqrt(cos**2 + (sin * width / height) ** 2)
    return torch.stack([rois[:, 0, None] + cos * across - sin * down, rois[:, 1, None] + sin * across + cos * down,
                        offsets[..., 2] * z_scale], -1)


@dataclass
class FaceMeshes:
    """One entry per face: landmarks (K, 478, 3) x, y, z in frame pixels (z on the x scale, smaller is nearer)
    and the face-presence probability (K,) (MediaPipe keeps a face at >= 0.5)."""

    landmarks: np.ndarray
    presence: np.ndarray


class FaceMeshV2:
    """478 face landmarks where MediaPipe's Tasks FaceLandmarker puts them, for faces given by their regions."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    @cached_property
    def net(self) -> FaceMeshNet:
        """The PyTorch network, built on first use (the onnx runtime does not need it)."""
        net = FaceMeshNet()
        net.load_tflite_weights(tflite_weights())
        return net.eval().to(self.device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, frames: list[np.ndarray], rois: np.ndarray) -> FaceMeshes:
        """frames[i] holds the face in rois[i] (rows of `face_roi`); repeat a frame for each of its faces."""
        if not frames:
            return FaceMeshes(np.zeros((0, NUM_LANDMARKS, 3), np.float32), np.zeros(0, np.float32))
        crops = torch.stack([face_crop(frame, roi) for frame, roi in zip(frames, rois, strict=True)])
        forward = network(ONNX, str(self.device), lambda: self.net, channels_last=True)
        landmarks, logits = (torch.from_numpy(out) for out in forward(
            crops.permute(0, 3, 1, 2).float().div(255.0).numpy()))
        regions = torch.as_tensor(np.asarray(rois, np.float32))
        sizes = torch.tensor([frame.shape[1::-1] for frame in frames], dtype=torch.float32)
        return FaceMeshes(landmarks=project_landmarks(landmarks, regions, sizes).numpy(),
                          presence=torch.sigmoid(logits).numpy())
