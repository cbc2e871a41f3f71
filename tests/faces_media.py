"""Clips and images with real faces, built from the RAVDESS takes bundled with viper (actor 05, 224x224 face
crops with their speech) and frames generated here, so face tests run on any clone: a face in a wider scene, no
face, a face that leaves, a face that arrives, two faces side by side."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from viper.jobs.demo import demo_clips

SMILING = "01-01-03-02-01-01-05.mp4"  # happy, strong intensity: he smiles as he speaks; no black padding
SURPRISED = "01-01-08-02-01-01-05.mp4"
SPEECH_RATE = 16000


def take(name: str = SMILING) -> Path:
    return demo_clips() / name


def take_frames(name: str = SMILING) -> list[np.ndarray]:
    """Every RGB frame of a bundled take (15 frames at 25/6 fps; some takes end on black padding frames)."""
    with av.open(str(take(name))) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def take_speech(name: str = SMILING) -> np.ndarray:
    """A bundled take's 3.6 s of speech, mono float32 at 16 kHz."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SPEECH_RATE)
    with av.open(str(take(name))) as container:
        chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                  for out in resampler.resample(frame)]
    chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(chunks)


def scene(size: tuple[int, int] = (448, 320)) -> np.ndarray:
    """A generated frame without a face: a soft diagonal gradient with two boxes (a room's edges, not a plain fill)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    image = np.repeat((60 + 120 * (x + y) / (width + height))[..., None], 3, axis=2).astype(np.uint8)
    image[height // 8 : height // 3, width // 10 : width // 4] = (150, 110, 70)
    image[height // 2 :, width - width // 5 :] = (40, 60, 90)
    return image


def on_scene(face: np.ndarray, size: tuple[int, int] = (448, 320), left: float = 0.5) -> np.ndarray:
    """`face` pasted into a generated scene, centred at `left` of its width, vertically centred."""
    image = scene(size)
    h, w = face.shape[:2]
    x = int(round(left * size[0] - w / 2))
    y = (size[1] - h) // 2
    image[y : y + h, x : x + w] = face
    return image


def two_faces(first: np.ndarray, second: np.ndarray, gap: int = 32) -> np.ndarray:
    """Two real faces side by side in one generated scene (a group photo), `first` on the left, tops aligned."""
    width = first.shape[1] + second.shape[1] + 3 * gap
    height = max(first.shape[0], second.shape[0]) + 2 * gap
    image = scene((width, height))
    image[gap : gap + first.shape[0], gap : gap + first.shape[1]] = first
    image[gap : gap + second.shape[0], 2 * gap + first.shape[1] : width - gap] = second
    return image


def write_clip(path: Path, frames: list[np.ndarray], fps: Fraction | int = Fraction(25, 6), codec: str = "libx264",
               speech: np.ndarray | None = None, speech_start: float = 0.0, audio_codec: str = "aac") -> Path:
    """Encode RGB frames (and optionally speech at 16 kHz starting `speech_start` seconds in) with PyAV."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = None if speech is None else container.add_stream(audio_codec, rate=SPEECH_RATE, layout="mono")
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(video.encode())
        if audio is not None:
            offset = int(round(speech_start * SPEECH_RATE))
            chunk = audio.codec_context.frame_size or 1024
            for start in range(0, len(speech), chunk):
                frame = av.AudioFrame.from_ndarray(speech[None, start : start + chunk], format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = SPEECH_RATE, offset + start, Fraction(1, SPEECH_RATE)
                container.mux(audio.encode(frame))
            container.mux(audio.encode())
    return path


def make_single_face(path: Path, name: str = SMILING) -> Path:
    """One real face talking in a wider generated scene, with its own speech from the first frame."""
    return write_clip(path, [on_scene(face) for face in take_frames(name)], speech=take_speech(name))


def make_no_face(path: Path, frames: int = 15) -> Path:
    """A generated scene without a face (the camera drifts a little), with the take's speech: audio, no face."""
    image = scene((480, 320))
    return write_clip(path, [np.roll(image, 4 * i, axis=1)[:, :448] for i in range(frames)],
                      speech=take_speech())


def make_face_then_no_face(path: Path, name: str = SMILING, speech_start: float = 2.4) -> Path:
    """A real face for 3.6 s, then the empty scene for 3.6 s; the speech starts late, at `speech_start` seconds."""
    faces = [on_scene(face) for face in take_frames(name)]
    return write_clip(path, faces + [scene()] * len(faces), speech=take_speech(name), speech_start=speech_start)


def make_no_face_then_face(path: Path, name: str = SURPRISED) -> Path:
    """The empty scene for 3.6 s, then a real face for 3.6 s; speech over the whole 7.2 s from the start."""
    faces = [on_scene(face) for face in take_frames(name)]
    speech = take_speech(name)
    return write_clip(path, [scene()] * len(faces) + faces, speech=np.concatenate([speech, speech]))
