"""Frame sampling, the paper's audio windows, and decoding of real and generated clips."""

from __future__ import annotations

import numpy as np
import pytest
from media import make_audio_only, make_clip

from viper.errors import VideoReadError
from viper.sampled_video import sample_video
from viper.video import audio_windows, read_audio, read_frames, sample_frame_times


def test_sample_times_span_first_to_last_frame_evenly():
    times = sample_frame_times(0.5, 10.5, 32)
    assert len(times) == 32 and times[0] == 0.5 and times[-1] == 10.5
    assert np.allclose(np.diff(times), 10 / 31)


def test_audio_windows_follow_the_paper_rule():
    times = sample_frame_times(1.0, 4.1, 32)
    windows = audio_windows(times)
    lengths = windows[:, 1] - windows[:, 0]
    step = times[1] - times[0]
    assert windows[0, 0] == times[0] and windows[-1, 1] == times[-1]  # ends start/end at their frame
    assert np.allclose(lengths[1:-1], step) and np.allclose(lengths[[0, -1]], step / 2)  # equal; ends half
    assert np.allclose(windows[1:, 0], windows[:-1, 1])  # no overlap, no gap
    assert np.allclose(windows[1:-1].mean(axis=1), times[1:-1])  # centred on the frame


@pytest.mark.parametrize(
    "name, duration",
    [("WolfgangLanger_Pexels.mp4", 19.6), ("single_face.mp4", 2.4), ("noface_face.mov", 6.35)],
)
def test_real_clips_sample_32_frames_over_the_whole_clip(pyfeat_samples, name, duration):
    video = read_frames(pyfeat_samples / name, 32)
    assert len(video.frames) == 32 and video.repeated == 0
    assert video.times[0] == video.frame_times[0] == 0.0
    assert video.duration == pytest.approx(duration, abs=0.1)
    assert video.frame_times[-1] == pytest.approx(video.times[-1])
    assert np.all(np.diff(video.frame_times) > 0)  # in time order, no frame twice
    spacing = np.diff(video.times).mean()
    assert np.all(np.abs(video.frame_times - video.times) <= spacing / 2 + 1 / video.fps)


def test_hevc_120fps_variable_rate_clip_decodes(pyfeat_samples):
    video = read_frames(pyfeat_samples / "noface_face.mov", 32)
    assert video.frames[0].shape == (540, 960, 3)


def test_short_clip_repeats_nearest_frames_and_records_it(tmp_path):
    path = make_clip(tmp_path / "five.mp4", frames=5, fps=5)
    video = read_frames(path, 32)
    assert len(video.frames) == 32 and video.repeated == 27
    brightness = [frame[30:, :].mean() for frame in video.frames]
    assert brightness == sorted(brightness)  # repeats keep time order
    assert len(set(np.round(brightness))) == 5


def test_odd_size_and_rotation_are_honoured(tmp_path):
    path = make_clip(tmp_path / "rotated.mp4", frames=6, size=(66, 38), rotation=90)
    frame = read_frames(path, 4).frames[0]
    assert frame.shape == (66, 38, 3)  # portrait after rotation
    assert frame[:, :4].mean() > 250 and frame[:, -4:].mean() < 100  # the top band is now on the left


@pytest.mark.parametrize("suffix, codec", [(".mkv", "libx264"), (".webm", "libvpx-vp9"), (".avi", "mpeg4")])
def test_other_containers_and_codecs(tmp_path, suffix, codec):
    video = read_frames(make_clip(tmp_path / f"clip{suffix}", frames=12, codec=codec), 8)
    assert len(video.frames) == 8 and video.repeated == 0


def test_clip_without_audio_masks_audio(tmp_path):
    clip = sample_video(make_clip(tmp_path / "silent.mp4"), 8, detector=None, face_crop=False)
    assert clip.audio is None and not clip.audio_mask.any()
    assert clip.face_mask.all()  # no face cropping: the whole frame stands in


def test_audio_fragments_cover_the_clip(tmp_path):
    clip = sample_video(make_clip(tmp_path / "tone.mp4", frames=30, audio_seconds=3.0), 8, None, face_crop=False)
    lengths = [len(fragment) for fragment in clip.audio_fragments()]
    assert clip.audio_mask.all()
    assert abs(lengths[0] - lengths[1] / 2) <= 1 and abs(lengths[-1] - lengths[1] / 2) <= 1
    assert sum(lengths) == pytest.approx((clip.times[-1] - clip.times[0]) * 16000, abs=8)


def test_audio_only_file_gives_masked_faces(tmp_path):
    clip = sample_video(make_audio_only(tmp_path / "voice.m4a"), 8, None)
    assert clip.frames is None and not clip.face_mask.any() and clip.audio_mask.all()


def test_audio_is_mono_16k(pyfeat_samples):
    track = read_audio(pyfeat_samples / "single_face.mp4")  # mp3 audio
    samples = track.read(0, track.length)
    assert samples.dtype == np.float32 and samples.shape == (track.length,) and track.rate == 16000
    assert track.length / 16000 == pytest.approx(2.43, abs=0.1)
    assert track.rms == pytest.approx(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


@pytest.mark.parametrize("content", [b"", b"this is not a video", None])
def test_unreadable_files_raise_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoReadError, match="bad.mp4"):
        read_frames(path, 8)


def test_long_clip_seeks_between_sampled_frames(tmp_path):
    path = make_clip(tmp_path / "long.mp4", frames=600, fps=10)  # 60 s: frames 6.7 s apart, beyond the seek gap
    video = read_frames(path, 10, seek_gap=2.0)
    assert video.repeated == 0
    assert np.allclose(video.frame_times, np.round(video.times * 10) / 10)
