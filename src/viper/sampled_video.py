"""One clip decoded once, faces detected once: every extractor reads from this object."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import VideoReadError
from .faces import FaceDetector, crop_square, whole_frame
from .video import AUDIO_RATE, AudioFragment, AudioTrack, audio_windows, read_audio, read_frames, sample_frame_times


@dataclass
class SampledVideo:
    """The N sampled frames of a video with their face crops and audio fragments (the paper's per-frame units)."""

    video_id: str
    path: Path
    times: np.ndarray  # (N,) sampled times, seconds, evenly spaced from the first to the last frame
    frame_times: np.ndarray  # (N,) time of the decoded frame used for each sampled time
    repeated: int  # frames that repeat an earlier one because the clip has fewer than N frames
    frames: list[np.ndarray] | None  # N RGB uint8 frames; None for a file without a video stream
    face_boxes: np.ndarray  # (N, 4) x0, y0, x1, y1 in frame pixels; NaN where no face
    face_eyes: np.ndarray  # (N, 2, 2) right and left eye centres in frame pixels; NaN where unknown
    face_mask: np.ndarray  # (N,) True where a face (or, with face cropping off, a frame) is available
    face_crops: list[np.ndarray | None]  # N square RGB crops (224 x 224); None where face_mask is False
    audio: AudioTrack | None  # mono float32 at AUDIO_RATE (on disk, read per fragment); None without audio
    windows: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (N, 2) audio fragment bounds
    duration: float = 0.0
    fps: float = 0.0
    video_stream: str | None = None  # which video stream was read, when the file has several

    @property
    def n(self) -> int:
        return len(self.times)

    def audio_fragments(self) -> list[AudioFragment] | list[np.ndarray]:
        """The paper's fragments: one per frame, centred on it, equal and non-overlapping (half at the ends).

        Each has a length and is read from the track when sliced or turned into an array: together they span the
        whole clip, so a long recording's are never all in memory at once."""
        if self.audio is None:
            return [np.zeros(0, np.float32) for _ in range(self.n)]
        return self.audio.fragments(self.windows)

    @property
    def audio_mask(self) -> np.ndarray:
        """True where the frame's fragment holds audio samples."""
        return np.array([len(fragment) > 0 for fragment in self.audio_fragments()], dtype=bool)


def sample_video(
    path: Path,
    n: int,
    detector: FaceDetector | None,
    face_crop: bool = True,
    video_id: str | None = None,
    margin: float = 0.2,
) -> SampledVideo:
    """Decode a clip's N sampled frames and its audio, and crop the largest face in each frame."""
    path = Path(path)
    audio = read_audio(path)
    try:
        video = read_frames(path, n)
    except VideoReadError as error:
        if audio is None or "no video stream" not in str(error):
            raise
        video = None  # an audio-only file: face-based features are masked, audio still counts
    if video is not None:
        times, frame_times, frames = video.times, video.frame_times, video.frames
        repeated, duration, fps = video.repeated, video.duration, video.fps
    else:
        duration = audio.length / AUDIO_RATE
        times = sample_frame_times(audio.start, audio.start + duration, n)
        frame_times, frames, repeated, fps = times.copy(), None, 0, 0.0

    boxes, eyes = np.full((n, 4), np.nan), np.full((n, 2, 2), np.nan)
    crops: list[np.ndarray | None] = [None] * n
    if frames is not None:
        if face_crop:
            detected = detector.detect(frames) if detector is not None else [None] * n
            for i, (frame, face) in enumerate(zip(frames, detected, strict=False)):
                if face is not None:
                    boxes[i] = face.box
                    if face.eyes is not None:
                        eyes[i] = face.eyes
                    crops[i] = crop_square(frame, face.box, margin)
        else:
            for i, frame in enumerate(frames):
                boxes[i] = (0, 0, frame.shape[1], frame.shape[0])
                crops[i] = whole_frame(frame)
    return SampledVideo(
        video_id=video_id or path.stem,
        path=path,
        times=times,
        frame_times=frame_times,
        repeated=repeated,
        frames=frames,
        face_boxes=boxes,
        face_eyes=eyes,
        face_mask=np.array([crop is not None for crop in crops]),
        face_crops=crops,
        audio=audio,
        windows=audio_windows(times),
        duration=duration,
        fps=fps,
        video_stream=None if video is None else video.stream,
    )
