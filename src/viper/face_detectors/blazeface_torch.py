"""BlazeFace short range (viper.backbones.blazeface): the faces MediaPipe's detector finds, batched over frames, in
ONNX Runtime on CPU or PyTorch on CPU or CUDA, with no mediapipe import (its pin blocks Python 3.12+)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import runtime
from ..faces import FACE_DETECTORS, Face, FaceDetector

if TYPE_CHECKING:
    from ..backbones.blazeface import FaceDetections

RETRY_PAD = 3.0  # the border of the second look, in frame sizes: chosen on many people by benchmarks/small_faces.py


@FACE_DETECTORS.add("blazeface")
class TorchBlazeFaceDetector(FaceDetector):
    """Faces per frame with their eye keypoints (the largest, or all); frames are handled independently (no
    tracking: viper.tracks follows people across frames).

    A frame where no face is found is looked at once more inside a border (`retry_pad` times its size, in its mean
    colour): a tight face crop (a dataset's 48-pixel faces) leaves the short-range model no context, and most of
    them are found then. Frames with a face in the first look keep its boxes, so only faceless frames cost more.
    `retry_pad=None` skips the second look."""

    def __init__(self, min_confidence: float = 0.6, device: str | None = None,
                 retry_pad: float | None = RETRY_PAD) -> None:
        self.min_confidence = min_confidence
        self.device = device
        self.retry_pad = retry_pad
        self._model = None

    def load(self) -> None:
        if self._model is None:
            from ..backbones.blazeface import BlazeFace

            self._model = BlazeFace(self.device or default_device(), min_score=self.min_confidence)

    def _faces(self, frames: list[np.ndarray]) -> list[FaceDetections]:
        """BlazeFace's detections per frame (frame pixels), from a second look inside a border where the first
        found no face with some area in the frame."""
        found = self._model(frames)
        missed = [index for index, (faces, frame) in enumerate(zip(found, frames, strict=True))
                  if largest(faces.boxes, faces.keypoints, frame.shape[:2]) is None]
        if missed and self.retry_pad:
            again = self._model([frames[index] for index in missed], pad=self.retry_pad)
            for index, faces in zip(missed, again, strict=True):
                found[index] = faces
        return found

    def detect(self, frames: list[np.ndarray]) -> list[Face | None]:
        self.load()
        return [largest(faces.boxes, faces.keypoints, frame.shape[:2])
                for faces, frame in zip(self._faces(frames), frames, strict=True)]

    def detect_all(self, frames: list[np.ndarray]) -> list[list[Face]]:
        """Every face BlazeFace keeps (above `min_confidence`, after its non-max suppression), largest first: the
        people a tracker tells apart."""
        self.load()
        return [every_face(faces.boxes, faces.keypoints, frame.shape[:2])
                for faces, frame in zip(self._faces(frames), frames, strict=True)]


def default_device() -> str:
    """cuda where torch is installed and sees one, unless this process runs its networks in onnx (CPU only); else
    cpu. A torch that is there but fails to import raises here rather than falling back unnoticed."""
    if runtime.forced() == "onnx":
        return "cpu"
    try:
        import torch
    except ModuleNotFoundError as error:
        if error.name != "torch":
            raise
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def largest(boxes: np.ndarray, keypoints: np.ndarray, shape: tuple[int, int]) -> Face | None:
    """The largest face once its box is clipped to the frame (a box is what is visible: a face filling the frame
    overshoots); its eyes are BlazeFace's first two keypoints, unclipped."""
    clipped, areas = clip_boxes(boxes, shape)
    if not len(areas) or areas.max() <= 0:
        return None
    best = int(areas.argmax())
    return Face(box=tuple(float(value) for value in clipped[best]), eyes=np.asarray(keypoints[best, :2], np.float64))


def every_face(boxes: np.ndarray, keypoints: np.ndarray, shape: tuple[int, int]) -> list[Face]:
    """Every face with some area inside the frame, boxes clipped as in `largest`, largest first (ties: the better
    score, BlazeFace's order)."""
    clipped, areas = clip_boxes(boxes, shape)
    return [Face(box=tuple(float(value) for value in clipped[i]), eyes=np.asarray(keypoints[i, :2], np.float64))
            for i in np.argsort(-areas, kind="stable") if areas[i] > 0]


def clip_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (K, 4) clipped to a frame of `shape` (height, width), and their areas there."""
    height, width = shape
    clipped = np.clip(boxes, 0, [width, height, width, height])
    return clipped, (clipped[:, 2] - clipped[:, 0]).clip(0) * (clipped[:, 3] - clipped[:, 1]).clip(0)
