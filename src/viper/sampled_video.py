"""One clip decoded once, faces detected once: every extractor reads from this object."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .audio_track import AudioFragment, AudioTrack
from .errors import VideoReadError
from .faces import FaceDetector, crop_square, whole_frame
from .images import read_image
from .video import (
    AUDIO_RATE,
    VideoFrames,
    audio_windows,
    read_audio,
    read_frames,
    sample_frame_times,
)

if TYPE_CHECKING:
    from .tracks import Seen, TrackedFace, Tracker
    from .windows import Window


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
    media: Literal["video", "image"] = "video"  # image: a still picture, its one frame repeated to N
    margin: float = 0.2  # of the face crops, around their box
    tracked: list[list[TrackedFace]] | None = None  # every face of each frame with its person; None: `largest`
    people: list[Seen] = field(default_factory=list)  # the people on these frames, in order of appearance
    person: int | None = None  # whose faces the face_* fields hold (--faces main|all); None: the largest of each frame

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

    def for_person(self, track: int | None) -> SampledVideo:
        """This clip with one person's faces as its faces: frames where only others are visible have none."""
        boxes, eyes, crops = np.full((self.n, 4), np.nan), np.full((self.n, 2, 2), np.nan), [None] * self.n
        for i, faces in enumerate(self.tracked or []):
            for face in faces:
                if face.track == track:
                    boxes[i], crops[i] = face.box, crop_square(self.frames[i], face.box, self.margin)
                    if face.eyes is not None:
                        eyes[i] = face.eyes
        return dataclasses.replace(self, face_boxes=boxes, face_eyes=eyes, face_crops=crops, person=track,
                                   face_mask=np.array([crop is not None for crop in crops], bool))

    @property
    def audio_mask(self) -> np.ndarray:
        """True where the frame's fragment holds audio samples."""
        return np.array([len(fragment) > 0 for fragment in self.audio_fragments()], dtype=bool)

    @functools.cached_property
    def sound_mask(self) -> np.ndarray:
        """True where the frame's fragment holds sound, above SOUND_FLOOR_DBFS: what coverage counts as audio (a
        digitally silent track has samples, and carries no evidence). Computed once per clip: it reads every
        fragment back from the track, and coverage, the per-frame table and the inspect page each ask for it."""
        if self.audio is None:
            return np.zeros(self.n, bool)
        return np.array([fragment.holds_sound() for fragment in self.audio_fragments()], dtype=bool)


def sample_video(
    path: Path,
    n: int,
    detector: FaceDetector | None,
    face_crop: bool = True,
    video_id: str | None = None,
    margin: float = 0.2,
    still_frames: int | None = None,
    faces: str = "largest",
    device: str = "cpu",
) -> SampledVideo:
    """Decode a clip's N sampled frames and its audio, and crop a face in each frame: the largest, or with `faces`
    main or all the main person's (see `face_choice`; descriptors on `device`). A still image is one frame, repeated
    `still_frames` times (default N: a model trained on N frames sees the N tokens it expects; a model that pools
    any number of frames needs 1)."""
    path = Path(path)
    image = read_image(path)
    if image is not None:
        return _still(path, video_id, image, still_frames or n, detector, face_crop, margin, faces, device)
    audio = read_audio(path)
    try:
        video = read_frames(path, n)
    except VideoReadError as error:
        return _clip(path, video_id, sample_frame_times(*_audio_only(audio, error), n), audio, None)
    return _with_faces(_clip(path, video_id, video.times, audio, video), detector, face_crop, margin, faces, device)


def sample_windows(
    path: Path,
    n: int,
    seconds: float,
    detector: FaceDetector | None,
    face_crop: bool = True,
    video_id: str | None = None,
    margin: float = 0.2,
    still_frames: int | None = None,
    faces: str = "largest",
    device: str = "cpu",
) -> Iterator[tuple[Window, SampledVideo]]:
    """A recording as consecutive windows of `seconds`, each sampled as a clip of N frames with its faces and audio
    fragments (the audio decoded once into a temp file, the frames one window at a time); a still image is one
    window of no length, sampled as `sample_video` samples it. With `faces` main or all, one tracker follows the
    people over the windows (a person keeps their number), and a window's main person is the recording's so far."""
    from .windows import Window, read_windows, window_spans

    path = Path(path)
    image = read_image(path)
    if image is not None:
        yield Window(0, 0.0, 0.0, 1), _still(path, video_id, image, still_frames or n, detector, face_crop, margin,
                                             faces, device)
        return
    tracker = _new_tracker() if faces != "largest" else None
    audio = read_audio(path)
    windows = read_windows(path, n, seconds)
    try:
        first = next(windows)
    except VideoReadError as error:
        windows = ((span, sample_frame_times(span.start, span.end, n), None)
                   for span in window_spans(*_audio_only(audio, error), seconds))
        first = next(windows)
    for window, times, video in itertools.chain([first], windows):
        clip = _clip(path, video_id, times, audio, video, duration=window.end - window.start)
        yield window, _with_faces(clip, detector, face_crop, margin, faces, device, tracker)


def _still(path: Path, video_id: str | None, image: np.ndarray, n: int, detector: FaceDetector | None,
           face_crop: bool, margin: float, faces: str, device: str) -> SampledVideo:
    """A still image as a clip: its face found once, then the frame repeated n times at time 0, without audio."""
    frame = VideoFrames(times=np.zeros(1), frame_times=np.zeros(1), frames=[image], repeated=0, duration=0.0, fps=0.0)
    clip = _with_faces(_clip(path, video_id, frame.times, None, frame), detector, face_crop, margin, faces, device)
    clip.media = "image"
    if n == 1:
        return clip
    return dataclasses.replace(
        clip, times=np.zeros(n), frame_times=np.zeros(n), repeated=n - 1, frames=clip.frames * n,
        face_boxes=np.repeat(clip.face_boxes, n, axis=0), face_eyes=np.repeat(clip.face_eyes, n, axis=0),
        face_mask=np.repeat(clip.face_mask, n), face_crops=clip.face_crops * n, windows=audio_windows(np.zeros(n)),
        tracked=None if clip.tracked is None else clip.tracked * n,
    )


def _audio_only(audio: AudioTrack | None, error: VideoReadError) -> tuple[float, float]:
    """The span (s) of the audio to sample instead of frames when the file has audio and no video stream (its
    face-based features are then masked, its audio still counts); any other read error is raised."""
    if audio is None or "no video stream" not in str(error):
        raise error
    return audio.start, audio.start + audio.length / AUDIO_RATE


def _clip(path: Path, video_id: str | None, times: np.ndarray, audio: AudioTrack | None, video: VideoFrames | None,
          duration: float | None = None) -> SampledVideo:
    """The sampled clip before its faces are looked for; without frames (audio only, or none decoded) its
    face-based features are masked and its audio still counts."""
    n = len(times)
    if duration is None:
        duration = video.duration if video is not None else (audio.length / AUDIO_RATE if audio else 0.0)
    return SampledVideo(
        video_id=video_id or path.stem,
        path=path,
        times=times,
        frame_times=times.copy() if video is None else video.frame_times,
        repeated=0 if video is None else video.repeated,
        frames=None if video is None else video.frames,
        face_boxes=np.full((n, 4), np.nan),
        face_eyes=np.full((n, 2, 2), np.nan),
        face_mask=np.zeros(n, bool),
        face_crops=[None] * n,
        audio=audio,
        windows=audio_windows(times),
        duration=duration,
        fps=0.0 if video is None else video.fps,
        video_stream=None if video is None else video.stream,
    )


def _with_faces(clip: SampledVideo, detector: FaceDetector | None, face_crop: bool, margin: float,
                faces: str = "largest", device: str = "cpu", tracker: Tracker | None = None) -> SampledVideo:
    """The clip with the largest face of each frame found and cropped, or every face followed (`tracker`: the
    recording's, across windows) and the main person's cropped; with face cropping off, whole frames."""
    if clip.frames is None:
        return clip
    clip.margin = margin
    if face_crop and faces != "largest":
        from .face_choice import seen, track_faces
        from .tracks import main_person

        tracker = tracker or _new_tracker()
        found = detector.detect_all(clip.frames) if detector is not None else [[] for _ in clip.frames]
        clip.tracked = track_faces(tracker, clip.frames, found, [float(t) for t in clip.times], device)
        clip.people = seen(clip.tracked, clip.times)
        main = main_person(tracker.persons())
        return clip.for_person(None if main is None else main.track)
    if face_crop:
        detected = detector.detect(clip.frames) if detector is not None else [None] * clip.n
        for i, (frame, face) in enumerate(zip(clip.frames, detected, strict=False)):
            if face is not None:
                clip.face_boxes[i] = face.box
                if face.eyes is not None:
                    clip.face_eyes[i] = face.eyes
                clip.face_crops[i] = crop_square(frame, face.box, margin)
    else:
        for i, frame in enumerate(clip.frames):
            clip.face_boxes[i] = (0, 0, frame.shape[1], frame.shape[0])
            clip.face_crops[i] = whole_frame(frame)
    clip.face_mask = np.array([crop is not None for crop in clip.face_crops])
    return clip


def _new_tracker() -> Tracker:
    from .tracks import Tracker

    return Tracker()
