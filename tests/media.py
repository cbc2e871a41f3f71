"""Clips the tests make with PyAV: no audio track, few frames, odd sizes, rotation metadata, audio-only."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def make_clip(
    path: Path,
    frames: int = 20,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    audio_seconds: float | None = None,
    rotation: int = 0,
    codec: str = "libx264",
    audio_codec: str = "aac",
    audio_rate: int = 16000,
    audio_layout: str = "mono",
    audio_start: float = 0.0,
) -> Path:
    """A clip whose frame i is filled with brightness i (so tests can tell frames apart); optional tone audio
    (`audio_start` seconds after the video starts)."""
    width, height = size
    container = av.open(str(path), "w")
    video = container.add_stream(codec, rate=fps)
    video.width, video.height = width, height
    video.pix_fmt = "yuv420p"
    if rotation:
        video.set_display_rotation(rotation)
    audio = None
    if audio_seconds:
        audio = container.add_stream(audio_codec, rate=audio_rate, layout=audio_layout)
    for i in range(frames):
        image = np.full((height, width, 3), min(255, 10 * i), np.uint8)
        image[: height // 4] = 255  # a white band at the top shows the orientation
        for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    if audio is not None:
        _write_tone(container, audio, audio_seconds, audio_start)
    container.close()
    return path


def make_audio_only(path: Path, seconds: float = 2.0) -> Path:
    container = av.open(str(path), "w")
    audio = container.add_stream("aac", rate=16000)
    audio.layout = "mono"
    _write_tone(container, audio, seconds)
    container.close()
    return path


def _write_tone(container, stream, seconds: float, delay: float = 0.0) -> None:
    """A 220 Hz tone (a rising one on a second channel) whose first sample is at `delay` seconds."""
    rate, channels = stream.rate, stream.layout.nb_channels
    phase = 2 * np.pi * 220 * np.arange(int(rate * seconds)) / rate
    samples = 0.3 * np.stack([np.sin(phase), np.sin(phase * 1.5)][:channels]).astype(np.float32)
    for start in range(0, samples.shape[1], 1024):
        chunk = np.ascontiguousarray(samples[:, start : start + 1024])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
        frame.sample_rate = rate
        frame.pts = round(delay * rate) + start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def sample_frames(folder: Path, names, per_clip: int) -> list[np.ndarray]:
    """`per_clip` evenly spread RGB frames of each named video, then each named image, from `folder`."""
    from PIL import Image

    from viper.video import VIDEO_SUFFIXES, read_frames

    frames = []
    for name in names:
        path = folder / name
        if path.suffix.lower() in VIDEO_SUFFIXES:
            frames += read_frames(path, per_clip).frames
        else:
            frames.append(np.asarray(Image.open(path).convert("RGB")))
    return frames


def make_numbered_clip(path: Path, frames: int, fps: int = 10, codec: str = "libx264", first: int = 0,
                       size: tuple[int, int] = (64, 48), container_format: str | None = None) -> Path:
    """A clip whose frame i shows the number first + i in 8 black/white bars (read back with `frame_number`), so
    a test can tell exactly which frame it got, in any container."""
    container = av.open(str(path), "w", format=container_format)
    add_numbered_stream(container, codec, fps, size)
    write_numbered_frames(container, container.streams.video[0], frames, first)
    container.close()
    return path


def add_numbered_stream(container, codec: str, fps: int, size: tuple[int, int]):
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    return stream


def write_numbered_frames(container, stream, frames: int, first: int = 0) -> None:
    for i in range(first, first + frames):
        for packet in stream.encode(av.VideoFrame.from_ndarray(_numbered_image(i, stream), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _numbered_image(number: int, stream) -> np.ndarray:
    bits = (number >> np.arange(8)) & 1
    columns = (bits[np.arange(stream.width) * 8 // stream.width] * 255).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(columns[None, :, None], (stream.height, stream.width, 3)))


def frame_number(image: np.ndarray) -> int:
    """The number `make_numbered_clip` drew in a decoded frame."""
    width = image.shape[1]
    centres = ((np.arange(8) + 0.5) * width / 8).astype(int)
    bits = image[:, centres].mean(axis=(0, 2)) > 128
    return int((bits * (1 << np.arange(8))).sum())


def make_with_cover_art(path: Path, video_frames: int = 0, audio_seconds: float = 0.0) -> Path:
    """An mp4-family file (e.g. .m4a) whose first stream is cover art (one mjpeg picture marked attached_pic, as
    music files carry it), then optionally a numbered video stream and tone audio."""
    container = av.open(str(path), "w", format="mp4")
    cover = container.add_stream("mjpeg", rate=1)
    cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
    cover.disposition = av.stream.Disposition.attached_pic
    video = add_numbered_stream(container, "libx264", 10, (64, 48)) if video_frames else None
    audio = container.add_stream("aac", rate=16000, layout="mono") if audio_seconds else None
    picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
    for packet in [*cover.encode(picture.reformat(format="yuvj420p")), *cover.encode()]:
        container.mux(packet)
    if video is not None:
        write_numbered_frames(container, video, video_frames)
    if audio is not None:
        _write_tone(container, audio, audio_seconds)
    container.close()
    return path


def make_variable_rate_clip(path: Path, ticks, fps: int = 120, codec: str = "libx265",
                            size: tuple[int, int] = (320, 192)) -> Path:
    """Numbered frames (read back with `frame_number`), frame i shown at ticks[i] / fps seconds: a variable frame
    rate on a fast clock, as phones record (HEVC at 120 fps by default)."""
    from fractions import Fraction

    container = av.open(str(path), "w")
    stream = add_numbered_stream(container, codec, fps, size)
    if codec == "libx265":
        stream.options = {"x265-params": "log-level=error"}
    for i, tick in enumerate(ticks):
        frame = av.VideoFrame.from_ndarray(_numbered_image(i, stream), format="rgb24")
        frame.pts, frame.time_base = int(tick), Fraction(1, fps)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
    container.close()
    return path


def bundled_takes_store(out: Path, takes: tuple[str, ...], frames: int, extractors: list[str] | None = None) -> Path:
    """A feature store of bundled RAVDESS takes (copied under `out`, with their manifest): real faces and speech,
    `extractors` (None: the defaults) at N = `frames`, one worker."""
    import shutil

    from viper.datasets.ravdess import write_ravdess_manifest
    from viper.jobs.demo import demo_clips
    from viper.jobs.extract import extract

    clips = out / "clips"
    clips.mkdir(parents=True)
    for name in takes:
        shutil.copy(demo_clips() / name, clips / name)
    write_ravdess_manifest(clips, out / "manifest.csv")
    options = {} if extractors is None else {"extractors": extractors}
    extract(out / "manifest.csv", out / "store", frames=frames, workers=1, **options)
    return out / "store"
