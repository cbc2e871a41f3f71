"""A long recording read as consecutive windows of S seconds with N sampled frames each (the emotion trace of
`viper predict --window`): one forward pass over the file, holding one window's frames at a time, so memory does
not grow with the recording's length."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import VideoReadError
from .video import (
    VideoFrames,
    frames_at,
    nearest_indices,
    open_media,
    pick_video_stream,
    sample_frame_times,
    stream_fps,
)


@dataclass(frozen=True)
class Window:
    """One window of a recording: its place in the trace and the span it covers, in the file's seconds."""

    index: int
    start: float
    end: float
    count: int  # windows in the recording


def window_spans(first: float, last: float, seconds: float) -> list[Window]:
    """Consecutive windows of `seconds` from `first` to `last`. The last window takes the rest: a remainder under
    half a window joins the window before it (so no window rests on a few repeated frames), and a recording shorter
    than one window is one window."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a window must be a positive number of seconds, not {seconds}")
    count = max(1, math.ceil((last - first) / seconds - 1e-9))
    if count > 1 and last - (first + (count - 1) * seconds) < seconds / 2:
        count -= 1
    return [Window(k, first + k * seconds, last if k == count - 1 else first + (k + 1) * seconds, count)
            for k in range(count)]


def window_times(window: Window, stamps: np.ndarray, n: int) -> np.ndarray:
    """The N sampled times of a window: spread evenly from its first to its last frame (as a clip's are; the last
    window holds the recording's last frame), or over its span where no frame falls in it."""
    last = window.index == window.count - 1
    inside = stamps[(stamps >= window.start - 1e-9) & ((stamps <= window.end + 1e-9) if last else
                                                         (stamps < window.end - 1e-9))]
    if len(inside):
        return sample_frame_times(inside[0], inside[-1], n)
    return sample_frame_times(window.start, window.end, n)


def read_windows(path: Path, n: int, seconds: float, max_side: int = 1280,
                 seek_gap: float = 2.0) -> Iterator[tuple[Window, np.ndarray, VideoFrames | None]]:
    """Each window, its N sampled times and its frames, in order; None for a window none of whose frames could be
    decoded (damage).

    The frames are decoded once, front to back, seeking only across gaps over `seek_gap` s (at N frames per
    window nearly every keyframe interval holds one), in order where seeking cannot be trusted (as `read_frames`).
    """
    import av

    path = Path(path)
    container = open_media(path)
    try:
        stream, stamps, timed, note = pick_video_stream(container, path)
        if len(stamps) == 0:
            raise VideoReadError(f"{path}: the video stream has no frames")
        fps = stream_fps(stream, stamps)
        windows = window_spans(float(stamps[0]), float(stamps[-1]), seconds)
        plans = []
        for window in windows:
            times = window_times(window, stamps, n)
            plans.append((window, times, stamps[nearest_indices(stamps, times)]))
        wanted = np.unique(np.concatenate([plan[2] for plan in plans]))
        frames = frames_at(path, container, stream, wanted, stamps, timed, max_side, seek_gap)
        pending: dict[float, np.ndarray] = {}
        for index, (window, times, chosen) in enumerate(plans):
            need = np.unique(chosen)
            if not any(t >= need[-1] - 1e-9 for t in pending):
                for time, image in frames:
                    pending[time] = image
                    if time >= need[-1] - 1e-9:
                        break
            decoded = np.array(sorted(t for t in pending if need[0] - 1e-9 <= t <= need[-1] + 1e-9))
            if len(decoded) == 0:
                yield window, times, None
            else:
                chosen = decoded[nearest_indices(decoded, chosen)]  # a damaged frame: the nearest that decoded
                frames_read = VideoFrames(times=times, frame_times=chosen, frames=[pending[t] for t in chosen],
                                          repeated=int(n - len(np.unique(chosen))),
                                          duration=window.end - window.start, fps=fps, stream=note)
                yield window, times, frames_read
            upcoming = plans[index + 1][2].min() if index + 1 < len(plans) else np.inf
            pending = {t: image for t, image in pending.items() if t >= upcoming - 1e-9}
    except av.FFmpegError as error:
        raise VideoReadError(f"{path}: the video cannot be decoded ({error})") from error
    finally:
        container.close()
