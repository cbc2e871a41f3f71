"""Face Mesh v2 (the face_landmarks_detector.tflite of MediaPipe's Face Landmarker bundle) with the pre- and
post-processing of MediaPipe's Tasks FaceLandmarker, so it puts the 478 landmarks where mediapipe does.

The crop is the FaceLandmarker's in image mode: the detector's box grown 1.5 times about its centre (not made
square), turned so the eye keypoints lie level, resampled to 256x256 with the frame's edge repeated outside it.
The processing is numpy, so the onnx runtime needs no torch; the network (its architecture:
viper.backbones.face_mesh_v2_net) runs in whichever runtime viper.runtime chooses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..resample import warp
from ..runtime import network
from .blazeface import sigmoid

INPUT_SIZE = 256
NUM_LANDMARKS = 478
ONNX = "face_landmarker/face_landmarks_detector.onnx"  # FaceMeshNet exported by scripts/export_onnx.py
ROI_SCALE = 1.5  # the FaceDetectorGraph's RectTransformation of the detection box


def face_roi(box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """A face's region (centre x, centre y, width, height, rotation in radians), in pixels, from a BlazeFace box
    (x0, y0, x1, y1) and keypoints (6, 2): the box grown 1.5 times about its centre and turned by the angle of
    the line from the right eye (keypoint 0) to the left eye (keypoint 1), as MediaPipe's DetectionsToRects and
    RectTransformation calculators make it."""
    (x0, y0, x1, y1), (right_eye, left_eye) = box, keypoints[:2]
    angle = -math.atan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0])
    angle = angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))  # into [-pi, pi)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * ROI_SCALE, (y1 - y0) * ROI_SCALE, angle])


def face_crop(frame: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """The region resampled to 256x256 uint8 as MediaPipe's OpenCV ImageToTensor does: output pixel (u, v) samples
    the frame at centre + R(rotation) ((u / 256 - 1/2) width, (v / 256 - 1/2) height), bilinearly, the frame's
    edge repeated outside it, with OpenCV's rounding (viper.resample.warp)."""
    centre_x, centre_y, roi_width, roi_height, angle = roi
    cos, sin = math.cos(angle), math.sin(angle)
    scale_x, scale_y = roi_width / INPUT_SIZE, roi_height / INPUT_SIZE
    crop_to_frame = np.array([  # (u, v, 1) -> frame (x, y, 1)
        [cos * scale_x, -sin * scale_y, centre_x - (cos * roi_width - sin * roi_height) / 2],
        [sin * scale_x, cos * scale_y, centre_y - (sin * roi_width + cos * roi_height) / 2]])
    return warp(frame, crop_to_frame, (INPUT_SIZE, INPUT_SIZE), "replicate")


def project_landmarks(landmarks: np.ndarray, rois: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Landmarks (N, 478, 3) in crop pixels -> frame pixels, by the inverse of the crop's map, as MediaPipe's
    LandmarkProjectionCalculator given the image size. Its z stays on the x scale of the frame: the crop's z
    times the length, in frame-normalised units, of the crop's x axis (so z depends on the frame's aspect ratio
    when the face is turned), times the frame width. `sizes` (N, 2): each frame's width and height."""
    offsets = landmarks / INPUT_SIZE
    across = (offsets[..., 0] - 0.5) * rois[:, 2, None]
    down = (offsets[..., 1] - 0.5) * rois[:, 3, None]
    cos, sin = np.cos(rois[:, 4, None]), np.sin(rois[:, 4, None])
    width, height = sizes[:, 0, None], sizes[:, 1, None]
    z_scale = rois[:, 2, None] * np.sqrt(cos**2 + (sin * width / height) ** 2)
    return np.stack([rois[:, 0, None] + cos * across - sin * down, rois[:, 1, None] + sin * across + cos * down,
                     offsets[..., 2] * z_scale], -1)


@dataclass
class FaceMeshes:
    """One entry per face: landmarks (K, 478, 3) x, y, z in frame pixels (z on the x scale, smaller is nearer)
    and the face-presence probability (K,) (MediaPipe keeps a face at >= 0.5)."""

    landmarks: np.ndarray
    presence: np.ndarray


class FaceMeshV2:
    """478 face landmarks where MediaPipe's Tasks FaceLandmarker puts them, for faces given by their regions."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = str(device)

    def _torch_net(self):
        """The PyTorch network: only the torch runtime asks for it, so only it imports torch."""
        from .face_mesh_v2_net import load_face_mesh_v2_net

        return load_face_mesh_v2_net(self.device)

    def __call__(self, frames: list[np.ndarray], rois: np.ndarray) -> FaceMeshes:
        """frames[i] holds the face in rois[i] (rows of `face_roi`); repeat a frame for each of its faces."""
        if not frames:
            return FaceMeshes(np.zeros((0, NUM_LANDMARKS, 3), np.float32), np.zeros(0, np.float32))
        crops = np.stack([face_crop(frame, roi) for frame, roi in zip(frames, rois, strict=True)])
        forward = network(ONNX, self.device, self._torch_net, channels_last=True)
        landmarks, logits = forward(crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)  # NHWC memory
        regions = np.asarray(rois, np.float32)
        sizes = np.array([frame.shape[1::-1] for frame in frames], np.float32)
        return FaceMeshes(landmarks=project_landmarks(landmarks, regions, sizes), presence=sigmoid(logits))
