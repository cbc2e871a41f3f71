"""Face detection behind one small interface, and the square crop every face-based extractor reads."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .registry import Registry

CROP_SIZE = 224


class FaceDetector(ABC):
    """Finds the largest face per frame: a box (x0, y0, x1, y1) in pixels, or None."""

    def load(self) -> None:
        """Load the model (once per process)."""

    @abstractmethod
    def detect(self, frames: list[np.ndarray]) -> list[tuple[float, float, float, float] | None]:
        """The largest face of each RGB frame, or None where there is none."""


FACE_DETECTORS: Registry[type[FaceDetector]] = Registry("face detector", "viper.face_detectors")


def create_face_detector(name: str = "mediapipe") -> FaceDetector:
    return FACE_DETECTORS.get(name)()


def square_box(box, width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """The square around a box, grown by `margin` of its side on each side (may extend past the frame)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = side / 2
    return int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half))


def crop_square(frame: np.ndarray, box, margin: float = 0.2, size: int = CROP_SIZE) -> np.ndarray:
    """A size x size RGB crop of the face, square, with a margin; parts outside the frame repeat the edge."""
    import cv2

    height, width = frame.shape[:2]
    x0, y0, x1, y1 = square_box(box, width, height, margin)
    pad = max(0, -x0, -y0, x1 - width, y1 - height)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    crop = frame[y0:y1, x0:x1]
    interpolation = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def whole_frame(frame: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The whole frame, squashed to size x size (the paper's no-face-crop ablation feeds the whole frame)."""
    import cv2

    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
