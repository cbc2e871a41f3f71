"""Live mode: single camera frames sent by the page (a few a second), each scored as a photo (one frame) by the
server's model, smoothed over the last few frames of the same session. Frames are written to a temp file only while
they are scored, then removed: nothing of the camera is kept. A frame's face is the largest one: one frame has no
people to follow, so the tracking a job does (a recognition network per face, a second crop) is skipped; the scores
of that face are those a job gives it."""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ViperError
from .worker import Scorer

SMOOTHING = 5  # frames averaged: about 1 s at the page's 5 frames a second
SESSIONS = 32  # live sessions remembered; the oldest is forgotten beyond


@dataclass
class LiveScore:
    """One frame's answer: its scores, their mean over the session's last frames, the face box (frame pixels of
    the frame as sent; None without a face) and the frame's size."""

    scores: dict[str, float]
    smoothed: dict[str, float]
    box: list[float] | None
    width: int
    height: int
    warnings: list[str]


class Live:
    """Scores frames with the worker's model under its lock (a running job holds it: live frames wait for it)."""

    def __init__(self, predictor: Scorer, lock: threading.Lock, folder: Path) -> None:
        self.predictor, self.lock, self.folder = predictor, lock, folder
        self.sessions: OrderedDict[str, deque[dict[str, float]]] = OrderedDict()
        folder.mkdir(parents=True, exist_ok=True)

    def score(self, session: str, image: bytes) -> LiveScore:
        handle, name = tempfile.mkstemp(dir=self.folder, suffix=".jpg")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(image)
            with self.lock:
                decoded = self.predictor.decode(Path(name), faces="largest")
                prediction = self.predictor.score(Path(name), decoded)
        finally:
            os.unlink(name)
        clip = decoded[0]
        if clip.media != "image":
            raise ViperError("a live frame must be one image (JPEG or PNG)")
        history = self.sessions.setdefault(session, deque(maxlen=SMOOTHING))
        self.sessions.move_to_end(session)
        while len(self.sessions) > SESSIONS:
            self.sessions.popitem(last=False)
        history.append(prediction.scores)
        smoothed = {emotion: sum(scores[emotion] for scores in history) / len(history) for emotion in history[0]}
        found = bool(clip.face_mask[0])
        height, width = clip.frames[0].shape[:2]
        return LiveScore(scores=prediction.scores, smoothed=smoothed,
                         box=[float(v) for v in clip.face_boxes[0]] if found else None, width=width, height=height,
                         warnings=prediction.warnings)

    def answer(self, session: str, image: bytes) -> dict:
        return asdict(self.score(session, image))
