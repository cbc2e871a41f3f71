"""BlazeFace short range in PyTorch (viper.backbones.blazeface): the faces MediaPipe's detector finds, batched over
frames on CPU or CUDA, with no mediapipe import (its pin blocks Python 3.12+)."""

from __future__ import annotations

import numpy as np

from ..faces import FACE_DETECTORS, Face, FaceDetector


@FACE_DETECTORS.add("blazeface")
class TorchBlazeFaceDetector(FaceDetector):
    """Largest face per frame with its eye keypoints; frames are handled independently (no tracking)."""

    def __init__(self, min_confidence: float = 0.6, device: str | None = None) -> None:
        self.min_confidence = min_confidence
        self.device = device
        self._model = None

    def load(self) -> None:
        if self._model is None:
            import torch

            from ..backbones.blazeface import BlazeFace

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._model = BlazeFace(device, min_score=self.min_confidence)

    def detect(self, frames: list[np.ndarray]) -> list[Face | None]:
        self.load()
        return [largest(faces.boxes, faces.keypoints, frame.shape[:2])
                for faces, frame in zip(self._model(frames), frames, strict=True)]


def largest(boxes: np.ndarray, keypoints: np.ndarray, shape: tuple[int, int]) -> Face | None:
    """The largest face once its box is clipped to the frame (a box is what is visible: a face filling the frame
    overshoots); its eyes are BlazeFace's first two keypoints, unclipped."""
    height, width = shape
    clipped = np.clip(boxes, 0, [width, height, width, height])
    areas = (clipped[:, 2] - clipped[:, 0]).clip(0) * (clipped[:, 3] - clipped[:, 1]).clip(0)
    if not len(areas) or areas.max() <= 0:
        return None
    best = int(areas.argmax())
    return Face(box=tuple(float(value) for value in clipped[best]), eyes=np.asarray(keypoints[best, :2], np.float64))
