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
        audio = container.add_stream("aac", rate=audio_rate)
        audio.layout = audio_layout
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
