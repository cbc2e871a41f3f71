"""Reading clips with PyAV: the sampled frame times, the frames at those times, and the paper's audio windows."""

from __future__ import annotations

import os
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import VideoReadError

AUDIO_RATE = 16_000
SAMPLE = np.dtype(np.float32)
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


@dataclass
class VideoFrames:
    """The frames read at the sampled times, in time order."""

    times: np.ndarray  # (N,) the evenly spaced target times, seconds
    frame_times: np.ndarray  # (N,) time of the frame actually used for each target
    frames: list[np.ndarray]  # N RGB uint8 arrays (H, W, 3), display orientation
    repeated: int  # how many of the N frames repeat an earlier one (clip shorter than N frames)
    duration: float
    fps: float


@dataclass(eq=False)
class AudioTrack:
    """A clip's audio, mono float32, kept in an unlinked temp file rather than in memory (a recording's length
    costs disk, 230 MB an hour, not RAM); fragments read their samples back when an extractor uses them."""

    rate: int
    start: float = 0.0  # time of the first sample, seconds
    length: int = 0  # samples
    energy: float = 0.0  # sum of the squared samples: the whole track's loudness without holding the track
    file: BinaryIO = field(default_factory=tempfile.TemporaryFile, repr=False)

    def __post_init__(self) -> None:
        weakref.finalize(self, self.file.close)  # the OS frees the unlinked file when it is closed

    def append(self, samples: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(samples, np.float32).tobytes())
        self.length += len(samples)
        self.energy += float(np.square(samples, dtype=np.float64).sum())

    @property
    def rms(self) -> float:
        return float(np.sqrt(self.energy / self.length)) if self.length else 0.0

    def read(self, first: int, last: int) -> np.ndarray:
        """Samples [first, last), clipped to the track (read-only)."""
        first, last = max(0, first), min(self.length, last)
        if last <= first:
            return np.zeros(0, np.float32)
        size = SAMPLE.itemsize
        return np.frombuffer(os.pread(self.file.fileno(), (last - first) * size, first * size), SAMPLE)

    def fragments(self, windows: np.ndarray) -> list[AudioFragment]:
        """The samples of each (start, end) window in seconds; a window outside the track gives an empty one."""
        out = []
        for begin, end in windows:
            first = max(0, int(round((begin - self.start) * self.rate)))
            last = min(self.length, int(round((end - self.start) * self.rate)))
            out.append(AudioFragment(self, first, max(first, last)))
        return out


@dataclass(frozen=True)
class AudioFragment:
    """Samples [first, last) of a track times `gain`, read only when sliced (or turned into an array), so a long
    recording's fragments can be used a piece at a time."""

    track: AudioTrack
    first: int
    last: int
    gain: float = 1.0

    def __len__(self) -> int:
        return self.last - self.first

    def __getitem__(self, index: slice) -> np.ndarray:
        span = range(self.first, self.last)[index]
        if span.step != 1:
            raise ValueError("an audio fragment is read in contiguous slices")
        return self.track.read(span.start, span.stop) * self.gain

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        samples = self[:]
        return samples if dtype is None else samples.astype(dtype)


def sample_frame_times(first: float, last: float, n: int) -> np.ndarray:
    """N times spread evenly from the first to the last frame, both included."""
    if n < 1:
        raise ValueError("n must be at least 1")
    return np.linspace(first, last, n, dtype=np.float64)


def audio_windows(times: np.ndarray) -> np.ndarray:
    """The paper's audio fragments, one per sampled frame: (N, 2) start/end seconds.

    Interior fragments are centred on their frame and as long as the spacing between frames, so they tile
    [first, last] without overlap; the first starts at its frame and the last ends at its frame (half length).
    """
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 1:
        return np.array([[times[0], times[0]]])
    half_step = (times[-1] - times[0]) / (len(times) - 1) / 2
    windows = np.stack([times - half_step, times + half_step], axis=1)
    windows[0, 0] = times[0]
    windows[-1, 1] = times[-1]
    return windows


def nearest_indices(timestamps: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the frame whose timestamp is nearest to each target time (ties go to the earlier frame)."""
    right = np.clip(np.searchsorted(timestamps, times), 1, len(timestamps) - 1)
    left = right - 1
    if len(timestamps) == 1:
        return np.zeros(len(times), dtype=np.int64)
    choose_right = np.abs(timestamps[right] - times) < np.abs(times - timestamps[left])
    return np.where(choose_right, right, left)


def _open(path: Path):
    import av

    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"{path}: file does not exist")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path}: file is empty (0 bytes)")
    try:
        try:
            return av.open(str(path), metadata_errors="replace")  # garbled metadata text must not stop the read
        except TypeError:  # PyAV 19 dropped the option (and no longer fails on such text)
            return av.open(str(path))
    except av.FFmpegError as error:
        raise VideoReadError(f"{path}: not a readable video ({error.strerror or error})") from error
    except (UnicodeDecodeError, ValueError) as error:
        raise VideoReadError(f"{path}: not a readable video ({error})") from error


def _video_timestamps(container, stream) -> np.ndarray:
    """Presentation times of every frame, from packets alone (no decoding: cheap even for long clips)."""
    base = float(stream.time_base)
    stamps = []
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:
            continue
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is not None:
            stamps.append(stamp * base)
    return np.unique(np.asarray(stamps, dtype=np.float64))


def _to_rgb(frame, max_side: int) -> np.ndarray:
    width, height = frame.width, frame.height
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(2, round(width * scale)), max(2, round(height * scale))
    image = frame.to_ndarray(format="rgb24", width=out_w, height=out_h)
    rotation = int(round((frame.rotation or 0) / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, k=rotation)) if rotation else image


def read_frames(path: Path, n: int, max_side: int = 1280, seek_gap: float = 2.0) -> VideoFrames:
    """Read the N sampled frames of a clip in one forward pass, seeking only across gaps over `seek_gap` s.

    Short clips decode sequentially (cheaper than a seek per frame); long clips jump between the sampled
    times, so memory stays bounded by N frames whatever the clip's length.
    """
    import av

    container = _open(path)
    try:
        if not container.streams.video:
            raise VideoReadError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            stamps = _video_timestamps(container, stream)
        except av.FFmpegError as error:
            raise VideoReadError(f"{path}: cannot read video packets ({error})") from error
        if len(stamps) == 0:
            raise VideoReadError(f"{path}: the video stream has no frames")
        times = sample_frame_times(stamps[0], stamps[-1], n)
        wanted = stamps[nearest_indices(stamps, times)]
        frames = _decode_at(container, stream, np.unique(wanted), max_side, seek_gap, path)
        missing = [t for t in np.unique(wanted) if t not in frames]
        if missing:
            if not frames:
                raise VideoReadError(f"{path}: no frame could be decoded")
            # A damaged stretch: use the nearest frame that did decode, so sampling still gives N frames.
            decoded = np.array(sorted(frames))
            wanted = decoded[nearest_indices(decoded, wanted)]
        duration = float(stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
        fps = (len(stamps) - 1) / duration if duration > 0 else float(stream.average_rate or 0)
        return VideoFrames(
            times=times,
            frame_times=wanted,
            frames=[frames[t] for t in wanted],
            repeated=int(n - len(np.unique(wanted))),
            duration=duration,
            fps=fps,
        )
    except av.FFmpegError as error:  # any other damage FFmpeg reports: still this file's problem, not a crash
        raise VideoReadError(f"{path}: the video cannot be decoded ({error})") from error
    finally:
        container.close()


def _decode_at(container, stream, wanted: np.ndarray, max_side: int, seek_gap: float, path: Path):
    """Decode the frames with the given timestamps; returns {timestamp: RGB array}."""
    import av

    base = float(stream.time_base)
    found: dict[float, np.ndarray] = {}
    position = -np.inf
    target = 0
    while target < len(wanted):
        try:
            if wanted[target] - position > seek_gap:
                container.seek(int(wanted[target] / base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                position = frame.pts * base
                while target < len(wanted) and wanted[target] < position - 1e-9:
                    target += 1  # a frame we asked for never came out (damaged stream)
                if target < len(wanted) and abs(wanted[target] - position) < 1e-9:
                    found[wanted[target]] = _to_rgb(frame, max_side)
                    target += 1
                    if target < len(wanted) and wanted[target] - position > seek_gap:
                        break  # jump ahead rather than decode the gap (a seek lands on the keyframe before)
                if target >= len(wanted):
                    break
            else:
                break
        except av.FFmpegError:
            if not found:
                raise VideoReadError(f"{path}: the video data cannot be decoded") from None
            break
    return found


def read_audio(path: Path, rate: int = AUDIO_RATE) -> AudioTrack | None:
    """The first audio track as mono float32 at `rate` Hz; None if there is none (or it has no samples).

    Decoded and resampled as one stream, exactly as a whole-track decode would be, but each resampled chunk goes
    to the track's temp file at once: memory stays flat however long the recording is.
    """
    import av

    container = _open(path)
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        start: float | None = None
        try:
            track = AudioTrack(rate)
            try:
                for frame in container.decode(stream):
                    if start is None and frame.pts is not None:
                        start = float(frame.pts * frame.time_base)
                    for out in resampler.resample(frame):
                        track.append(out.to_ndarray().reshape(-1))
                for out in resampler.resample(None):
                    track.append(out.to_ndarray().reshape(-1))
            except (av.FFmpegError, ValueError):
                pass  # keep what decoded before the damage (ValueError: a damaged frame changed the sample format)
            track.file.flush()
        except OSError as error:  # the temp folder, not the clip: say where, and how to move it
            raise VideoReadError(
                f"{path}: cannot keep its audio in a temp file in {tempfile.gettempdir()} ({error.strerror or error}); "
                "set TMPDIR to a folder with space"
            ) from error
        track.start = start or 0.0
        return track if track.length else None
    finally:
        container.close()
