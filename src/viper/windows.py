"""A long recording read as consecutive windows of S seconds with N sampled frames each (the emotion trace of
`viper predict --window`): one forward pass over the file, holding one window's frames at a time, so memory does
not grow with the recording's length."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SettingError, VideoReadError
from .settings import real_number
from .video import (
    VideoFrames,
    frames_at,
    nearest_indices,
    open_media,
    pick_video_stream,
    sample_frame_times,
    stream_fps,
)

MIN_WINDOW = 0.1  # seconds: 3 frames of a 30 fps video (`check_window`)


@dataclass(frozen=True)
class Window:
    """One window of a recording: its place in the trace and the span it covers, in the file's seconds."""

    index: int
    start: float
    end: float
    count: int  # windows in the recording


def window_spans(first: float, last: float, seconds: float) -> Iterator[Window]:
    """Consecutive windows of `seconds` from `first` to `last`, made one at a time (a long recording's are never all
    in memory). The last window takes the rest: a remainder under half a window joins the window before it (so no
    window rests on a few repeated frames), and a recording shorter than one window is one window."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a window must be a positive number of seconds, not {seconds}")
    count = max(1, math.ceil((last - first) / seconds - 1e-9))
    if count > 1 and last - (first + (count - 1) * seconds) < seconds / 2:
        count -= 1
    return (Window(k, first + k * seconds, last if k == count - 1 else first + (k + 1) * seconds, count)
            for k in range(count))


def window_times(window: Window, stamps: np.ndarray, n: int) -> np.ndarray:
    """The N sampled times of a window: spread evenly from its first to its last frame (as a clip's are; the last
    window holds the recording's last frame), or over its span where no frame falls in it."""
    last = window.index == window.count - 1
    begin = np.searchsorted(stamps, window.start - 1e-9, side="left")
    end = np.searchsorted(stamps, window.end + 1e-9 if last else window.end - 1e-9, side="right" if last else "left")
    if end > begin:
        return sample_frame_times(stamps[begin], stamps[end - 1], n)
    return sample_frame_times(window.start, window.end, n)


def check_window(seconds: float) -> float:
    """`seconds` as a window length: at least `MIN_WINDOW`, so a window holds a few frames (shorter windows score
    one frame over and over, and a recording would make millions of them)."""
    try:
        return real_number("window", seconds, minimum=MIN_WINDOW)
    except SettingError as error:
        raise SettingError("window", f"{error.problem} (seconds: a window holds at least 3 frames of a "
                                     "30 fps video)") from None


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

        def plans() -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
            """Each window with its N sampled times and the frame times nearest them, planned as they are needed."""
            for window in window_spans(float(stamps[0]), float(stamps[-1]), seconds):
                times = window_times(window, stamps, n)
                yield window, times, stamps[nearest_indices(stamps, times)]

        wanted = np.zeros(len(stamps), bool)  # one flag per frame: memory follows the frames, not the windows
        for _, _, chosen in plans():
            wanted[np.searchsorted(stamps, chosen)] = True
        frames = frames_at(path, container, stream, stamps[wanted], stamps, timed, max_side, seek_gap)
        pending: dict[float, np.ndarray] = {}
        upcoming = plans()
        plan = next(upcoming)
        while plan is not None:
            window, times, chosen = plan
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
            plan = next(upcoming, None)
            keep = plan[2].min() if plan is not None else np.inf
            pending = {t: image for t, image in pending.items() if t >= keep - 1e-9}
    except av.FFmpegError as error:
        raise VideoReadError(f"{path}: the video cannot be decoded ({error})") from error
    finally:
        container.close()
