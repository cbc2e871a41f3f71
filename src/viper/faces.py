"""Face detection behind one small interface, and the square crop every face-based extractor reads."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .errors import ViperError
from .registry import Registry
from .resample import resize

CROP_SIZE = 224


@dataclass(frozen=True)
class Face:
    """A detected face: its box (x0, y0, x1, y1) in frame pixels and, where the detector finds them, the centres
    of the right and left eye ((2, 2), the person's right first), which level the face mesh's crop."""

    box: tuple[float, float, float, float]
    eyes: np.ndarray | None = None


class FaceDetector(ABC):
    """Finds the largest face per frame, or None."""

    def load(self) -> None:
        """Load the model (once per process)."""

    @abstractmethod
    def detect(self, frames: list[np.ndarray]) -> list[Face | None]:
        """The largest face of each RGB frame, or None where there is none."""

    def detect_all(self, frames: list[np.ndarray]) -> list[list[Face]]:
        """Every face of each RGB frame, largest first (a detector that finds only the largest gives that one)."""
        return [[] if face is None else [face] for face in self.detect(frames)]


FACE_DETECTORS: Registry[type[FaceDetector]] = Registry("face detector", "viper.face_detectors")
DEFAULT_FACE_DETECTOR = "blazeface"


def create_face_detector(name: str = DEFAULT_FACE_DETECTOR, device: str | None = None) -> FaceDetector:
    """The detector `name` on `device` (None: the detector's own choice); a run passes its device, so detection
    runs where its other networks do, and a CPU run never imports torch to look for a GPU."""
    if name == "mediapipe":
        raise ViperError("face detector 'mediapipe' was removed (its package blocks Python 3.12+): features and "
                         "checkpoints made with it cannot be extended; extract again and retrain, which uses "
                         f"{DEFAULT_FACE_DETECTOR!r}, the same BlazeFace model in PyTorch")
    return FACE_DETECTORS.get(name)(device=device)


def square_box(box, width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """The square around a box, grown by `margin` of its side on each side (may extend past the frame)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = side / 2
    return int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half))


@dataclass(frozen=True)
class CropRule:
    """A square face crop relative to the detector's (square) box: side `scale` times the box's, centre moved
    down by `shift` of the box's side (negative: up). How a network's own pipeline framed faces, in BlazeFace terms."""

    scale: float
    shift: float = 0.0

    def box(self, box) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0)
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2 + self.shift * side, self.scale * side / 2
        return cx - half, cy - half, cx + half, cy + half


# face-api.js crops the box of dlib's 68 landmarks grown 20 %: 1.11 times BlazeFace's side, centred 0.035 of it lower
# (benchmarks/crop_geometry.py, 244 photos of 142 people); its expression and recognition nets both read this crop
FACE_API_CROP = CropRule(1.11, 0.035)


def crop_square(frame: np.ndarray, box, margin: float = 0.2, size: int = CROP_SIZE) -> np.ndarray:
    """A size x size RGB crop of the face, square, with a margin; parts outside the frame repeat the edge."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = square_box(box, width, height, margin)
    top, left, bottom, right = max(y0, 0), max(x0, 0), min(y1, height), min(x1, width)
    if top < bottom and left < right:  # the part inside the frame, its edges repeated beyond: the pixels the
        # gather below takes (clipped indices), at a fraction of its cost, which exceeded the resize's
        pad = [(top - y0, y1 - bottom), (left - x0, x1 - right)] + [(0, 0)] * (frame.ndim - 2)
        return resize(np.pad(frame[top:bottom, left:right], pad, mode="edge"), size)
    rows, cols = np.arange(y0, y1).clip(0, height - 1), np.arange(x0, x1).clip(0, width - 1)
    return resize(frame[rows[:, None], cols[None, :]], size)


def whole_frame(frame: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The whole frame, squashed to size x size (the paper's no-face-crop ablation feeds the whole frame)."""
    return resize(frame, size)
