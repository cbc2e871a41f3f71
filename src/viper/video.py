"""Reading clips with PyAV: the sampled frame times, the frames at those times, and the paper's audio windows."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio_track import AudioTrack
from .errors import VideoReadError

AUDIO_RATE = 16_000
OUTLYING_FRAMES, OUTLYING_GAP = 3, 100  # `trusted_span`: a damaged time isolates a frame or two, hours away
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".m2ts",
                  ".mts")


@dataclass
class VideoFrames:
    """The frames read at the sampled times, in time order."""

    times: np.ndarray  # (N,) the evenly spaced target times, seconds
    frame_times: np.ndarray  # (N,) time of the frame actually used for each target
    frames: list[np.ndarray]  # N RGB uint8 arrays (H, W, 3), display orientation
    repeated: int  # how many of the N frames repeat an earlier one (clip shorter than N frames)
    duration: float
    fps: float
    stream: str | None = None  # which video stream was read, when the file has several


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


def open_media(path: Path):
    """The file opened with PyAV, or a VideoReadError naming it and what is wrong (missing, empty, LFS pointer)."""
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
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        reason = getattr(error, "strerror", None) or error
        raise VideoReadError(lfs_pointer(path) or f"{path}: not a readable video ({reason})") from error


def lfs_pointer(path: Path) -> str | None:
    """The message for a Git LFS pointer file saved under the video's name (a clone made without `git lfs`)."""
    with open(path, "rb") as file:
        if file.read(64).startswith(b"version https://git-lfs.github.com/spec"):
            return f"{path}: a Git LFS pointer, not the video itself; fetch it with `git lfs pull`"
    return None


def pick_video_stream(container, path: Path):
    """The stream to read: (stream, its frame times, whether its packets all carried times, a note saying which
    stream it is when there was a choice, else None).

    Cover art (a stream with the attached_pic disposition, as in an m4a) is not video; of several streams the
    default one is read, else the longest, else the largest: a file's first stream may be a thumbnail or an
    alternate angle."""
    import av

    attached = av.stream.Disposition.attached_pic
    streams = [stream for stream in container.streams.video if not stream.disposition & attached]
    if not streams:
        covers = " (only cover art)" if container.streams.video else ""
        raise VideoReadError(f"{path}: no video stream{covers}")
    try:
        timestamps = _video_timestamps(container, streams)
    except av.FFmpegError as error:
        raise VideoReadError(f"{path}: cannot read video packets ({error})") from error
    except IndexError as error:  # PyAV's demuxer fails on a stream that first appears mid-file (PyAV issue 692)
        raise VideoReadError(f"{path}: cannot read video packets (a stream appears mid-file)") from error
    default = av.stream.Disposition.default

    def rank(stream):
        stamps = timestamps[stream.index][0]
        span = stamps[-1] - stamps[0] if len(stamps) else -1.0
        codec = stream.codec_context  # None where the codec is unknown: decoding it then fails with a message
        pixels = codec.width * codec.height if codec is not None else 0
        return (bool(stream.disposition & default), span, len(stamps), pixels)

    stream = max(streams, key=rank)
    note = None
    if len(streams) > 1:
        best, runner_up = sorted(map(rank, streams), reverse=True)[:2]
        criteria = ("default", "longest", "one with most frames", "largest")
        because = next((name for name, a, b in zip(criteria, best, runner_up, strict=True) if a != b), "first")
        note = f"stream #{stream.index}, the {because} of {len(streams)} video streams"
    return stream, *timestamps[stream.index], note


def trusted_span(stamps: np.ndarray) -> np.ndarray:
    """Frame times without the few frames a damaged packet time puts far from the rest (one byte can place the
    last frame of a 2.4 s clip at 4,290 s): at either end, up to `OUTLYING_FRAMES` frames cut off from the others by
    a gap over `OUTLYING_GAP` frame spacings (and over 10 s) are dropped, so the clip's span is where its frames are."""
    if len(stamps) <= 2 * OUTLYING_FRAMES:
        return stamps
    gaps = np.diff(stamps)
    cut = np.flatnonzero(gaps > max(10.0, OUTLYING_GAP * float(np.median(gaps))))
    first = max((k + 1 for k in cut if k < OUTLYING_FRAMES), default=0)
    last = min((k + 1 for k in cut if k + 1 >= len(stamps) - OUTLYING_FRAMES), default=len(stamps))
    return stamps[first:last]


def _video_timestamps(container, streams) -> dict[int, tuple[np.ndarray, bool]]:
    """Presentation times of every frame of each stream, from packets alone (no decoding: cheap even for long
    clips), and whether every packet carried its own time.

    Where some packets carry none (H.264 in MPEG-PS stamps a few, and in decoding order), the frames are taken
    as evenly spaced at the stream's frame rate from the earliest stamp; `decode_frames` then times them by count."""
    ticks: dict[int, list[int]] = {stream.index: [] for stream in streams}
    counts = dict.fromkeys(ticks, 0)
    for packet in container.demux(*streams):
        if packet.size == 0 or packet.is_discard:
            continue
        counts[packet.stream.index] += 1
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is not None:
            ticks[packet.stream.index].append(stamp)
    timestamps = {}
    for stream in streams:
        stamps = np.asarray(ticks[stream.index], dtype=np.float64) * float(stream.time_base)
        rate = stream.guessed_rate or stream.average_rate
        if len(stamps) == counts[stream.index] or not rate:
            timestamps[stream.index] = trusted_span(np.unique(stamps)), True
        else:
            first = stamps.min() if len(stamps) else 0.0
            timestamps[stream.index] = first + np.arange(counts[stream.index]) / float(rate), False
    return timestamps


def frame_to_rgb(frame, max_side: int) -> np.ndarray:
    width, height = frame.width, frame.height
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(2, round(width * scale)), max(2, round(height * scale))
    image = frame.to_ndarray(format="rgb24", width=out_w, height=out_h)
    rotation = int(round((frame.rotation or 0) / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, k=rotation)) if rotation else image


def read_frames(path: Path, n: int, max_side: int = 1280, seek_gap: float = 2.0) -> VideoFrames:
    """Read the N sampled frames of a clip in one forward pass, seeking only across gaps over `seek_gap` s.

    Short clips decode sequentially (cheaper than a seek per frame); long clips jump between the sampled
    times, so memory stays bounded by N frames whatever the clip's length. Where seeking cannot be trusted
    (MPEG-TS and MPEG-PS seek by byte position; packets without times), the clip is decoded in order instead.
    """
    import av

    container = open_media(path)
    try:
        stream, stamps, timed, note = pick_video_stream(container, path)
        if len(stamps) == 0:
            raise VideoReadError(f"{path}: the video stream has no frames")
        times = sample_frame_times(stamps[0], stamps[-1], n)
        wanted = stamps[nearest_indices(stamps, times)]
        frames = dict(frames_at(path, container, stream, np.unique(wanted), stamps, timed, max_side, seek_gap))
        if len(frames) < len(np.unique(wanted)):  # some never decoded
            if not frames:
                raise VideoReadError(f"{path}: no frame could be decoded")
            # A damaged stretch: use the nearest frame that did decode, so sampling still gives N frames.
            decoded = np.array(sorted(frames))
            wanted = decoded[nearest_indices(decoded, wanted)]
        return VideoFrames(
            times=times,
            frame_times=wanted,
            frames=[frames[t] for t in wanted],
            repeated=int(n - len(np.unique(wanted))),
            duration=float(stamps[-1] - stamps[0]),
            fps=stream_fps(stream, stamps),
            stream=note,
        )
    except av.FFmpegError as error:  # any other damage FFmpeg reports: still this file's problem, not a crash
        raise VideoReadError(f"{path}: the video cannot be decoded ({error})") from error
    finally:
        container.close()


class SeekMissed(Exception):
    """A seek landed after the frame it aimed at, or on no frame at all: the caller decodes in order instead."""


def stream_fps(stream, stamps: np.ndarray) -> float:
    """Frames per second over the stream's frame times (its declared average rate for a single frame)."""
    span = float(stamps[-1] - stamps[0])
    return (len(stamps) - 1) / span if span > 0 else float(stream.average_rate or 0)


def frames_at(path: Path, container, stream, wanted: np.ndarray, stamps: np.ndarray, timed: bool, max_side: int,
              seek_gap: float) -> Iterator[tuple[float, np.ndarray]]:
    """The wanted frames (sorted timestamps) in time order, seeking across gaps; after a missed seek the rest, and
    where packets lack times (MPEG-PS) all, decoded in order from a fresh start (`container` is demuxed to its end)."""
    reached = -np.inf
    try:
        if timed:
            for time, image in decode_frames(container, stream, wanted, max_side, seek_gap, path):
                reached = time
                yield time, image
            return
    except SeekMissed:
        pass
    fresh = open_media(path)
    try:
        rest = wanted[wanted > reached + 1e-9]
        yield from decode_frames(fresh, fresh.streams[stream.index], rest, max_side, None, path,
                                 None if timed else stamps)
    finally:
        fresh.close()


def decode_frames(container, stream, wanted: np.ndarray, max_side: int, seek_gap: float | None, path: Path,
                  by_count: np.ndarray | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(timestamp, RGB array) of each frame with a wanted timestamp (sorted), in time order, one at a time.

    Seeks across gaps over `seek_gap` s; None: never (a fresh container, decoded in order), the k-th frame timed
    `by_count[k]` when given (streams whose packets lack times). Raises SeekMissed when a seek lands after the
    frame it aimed at or on no frame at all; a seek that lands before the frame already reached saves nothing, so
    the rest is decoded in order from there. A frame that never comes out (damage) is skipped.
    """
    import av

    stream.thread_type = "AUTO"
    base = float(stream.time_base)
    position = -np.inf
    target = count = 0
    found = False
    while target < len(wanted):
        try:
            seeking = seek_gap is not None and wanted[target] - position > seek_gap
            if seeking:
                container.seek(int(wanted[target] / base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if by_count is not None:
                    if count == len(by_count):
                        return  # a frame the packets did not count cannot be one we want
                    time = by_count[count]
                    count += 1
                elif frame.pts is None:
                    continue
                else:
                    time = frame.pts * base
                if seeking:
                    seeking = False
                    if time > wanted[target] + 1e-9:
                        raise SeekMissed  # the seek overshot: the frame we want is behind us
                    if time <= position:
                        seek_gap = None  # back before where we were: seeking again would not save decoding
                position = time
                while target < len(wanted) and wanted[target] < position - 1e-9:
                    target += 1  # a frame we asked for never came out (damaged stream)
                if target < len(wanted) and abs(wanted[target] - position) < 1e-9:
                    found = True
                    yield wanted[target], frame_to_rgb(frame, max_side)
                    target += 1
                    if seek_gap is not None and target < len(wanted) and wanted[target] - position > seek_gap:
                        break  # jump ahead rather than decode the gap (a seek lands on the keyframe before)
                if target >= len(wanted):
                    break
            else:
                if seeking:
                    raise SeekMissed  # the seek found no frame at all
                break
        except av.FFmpegError:
            if not found:
                raise VideoReadError(f"{path}: the video data cannot be decoded") from None
            break


def read_audio(path: Path, rate: int = AUDIO_RATE) -> AudioTrack | None:
    """The first audio track as mono float32 at `rate` Hz; None if there is none (or it has no samples).

    Decoded and resampled as one stream, exactly as a whole-track decode would be, but each resampled chunk goes
    to the track's temp file at once: memory stays flat however long the recording is.
    """
    import av

    container = open_media(path)
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
            except IndexError as error:  # as for the video packets: a stream that first appears mid-file
                raise VideoReadError(f"{path}: cannot read audio packets (a stream appears mid-file)") from error
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
